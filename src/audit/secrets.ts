// Secret-looking files in an image, recognized from a path and the file's text.
// Pure. A hit names the kind, the line and what was recognized (a variable name,
// a key type), never the value: audit output is pasted into tickets and CI logs.
//
// Examples:
//   /app/deploy_key  "-----BEGIN OPENSSH PRIVATE KEY-----…"      → private-key "OPENSSH private key", line 1
//   /app/.env        "PORT=80\nSESSION_SECRET=hunter2"          → dotenv-secret "SESSION_SECRET", line 2
//   /app/.env        "API_TOKEN="                                → nothing (empty value)
//   /app/.env.example "API_TOKEN=changeme"                       → nothing (a template, by name)
//   /root/.aws/credentials "aws_secret_access_key = …"           → aws-credentials
//   /app/.npmrc      "//registry.npmjs.org/:_authToken=npm_…"    → npm-token
//   /root/.pgpass    "db:5432:app:app:pw"                        → pgpass, line 1

import { posix } from "node:path";
import type { SecretHit } from "./types.js";

/** Files larger than this are not read for secrets (binaries, bundles); keys and dotfiles are small. */
export const MAX_SECRET_SCAN_BYTES = 512 * 1024;

const PRIVATE_KEY = /-----BEGIN ((?:RSA |DSA |EC |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?)-----/;
const SECRET_NAME = /(?:KEY|TOKEN|SECRET|PASSWORD|PASSWD|PWD|CREDENTIALS?)(?:_|$)/i;
const DOTENV_LINE = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*)$/;
const TEMPLATE_SUFFIX = /\.(?:example|sample|template|dist|defaults?)$/i;

/** True when the name alone makes the file worth reading (besides the private-key scan of every small file). */
export function isSecretCandidateName(path: string): boolean {
  const base = posix.basename(path);
  return (
    isDotenvName(base) ||
    base === ".npmrc" ||
    base === ".git-credentials" ||
    base === ".pgpass" ||
    base === ".netrc" ||
    (base === "credentials" && posix.basename(posix.dirname(path)) === ".aws") ||
    (base === "config.json" && posix.basename(posix.dirname(path)) === ".docker")
  );
}

function isDotenvName(base: string): boolean {
  return (base === ".env" || base.startsWith(".env.") || base.endsWith(".env")) && !TEMPLATE_SUFFIX.test(base);
}

/** A value that is obviously not a secret: empty, or a ${VAR} reference. */
function isBlankValue(raw: string): boolean {
  const v = raw.trim().replace(/^(['"])(.*)\1$/, "$2").trim();
  return v === "" || /^\$\{?[A-Za-z_][A-Za-z0-9_]*\}?$/.test(v);
}

function lineOf(text: string, index: number): number {
  let n = 1;
  for (let i = 0; i < index && i < text.length; i++) if (text.charCodeAt(i) === 10) n++;
  return n;
}

/** Secret-looking content in one file of the image; `text` is its content (latin1 is fine). */
export function detectSecrets(path: string, text: string): SecretHit[] {
  const hits: SecretHit[] = [];
  const base = posix.basename(path);

  const key = PRIVATE_KEY.exec(text);
  if (key) {
    const type = key[1]!.replace(/ BLOCK$/, "").replace(/PRIVATE KEY$/, "").trim();
    hits.push({ kind: "private-key", line: lineOf(text, key.index), what: `${type ? `${type} ` : ""}private key` });
  }

  const lines = () => text.split("\n");

  if (isDotenvName(base)) {
    const names: string[] = [];
    let first: number | undefined;
    lines().forEach((l, i) => {
      const m = DOTENV_LINE.exec(l);
      if (!m || l.trimStart().startsWith("#")) return;
      if (SECRET_NAME.test(m[1]!) && !isBlankValue(m[2]!)) {
        names.push(m[1]!);
        first ??= i + 1;
      }
    });
    if (names.length > 0) hits.push({ kind: "dotenv-secret", line: first, what: names.join(", ") });
  }

  const aws = /^\s*aws_secret_access_key\s*=\s*\S/im.exec(text);
  if (aws) hits.push({ kind: "aws-credentials", line: lineOf(text, aws.index), what: "aws_secret_access_key" });
  else if (base === "credentials" && posix.basename(posix.dirname(path)) === ".aws" && /^\s*aws_access_key_id\s*=\s*\S/im.test(text))
    hits.push({ kind: "aws-credentials", what: "aws_access_key_id" });

  if (base === ".npmrc") {
    const npm = /^\s*(?:\/\/[^\s=]*:)?(_authToken|_auth|_password)\s*=\s*(.*)$/m.exec(text);
    if (npm && !isBlankValue(npm[2]!)) hits.push({ kind: "npm-token", line: lineOf(text, npm.index), what: npm[1]! });
  }

  if (base === ".git-credentials") {
    const i = lines().findIndex((l) => /^[a-z][a-z0-9+.-]*:\/\/[^:/@\s]+:[^@\s]+@/i.test(l.trim()));
    if (i >= 0) hits.push({ kind: "git-credentials", line: i + 1, what: "URL with a password" });
  }

  if (base === ".pgpass") {
    const i = lines().findIndex((l) => !l.trimStart().startsWith("#") && l.replace(/\\:/g, "").split(":").length === 5 && !l.trim().endsWith(":"));
    if (i >= 0) hits.push({ kind: "pgpass", line: i + 1, what: "host:port:db:user:password entry" });
  }

  if (base === ".netrc") {
    const m = /\bpassword\s+\S+/.exec(text);
    if (m) hits.push({ kind: "netrc-password", line: lineOf(text, m.index), what: "machine password" });
  }

  if (base === "config.json" && posix.basename(posix.dirname(path)) === ".docker") {
    const m = /"auth"\s*:\s*"[^"]+"/.exec(text);
    if (m) hits.push({ kind: "docker-auth", line: lineOf(text, m.index), what: "registry auth" });
  }
  return hits;
}

/** Image config environment entries ("K=V") whose names look like secrets and whose values are set. */
export function secretEnvNames(env: readonly string[]): string[] {
  const out: string[] = [];
  for (const kv of env) {
    const i = kv.indexOf("=");
    if (i <= 0) continue;
    const name = kv.slice(0, i);
    // GPG_KEY(S) in official base images is a public key fingerprint, not a secret
    if (SECRET_NAME.test(name) && !/^GPG_KEYS?$/.test(name) && !isBlankValue(kv.slice(i + 1))) out.push(name);
  }
  return out;
}

// kiln's signing keys, kept by GnuPG in a keyring of kiln's own
// ($KILN_HOME/gnupg, 0700; KILN_GNUPGHOME overrides), never the user's
// ~/.gnupg. Commands are argv arrays built by pure functions (gpgArgs) and run
// with execFile; gpg's machine-readable output (--with-colons, --status-fd) is
// what is parsed, never its messages.
//
// Verification imports only the trusted public keys into a throwaway keyring
// and asks gpg for a VALIDSIG: a signature by any other key, or none, fails —
// the same rule as containers/image's `signedBy`.

import { execFile } from "node:child_process";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KilnError } from "../errors.js";

export interface KeyInfo {
  fingerprint: string;
  /** "kiln <kiln@host>" */
  uid: string;
  /** the secret key is in the keyring (kiln can sign with it) */
  secret: boolean;
  /** ISO date */
  created: string;
  algorithm: string;
}

export function keyringDir(storeRoot: string, env: NodeJS.ProcessEnv = process.env): string {
  return env.KILN_GNUPGHOME || join(storeRoot, "gnupg");
}

/** Argument vectors for gpg, all in batch mode against one homedir. Pure. */
export const gpgArgs = {
  generate: (home: string, uid: string) => ["--homedir", home, "--batch", "--no-tty", "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never"],
  list: (home: string, secret: boolean) => ["--homedir", home, "--batch", "--no-tty", "--with-colons", "--fixed-list-mode", secret ? "--list-secret-keys" : "--list-keys"],
  exportKeys: (home: string, fingerprints: readonly string[], armor: boolean) => ["--homedir", home, "--batch", "--no-tty", ...(armor ? ["--armor"] : []), "--export", ...fingerprints],
  importKeys: (home: string) => ["--homedir", home, "--batch", "--no-tty", "--status-fd", "1", "--import"],
  sign: (home: string, fingerprint: string) => ["--homedir", home, "--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", "", "--local-user", fingerprint, "--sign", "--output", "-"],
  verify: (home: string) => ["--homedir", home, "--batch", "--no-tty", "--trust-model", "always", "--status-fd", "2", "--decrypt"],
  signDetached: (home: string, fingerprint: string) => ["--homedir", home, "--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", "", "--local-user", fingerprint, "--detach-sign", "--output", "-"],
  verifyDetached: (home: string, sigFile: string) => ["--homedir", home, "--batch", "--no-tty", "--trust-model", "always", "--status-fd", "2", "--verify", sigFile, "-"],
};

interface Ran {
  code: number;
  stdout: Buffer;
  stderr: string;
}

function gpg(args: string[], input?: Uint8Array, timeoutMs = 60_000): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = execFile("gpg", args, { encoding: "buffer", timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: string | number }) | null;
      if (e && e.code === "ENOENT") {
        reject(new KilnError("KILN_E_USAGE", "gpg is not installed", { hint: "install GnuPG (Debian: apt-get install gnupg): kiln signs and verifies images with it" }));
        return;
      }
      resolve({ code: e ? (typeof e.code === "number" ? e.code : 1) : 0, stdout: stdout as Buffer, stderr: (stderr as Buffer).toString("utf8") });
    });
    child.stdin?.end(input === undefined ? undefined : Buffer.from(input));
  });
}

async function ensureKeyring(home: string): Promise<void> {
  await mkdir(home, { recursive: true, mode: 0o700 });
  await chmod(home, 0o700); // gpg warns (and some versions refuse) when others can read it
}

/** Parse `gpg --with-colons --fixed-list-mode` output. Pure. */
export function parseKeyList(text: string, secret: boolean): KeyInfo[] {
  const keys: KeyInfo[] = [];
  let current: KeyInfo | undefined;
  let wantFpr = false;
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f[0] === "pub" || f[0] === "sec") {
      current = { fingerprint: "", uid: "", secret, created: new Date(Number(f[5]) * 1000).toISOString().slice(0, 10), algorithm: f[16] || algoName(f[3] ?? "") };
      keys.push(current);
      wantFpr = true;
    } else if (f[0] === "sub" || f[0] === "ssb") {
      wantFpr = false;
    } else if (f[0] === "fpr" && current && wantFpr) {
      current.fingerprint = f[9] ?? "";
      wantFpr = false;
    } else if (f[0] === "uid" && current && current.uid === "") {
      current.uid = (f[9] ?? "").replace(/\\x3a/g, ":");
    }
  }
  return keys.filter((k) => /^[0-9A-F]{40}$/.test(k.fingerprint));
}

function algoName(n: string): string {
  return ({ "1": "rsa", "17": "dsa", "19": "ecdsa", "22": "ed25519" } as Record<string, string>)[n] ?? `algo ${n}`;
}

export async function listKeys(home: string): Promise<KeyInfo[]> {
  await ensureKeyring(home);
  const pub = await gpg(gpgArgs.list(home, false));
  const sec = await gpg(gpgArgs.list(home, true));
  const secret = new Set(parseKeyList(sec.stdout.toString("utf8"), true).map((k) => k.fingerprint));
  return parseKeyList(pub.stdout.toString("utf8"), false).map((k) => ({ ...k, secret: secret.has(k.fingerprint) }));
}

/** A new ed25519 signing key without a passphrase (kiln signs unattended); returns it. */
export async function generateKey(home: string, uid: string): Promise<KeyInfo> {
  await ensureKeyring(home);
  const before = new Set((await listKeys(home)).map((k) => k.fingerprint));
  const r = await gpg(gpgArgs.generate(home, uid), undefined, 120_000);
  if (r.code !== 0) throw new KilnError("KILN_E_INTERNAL", `gpg could not generate a key: ${lastLine(r.stderr)}`, { hint: `check ${home} (it must be a directory only you can read)` });
  const made = (await listKeys(home)).find((k) => !before.has(k.fingerprint));
  if (!made) throw new KilnError("KILN_E_INTERNAL", "gpg generated no key");
  return made;
}

/** Resolve a fingerprint (or its last 16+ hex digits, or a uid substring) to one key of the keyring. */
export async function findKey(home: string, wanted: string | undefined, needSecret: boolean): Promise<KeyInfo> {
  const keys = (await listKeys(home)).filter((k) => !needSecret || k.secret);
  const w = wanted?.replace(/\s+/g, "").toUpperCase();
  const hits = w === undefined ? keys : keys.filter((k) => (w.length >= 16 && /^[0-9A-F]+$/.test(w) ? k.fingerprint.endsWith(w) : k.uid.toUpperCase().includes(w)));
  if (hits.length === 1) return hits[0]!;
  const what = needSecret ? "signing key" : "key";
  if (hits.length === 0) {
    throw new KilnError("KILN_E_NOT_FOUND", wanted === undefined ? `kiln's keyring ${home} has no ${what}` : `no ${what} ${wanted} in kiln's keyring ${home}`, {
      hint: needSecret ? "create one with `kiln keys generate`, or import a secret key with `gpg --homedir " + home + " --import`" : "import the public key with `kiln keys import FILE`",
    });
  }
  throw new KilnError("KILN_E_USAGE", `${hits.length} ${what}s match${wanted === undefined ? "" : ` ${wanted}`}: ${hits.map((k) => k.fingerprint).join(", ")}`, { hint: "name one by its fingerprint (--key FPR)" });
}

export async function exportKeys(home: string, fingerprints: readonly string[], armor: boolean): Promise<Buffer> {
  await ensureKeyring(home);
  const r = await gpg(gpgArgs.exportKeys(home, fingerprints, armor));
  if (r.code !== 0 || r.stdout.length === 0) throw new KilnError("KILN_E_NOT_FOUND", `gpg exported nothing for ${fingerprints.join(", ")}`, { hint: "list the keys with `kiln keys list`" });
  return r.stdout;
}

/** Import public (or secret) keys; returns the fingerprints gpg reports. */
export async function importKeys(home: string, bytes: Uint8Array): Promise<string[]> {
  await ensureKeyring(home);
  const r = await gpg(gpgArgs.importKeys(home), bytes);
  const fprs = [...r.stdout.toString("utf8").matchAll(/^\[GNUPG:\] IMPORT_OK \d+ ([0-9A-F]{40})$/gm)].map((m) => m[1]!);
  if (r.code !== 0 && fprs.length === 0) throw new KilnError("KILN_E_USAGE", `gpg imported no key: ${lastLine(r.stderr)}`, { hint: "give an OpenPGP public key (binary or ASCII-armored)" });
  return [...new Set(fprs)];
}

/** An OpenPGP signed message (not detached) holding `payload`, as containers/image expects. */
export async function signBytes(home: string, fingerprint: string, payload: Uint8Array): Promise<Buffer> {
  const r = await gpg(gpgArgs.sign(home, fingerprint), payload);
  if (r.code !== 0 || r.stdout.length === 0) throw new KilnError("KILN_E_INTERNAL", `gpg could not sign with ${fingerprint}: ${lastLine(r.stderr)}`, { hint: "check the key with `kiln keys list` (it must hold the secret key, without a passphrase)" });
  return r.stdout;
}

export type VerifyResult = { ok: true; fingerprint: string; payload: Buffer } | { ok: false; reason: string };

/**
 * Verify a signed message against `trustedKeys` (exported public keys) only:
 * they are imported into a fresh keyring, so a signature by a key outside
 * them finds no public key. The fingerprint returned is the primary key's.
 */
export async function verifySigned(trustedKeys: Uint8Array, signature: Uint8Array): Promise<VerifyResult> {
  const home = await mkdtemp(join(tmpdir(), "kiln-verify-"));
  try {
    await chmod(home, 0o700);
    await writeFile(join(home, "gpg.conf"), "no-autostart\n");
    const imp = await gpg(gpgArgs.importKeys(home), trustedKeys);
    if (!/IMPORT_OK/.test(imp.stdout.toString("utf8"))) return { ok: false, reason: "no trusted key could be imported" };
    const r = await gpg(gpgArgs.verify(home), signature);
    const valid = /^\[GNUPG:\] VALIDSIG (\S+)(?: \S+){8} ([0-9A-F]{40})$/m.exec(r.stderr) ?? /^\[GNUPG:\] VALIDSIG ([0-9A-F]{40})/m.exec(r.stderr);
    if (r.code !== 0 || !valid) {
      if (/NO_PUBKEY/.test(r.stderr)) return { ok: false, reason: "signed by a key that is not trusted" };
      if (/BADSIG/.test(r.stderr)) return { ok: false, reason: "the signature does not match its content (tampered)" };
      return { ok: false, reason: `not a valid signature (${lastLine(r.stderr) || `gpg exit ${r.code}`})` };
    }
    return { ok: true, fingerprint: valid[2] ?? valid[1]!, payload: r.stdout };
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

/** An OpenPGP detached signature over `data` (DSSE envelopes carry it base64). */
export async function signDetached(home: string, fingerprint: string, data: Uint8Array): Promise<Buffer> {
  const r = await gpg(gpgArgs.signDetached(home, fingerprint), data);
  if (r.code !== 0 || r.stdout.length === 0) throw new KilnError("KILN_E_INTERNAL", `gpg could not sign with ${fingerprint}: ${lastLine(r.stderr)}`, { hint: "check the key with `kiln keys list`" });
  return r.stdout;
}

/** Verify a detached signature over `data` against `trustedKeys` only (see verifySigned). */
export async function verifyDetached(trustedKeys: Uint8Array, signature: Uint8Array, data: Uint8Array): Promise<VerifyResult> {
  const home = await mkdtemp(join(tmpdir(), "kiln-verify-"));
  try {
    await chmod(home, 0o700);
    await writeFile(join(home, "gpg.conf"), "no-autostart\n");
    const imp = await gpg(gpgArgs.importKeys(home), trustedKeys);
    if (!/IMPORT_OK/.test(imp.stdout.toString("utf8"))) return { ok: false, reason: "no trusted key could be imported" };
    const sigFile = join(home, "sig");
    await writeFile(sigFile, signature);
    const r = await gpg(gpgArgs.verifyDetached(home, sigFile), data);
    const valid = /^\[GNUPG:\] VALIDSIG (\S+)(?: \S+){8} ([0-9A-F]{40})$/m.exec(r.stderr) ?? /^\[GNUPG:\] VALIDSIG ([0-9A-F]{40})/m.exec(r.stderr);
    if (r.code !== 0 || !valid) {
      if (/NO_PUBKEY/.test(r.stderr)) return { ok: false, reason: "signed by a key that is not trusted" };
      if (/BADSIG/.test(r.stderr)) return { ok: false, reason: "the signature does not match its content (tampered)" };
      return { ok: false, reason: `not a valid signature (${lastLine(r.stderr) || `gpg exit ${r.code}`})` };
    }
    return { ok: true, fingerprint: valid[2] ?? valid[1]!, payload: Buffer.from(data) };
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

function lastLine(s: string): string {
  return s.trim().split("\n").filter((l) => !l.startsWith("[GNUPG:]")).pop() ?? "";
}

// Secrets written into files: access keys and private keys found in the text (KR060,
// KR061), and literal values under names that say they are secret (KR062).

import type { RawFinding } from "../types.js";

/** Names that hold a secret, unless they only point at one (…_arn, …_id, …_file, secretKeyRef). */
export function isSecretName(name: string): boolean {
  const n = name.toLowerCase().replace(/[^a-z0-9]/g, "");
  if (!/(password|passwd|passphrase|secret|token|apikey|accesskey|privatekey|clientsecret)/.test(n)) return false;
  if (/(arn|id|ids|name|names|ref|keyref|path|file|url|uri|length|policy|manager|version|ttl|enabled|type|kind|mount|store|provider|endpoint|expiry|expiration|duration|header|resetrequired|length)$/.test(n)) return false;
  if (/^(nosecret|noecho)/.test(n) || /^http(put)?tokens?$/.test(n)) return false;
  return true;
}

/** A value that is the secret itself, not a reference to where it is kept. */
export function looksLikeLiteralSecret(v: string): boolean {
  const s = v.trim();
  if (s.length < 4) return false;
  if (/^(true|false|null|none|yes|no|required|optional|enabled|disabled|auto|default)$/i.test(s)) return false;
  if (/^\d+$/.test(s) && s.length < 6) return false;
  if (/\$\{|\{\{|\$\(|^\$[A-Za-z_]|^\*+$|^<.*>$/.test(s)) return false;
  if (/^(arn:|ssm:|secretsmanager:|vault:|file:\/\/|\/|\.\/|~\/)/.test(s)) return false;
  return true;
}

const AWS_KEY_ID = /\b((?:AKIA|ASIA)[0-9A-Z]{16})\b/g;
const AWS_SECRET = /aws_?secret_?access_?key["']?\s*[:=]\s*["']?([A-Za-z0-9/+]{40})\b/gi;
const PRIVATE_KEY = /-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----/g;

/** Scans the raw text: a key is a key wherever it is written (a comment, a heredoc, user data). */
export function scanTextForKeys(text: string): RawFinding[] {
  const out: RawFinding[] = [];
  const lineStarts = [0];
  for (let i = 0; i < text.length; i++) if (text[i] === "\n") lineStarts.push(i + 1);
  const at = (offset: number) => {
    let lo = 0;
    let hi = lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (lineStarts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, col: offset - lineStarts[lo]! + 1 };
  };
  for (const m of text.matchAll(AWS_KEY_ID)) {
    // AWS's documentation keys end in EXAMPLE and are published on purpose.
    if (m[1]!.endsWith("EXAMPLE")) continue;
    out.push({ ruleId: "KR060", pos: at(m.index!), message: `AWS access key id ${m[1]!.slice(0, 8)}… is written in the file` });
  }
  for (const m of text.matchAll(AWS_SECRET)) {
    if (/EXAMPLEKEY$/.test(m[1]!)) continue;
    out.push({ ruleId: "KR060", pos: at(m.index! + m[0].length - m[1]!.length), message: "AWS secret access key is written in the file" });
  }
  for (const m of text.matchAll(PRIVATE_KEY)) {
    out.push({ ruleId: "KR061", pos: at(m.index!), message: `${m[0].replace(/-/g, "").replace("BEGIN ", "").toLowerCase()} is written in the file` });
  }
  return out;
}

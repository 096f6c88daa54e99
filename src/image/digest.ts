// Digests and canonical JSON: the bytes an image's identity is computed over.

import { createHash } from "node:crypto";
import { KilnError } from "../errors.js";

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;

export function isDigest(s: string): boolean {
  return DIGEST_RE.test(s);
}

/** The hex part of a "sha256:…" digest; refuses anything else (the hex becomes a file name). */
export function digestHex(digest: string): string {
  if (!DIGEST_RE.test(digest)) {
    throw new KilnError("KILN_E_IMAGE", `not a sha256 digest: ${JSON.stringify(digest)}`, {
      hint: 'digests look like "sha256:" followed by 64 lowercase hex characters',
    });
  }
  return digest.slice("sha256:".length);
}

export function sha256Digest(data: Uint8Array | string): string {
  return "sha256:" + createHash("sha256").update(data).digest("hex");
}

/**
 * JSON with object keys sorted (by UTF-16 code unit, like JSON.stringify's own
 * order would be if keys were inserted sorted), no whitespace, `undefined`
 * members dropped. Two processes that build the same value get the same bytes,
 * whatever order they assigned the keys in.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = sortKeys(v);
    }
    return out;
  }
  return value;
}

export function canonicalBytes(value: unknown): Buffer {
  return Buffer.from(canonicalJson(value), "utf8");
}

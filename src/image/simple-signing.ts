// "Simple signing", the signature format containers/image (skopeo, podman,
// CRI-O) verifies with GPG: an OpenPGP-signed JSON payload naming the image by
// its Docker reference and manifest digest. Debian's skopeo 1.9.3 has sigstore
// patched out, so this is the format a tool kiln did not write can check here.
// Everything in this file is pure: the payload, its parse, the lookaside
// layout, and the verifier configuration (policy.json, registries.d) skopeo reads.

import { KilnError } from "../errors.js";
import { digestHex, isDigest } from "./digest.js";

export const SIGNATURE_ARTIFACT_TYPE = "application/vnd.dev.kiln.simple-signing.v1+pgp";
/** annotations on a signature artifact: which identity it signs and with which key */
export const SIGNATURE_ANNOTATION = { identity: "dev.kiln.signature.identity", key: "dev.kiln.signature.key" } as const;
const SIGNATURE_TYPE = "atomic container signature";

export interface SigningPayload {
  critical: {
    identity: { "docker-reference": string };
    image: { "docker-manifest-digest": string };
    type: typeof SIGNATURE_TYPE;
  };
  optional: { creator: string; timestamp: number };
}

/**
 * The payload for `identity` ("REGISTRY/REPO:TAG") and a manifest digest.
 * containers/image parses `critical` strictly (exactly these keys), so nothing
 * else goes there; `timestamp` is whole seconds.
 *
 *   ("127.0.0.1:5000/notes:1.0.0", "sha256:ab…", "kiln 0.1.0", 1700000000) →
 *   {"critical":{"identity":{"docker-reference":"127.0.0.1:5000/notes:1.0.0"},
 *    "image":{"docker-manifest-digest":"sha256:ab…"},"type":"atomic container signature"},
 *    "optional":{"creator":"kiln 0.1.0","timestamp":1700000000}}
 */
export function signingPayload(identity: string, digest: string, creator: string, timestampSec: number): Buffer {
  if (!isDigest(digest)) throw new KilnError("KILN_E_INTERNAL", `not a digest: ${digest}`);
  const p: SigningPayload = {
    critical: { identity: { "docker-reference": identity }, image: { "docker-manifest-digest": digest }, type: SIGNATURE_TYPE },
    optional: { creator, timestamp: Math.floor(timestampSec) },
  };
  return Buffer.from(JSON.stringify(p), "utf8");
}

/** The identity and digest a verified payload names, or why it is not a simple-signing payload. */
export function parseSigningPayload(bytes: Uint8Array): { ok: true; identity: string; digest: string; timestamp?: number } | { ok: false; reason: string } {
  let doc: Partial<SigningPayload>;
  try {
    doc = JSON.parse(Buffer.from(bytes).toString("utf8")) as Partial<SigningPayload>;
  } catch {
    return { ok: false, reason: "the signed payload is not JSON" };
  }
  const c = doc.critical;
  if (!c || c.type !== SIGNATURE_TYPE) return { ok: false, reason: `the signed payload is not an "${SIGNATURE_TYPE}"` };
  const identity = c.identity?.["docker-reference"];
  const digest = c.image?.["docker-manifest-digest"];
  if (typeof identity !== "string" || typeof digest !== "string" || !isDigest(digest)) return { ok: false, reason: "the signed payload names no identity or digest" };
  const ts = doc.optional?.timestamp;
  return typeof ts === "number" ? { ok: true, identity, digest, timestamp: ts } : { ok: true, identity, digest };
}

/**
 * Where containers/image looks for signature N (from 1) of a manifest under a
 * lookaside base for one registry: the repository path without the registry
 * host, "@", the digest with ":" as "=".
 *
 *   ("notes", "sha256:ab…", 1)         → "notes@sha256=ab…/signature-1"
 *   ("team/api", "sha256:ab…", 2)      → "team/api@sha256=ab…/signature-2"
 */
export function lookasidePath(repository: string, digest: string, index: number): string {
  return `${repository}@sha256=${digestHex(digest)}/signature-${index}`;
}

/**
 * "127.0.0.1:5000/team/api:1.0.0" → { registry: "127.0.0.1:5000", repository: "team/api" };
 * the tag or digest is dropped. undefined for a reference with no registry host.
 */
export function identityRepository(identity: string): { registry: string; repository: string } | undefined {
  const slash = identity.indexOf("/");
  if (slash <= 0) return undefined;
  const registry = identity.slice(0, slash);
  let rest = identity.slice(slash + 1);
  const at = rest.indexOf("@");
  if (at >= 0) rest = rest.slice(0, at);
  const colon = rest.lastIndexOf(":");
  if (colon >= 0) rest = rest.slice(0, colon);
  return rest === "" ? undefined : { registry, repository: rest };
}

/**
 * A skopeo/podman verifier configuration for one registry: policy.json
 * (reject by default, `signedBy` kiln's key(s) for the registry) and a
 * registries.d file pointing the registry's lookaside at `lookasideUrl`.
 *
 *   ("127.0.0.1:5000", "/etc/kiln/kiln.gpg", "file:///var/lib/kiln/sigstore/127.0.0.1:5000") →
 *   policy: {"default":[{"type":"reject"}],"transports":{"docker":{"127.0.0.1:5000":
 *            [{"type":"signedBy","keyType":"GPGKeys","keyPath":"/etc/kiln/kiln.gpg"}]}}}
 *   registries.d: "docker:\n  127.0.0.1:5000:\n    lookaside: file:///var/lib/kiln/sigstore/127.0.0.1:5000\n"
 */
export function verifierConfig(registry: string, keyPath: string, lookasideUrl: string): { policy: unknown; registriesD: string } {
  return {
    policy: { default: [{ type: "reject" }], transports: { docker: { [registry]: [{ type: "signedBy", keyType: "GPGKeys", keyPath }] } } },
    registriesD: `docker:\n  ${JSON.stringify(registry)}:\n    lookaside: ${JSON.stringify(lookasideUrl)}\n    lookaside-staging: ${JSON.stringify(lookasideUrl)}\n`,
  };
}

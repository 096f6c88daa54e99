// Signing an image and checking its signatures. A signature is a
// simple-signing payload (simple-signing.ts) signed by gpg with a key of kiln's
// keyring (gpg.ts). It is kept twice:
// - in the store, as an artifact referring to the image (referrers.ts), so it
//   travels with `kiln push` / `kiln pull` like the SBOM;
// - in a lookaside directory, laid out the way containers/image reads it
//   (<lookaside>/<registry>/<repo>@sha256=<hex>/signature-N), so skopeo,
//   podman or CRI-O verify it under a `signedBy` policy. The lookaside is
//   $KILN_HOME/sigstore unless KILN_LOOKASIDE names another directory (serve
//   it over HTTP, or share it, for verifiers on other machines).

import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { KilnError } from "../errors.js";
import { exportKeys, findKey, signBytes, verifySigned } from "./gpg.js";
import { attachArtifact, listReferrers, type ArtifactManifest, type ReferrerDescriptor } from "./referrers.js";
import { identityRepository, lookasidePath, parseSigningPayload, SIGNATURE_ANNOTATION, SIGNATURE_ARTIFACT_TYPE, signingPayload } from "./simple-signing.js";
import type { Store } from "./store.js";
import type { Descriptor } from "./types.js";

export function lookasideRoot(storeRoot: string, env: NodeJS.ProcessEnv = process.env): string {
  return env.KILN_LOOKASIDE || join(storeRoot, "sigstore");
}

/** The lookaside base URL for one registry, as registries.d wants it. */
export function lookasideUrl(root: string, registry: string): string {
  return `file://${join(root, registry)}`;
}

export interface SignRequest {
  /** the image manifest's descriptor */
  subject: Descriptor;
  /** "REGISTRY/REPO:TAG" the signature vouches for */
  identity: string;
  keyring: string;
  /** a fingerprint (or its tail, or a uid part); default: the keyring's only signing key */
  key?: string;
  lookaside: string;
  creator: string;
  now: Date;
}

export interface SignResult {
  identity: string;
  fingerprint: string;
  artifact: ReferrerDescriptor;
  /** the file skopeo reads */
  lookasideFile: string;
}

export async function signImage(store: Store, req: SignRequest): Promise<SignResult> {
  const where = identityRepository(req.identity);
  if (!where) throw new KilnError("KILN_E_USAGE", `signature identity ${JSON.stringify(req.identity)} names no registry`, { hint: "sign for the reference a verifier pulls, e.g. 127.0.0.1:5000/notes:1.0.0" });
  const key = await findKey(req.keyring, req.key, true);
  const payload = signingPayload(req.identity, req.subject.digest, req.creator, req.now.getTime() / 1000);
  const sig = await signBytes(req.keyring, key.fingerprint, payload);
  const artifact = await attachArtifact(store, req.subject, SIGNATURE_ARTIFACT_TYPE, sig, {
    [SIGNATURE_ANNOTATION.identity]: req.identity,
    [SIGNATURE_ANNOTATION.key]: key.fingerprint,
  });
  const lookasideFile = await writeLookaside(req.lookaside, req.identity, req.subject.digest, sig);
  return { identity: req.identity, fingerprint: key.fingerprint, artifact, lookasideFile };
}

/**
 * Put a signature where containers/image finds it: the first free
 * signature-N of the image under the identity's registry and repository (an
 * identical file already there is reused). Returns its path.
 */
export async function writeLookaside(root: string, identity: string, digest: string, sig: Uint8Array): Promise<string> {
  const where = identityRepository(identity);
  if (!where) throw new KilnError("KILN_E_USAGE", `signature identity ${JSON.stringify(identity)} names no registry`);
  for (let n = 1; n <= 1000; n++) {
    const path = join(root, where.registry, lookasidePath(where.repository, digest, n));
    const existing = await readFile(path).catch(() => undefined);
    if (existing?.equals(Buffer.from(sig))) return path;
    if (existing) continue;
    await mkdir(dirname(path), { recursive: true });
    const tmp = `${path}.tmp-${process.pid}`;
    await writeFile(tmp, sig);
    await rename(tmp, path);
    return path;
  }
  throw new KilnError("KILN_E_IMAGE", `more than 1000 signatures for ${digest} in ${root}`);
}

export interface StoredSignature {
  artifact: ReferrerDescriptor;
  identity?: string;
  key?: string;
  signature: Buffer;
}

/** The signatures kept in the store for an image. */
export async function imageSignatures(store: Store, digest: string): Promise<StoredSignature[]> {
  const out: StoredSignature[] = [];
  for (const r of await listReferrers(store, digest, SIGNATURE_ARTIFACT_TYPE)) {
    const m = await store.readJsonBlob<ArtifactManifest>(r.digest);
    const layer = m.layers?.[0];
    if (!layer || m.subject?.digest !== digest) continue;
    out.push({ artifact: r, identity: m.annotations?.[SIGNATURE_ANNOTATION.identity], key: m.annotations?.[SIGNATURE_ANNOTATION.key], signature: await store.readBlob(layer.digest) });
  }
  return out;
}

/**
 * Write every stored signature of `digest` whose identity is in
 * REGISTRY/REPOSITORY to the lookaside (after a push or a pull). Returns the
 * files written or found.
 */
export async function exportSignaturesToLookaside(store: Store, digest: string, registry: string, repository: string, root: string): Promise<string[]> {
  const files: string[] = [];
  for (const s of await imageSignatures(store, digest)) {
    const where = s.identity ? identityRepository(s.identity) : undefined;
    if (!where || where.registry !== registry || where.repository !== repository) continue;
    files.push(await writeLookaside(root, s.identity!, digest, s.signature));
  }
  return files;
}

export interface SignatureCheck {
  /** signatures by a trusted key over this digest (and repository, when one is required) */
  accepted: { fingerprint: string; identity: string; artifact: string }[];
  rejected: { artifact: string; reason: string }[];
}

/**
 * Check the image's stored signatures against `fingerprints` from kiln's
 * keyring. A signature counts when gpg verifies it with one of those keys,
 * its payload names this digest, and — when `repository` is given (an image
 * pulled from REGISTRY/REPO) — its identity is in that repository, the rule
 * skopeo's default `matchRepoDigestOrExact` applies to a digest reference.
 */
export async function checkSignatures(store: Store, digest: string, keyring: string, fingerprints: readonly string[], repository?: { registry: string; repository: string }): Promise<SignatureCheck> {
  const out: SignatureCheck = { accepted: [], rejected: [] };
  const sigs = await imageSignatures(store, digest);
  if (sigs.length === 0) return out;
  const keys: string[] = [];
  for (const f of fingerprints) keys.push((await findKey(keyring, f, false)).fingerprint);
  const trusted = await exportKeys(keyring, keys, false);
  for (const s of sigs) {
    const v = await verifySigned(trusted, s.signature);
    if (!v.ok) {
      out.rejected.push({ artifact: s.artifact.digest, reason: v.reason });
      continue;
    }
    const p = parseSigningPayload(v.payload);
    if (!p.ok) out.rejected.push({ artifact: s.artifact.digest, reason: p.reason });
    else if (p.digest !== digest) out.rejected.push({ artifact: s.artifact.digest, reason: `it signs ${p.digest}, not this image` });
    else if (repository && !sameRepository(p.identity, repository)) out.rejected.push({ artifact: s.artifact.digest, reason: `it vouches for ${p.identity}, not ${repository.registry}/${repository.repository}` });
    else out.accepted.push({ fingerprint: v.fingerprint, identity: p.identity, artifact: s.artifact.digest });
  }
  return out;
}

function sameRepository(identity: string, r: { registry: string; repository: string }): boolean {
  const w = identityRepository(identity);
  return w !== undefined && w.registry === r.registry && w.repository === r.repository;
}


// Artifacts that refer to an image (its SBOM now; signatures and provenance
// later), stored the OCI 1.1 way: an artifact manifest whose `subject` is the
// image manifest's descriptor, with an `artifactType`, the empty config and the
// document as its one layer. The store is an OCI image layout, which has no
// referrers API, so kiln keeps its own index: cache/referrers/<subject hex>.json
// = { descriptor: subject, referrers: [artifact manifest descriptors] }.
// gc marks the referrers of every image it keeps (gc.ts) and drops the index
// entry with its subject (the cache sweep keys on `descriptor`).
//
// Push and pull carry them with referrerUploads() and recordReferrer(); a
// registry without the referrers API (Debian's docker-registry 2.8.2) is
// served through the fallback tag `sha256-<hex>` holding an image index of the
// referrers (distribution-spec), built by referrersTagIndex().

import { KilnError } from "../errors.js";
import { canonicalBytes, digestHex, isDigest } from "./digest.js";
import type { Store } from "./store.js";
import { MEDIA_TYPE, type Descriptor, type OciIndex } from "./types.js";

export const EMPTY_CONFIG = {
  mediaType: "application/vnd.oci.empty.v1+json",
  digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
  size: 2,
} as const;

export interface ArtifactManifest {
  schemaVersion: 2;
  mediaType: typeof MEDIA_TYPE.manifest;
  artifactType: string;
  config: Descriptor;
  layers: Descriptor[];
  subject: Descriptor;
  annotations?: Record<string, string>;
}

export type ReferrerDescriptor = Descriptor & { artifactType: string };

interface ReferrersEntry {
  descriptor: Descriptor;
  referrers: ReferrerDescriptor[];
}

/** The artifact manifest for one document referring to `subject`. Pure. */
export function artifactManifest(subject: Descriptor, artifactType: string, document: Descriptor, annotations: Record<string, string>): ArtifactManifest {
  return {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE.manifest,
    artifactType,
    config: { ...EMPTY_CONFIG },
    layers: [document],
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
    annotations,
  };
}

/**
 * The fallback tag a registry without the referrers API keeps the referrers
 * list under: "sha256:ab12…" → "sha256-ab12…" (distribution-spec).
 */
export function referrersTag(subjectDigest: string): string {
  return `sha256-${digestHex(subjectDigest)}`;
}

/**
 * The image index for the fallback tag: the existing one's descriptors plus
 * `add`, without duplicates (same digest), sorted by digest so two clients
 * adding the same artifacts write the same bytes.
 */
export function referrersTagIndex(existing: OciIndex | undefined, add: readonly ReferrerDescriptor[]): OciIndex {
  const byDigest = new Map<string, Descriptor>();
  for (const d of [...(existing?.manifests ?? []), ...add]) if (!byDigest.has(d.digest)) byDigest.set(d.digest, d);
  return {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE.index,
    manifests: [...byDigest.values()].sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0)),
  };
}

/** Store `documentBytes` as an artifact referring to `subject`; returns the artifact manifest's descriptor. */
export async function attachArtifact(
  store: Store,
  subject: Descriptor,
  artifactType: string,
  documentBytes: Uint8Array,
  annotations: Record<string, string> = {},
): Promise<ReferrerDescriptor> {
  const empty = await store.putBlob(Buffer.from("{}"));
  if (empty.digest !== EMPTY_CONFIG.digest) throw new KilnError("KILN_E_INTERNAL", "the empty config blob has an unexpected digest");
  const doc = await store.putBlob(documentBytes);
  const manifest = artifactManifest(subject, artifactType, { mediaType: artifactType, digest: doc.digest, size: doc.size }, annotations);
  const blob = await store.putBlob(canonicalBytes(manifest));
  const d: ReferrerDescriptor = { mediaType: MEDIA_TYPE.manifest, digest: blob.digest, size: blob.size, artifactType };
  if (Object.keys(annotations).length > 0) d.annotations = annotations;
  await recordReferrer(store, subject, d);
  return d;
}

/**
 * Add an artifact (already in the store, e.g. just pulled) to the subject's
 * referrers. Idempotent. Not locked: two writers racing on one subject may
 * drop each other's entry, which the next bake or pull of it restores.
 */
export async function recordReferrer(store: Store, subject: Descriptor, artifact: ReferrerDescriptor): Promise<void> {
  const key = digestHex(subject.digest);
  const entry = (await store.cacheGet<ReferrersEntry>("referrers", key)) ?? { descriptor: subject, referrers: [] };
  const list = (Array.isArray(entry.referrers) ? entry.referrers : []).filter((r) => r.digest !== artifact.digest);
  list.push(artifact);
  list.sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
  await store.cachePut("referrers", key, { descriptor: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size }, referrers: list });
}

/** The artifacts referring to an image, optionally of one type; those whose manifest blob is gone are left out. */
export async function listReferrers(store: Store, subjectDigest: string, artifactType?: string): Promise<ReferrerDescriptor[]> {
  if (!isDigest(subjectDigest)) return [];
  const entry = await store.cacheGet<ReferrersEntry>("referrers", digestHex(subjectDigest));
  const out: ReferrerDescriptor[] = [];
  for (const r of Array.isArray(entry?.referrers) ? entry.referrers : []) {
    if (artifactType !== undefined && r.artifactType !== artifactType) continue;
    if (isDigest(r.digest) && (await store.hasBlob(r.digest))) out.push(r);
  }
  return out;
}

/** What a push must upload for each referrer of an image: its blobs first, then its manifest (by digest). */
export interface ReferrerUpload {
  descriptor: ReferrerDescriptor;
  manifest: Buffer;
  blobs: Descriptor[];
}

/**
 * For push: every artifact referring to `subjectDigest`. Upload `blobs`, then
 * PUT `manifest` under its digest; then, when the registry answers the
 * referrers API with 404, merge the descriptors into the index at tag
 * referrersTag(subject) with referrersTagIndex().
 */
export async function referrerUploads(store: Store, subjectDigest: string): Promise<ReferrerUpload[]> {
  const out: ReferrerUpload[] = [];
  for (const d of await listReferrers(store, subjectDigest)) {
    const manifest = await store.readBlob(d.digest);
    const doc = JSON.parse(manifest.toString("utf8")) as ArtifactManifest;
    out.push({ descriptor: d, manifest, blobs: [doc.config, ...doc.layers].map((b) => ({ mediaType: b.mediaType, digest: b.digest, size: b.size })) });
  }
  return out;
}

/** The document of the newest-recorded artifact of `artifactType` referring to an image, or undefined. */
export async function readReferrerDocument(store: Store, subjectDigest: string, artifactType: string): Promise<{ artifact: ReferrerDescriptor; document: Buffer } | undefined> {
  const found = await listReferrers(store, subjectDigest, artifactType);
  if (found.length === 0) return undefined;
  // One bake writes one SBOM per image digest; if several exist (pulled from elsewhere), take the first by digest.
  const artifact = found[0]!;
  const manifest = await store.readJsonBlob<ArtifactManifest>(artifact.digest);
  const layer = manifest.layers?.[0];
  if (!layer || manifest.subject?.digest !== subjectDigest) {
    throw new KilnError("KILN_E_IMAGE", `artifact ${artifact.digest} does not refer to ${subjectDigest}`);
  }
  return { artifact, document: await store.readBlob(layer.digest) };
}


/**
 * For pull: keep an artifact manifest fetched from a registry (through the
 * referrers API or the referrersTag() index) as a referrer of `subject`. Its
 * blobs must already be in the store (pulled and verified like layers); the
 * manifest must refer to `subject` and hash to `expectedDigest` when given.
 */
export async function storePulledReferrer(store: Store, subject: Descriptor, manifestBytes: Uint8Array, expectedDigest?: string): Promise<ReferrerDescriptor> {
  let doc: Partial<ArtifactManifest>;
  try {
    doc = JSON.parse(Buffer.from(manifestBytes).toString("utf8")) as Partial<ArtifactManifest>;
  } catch (e) {
    throw new KilnError("KILN_E_IMAGE", `a referrer of ${subject.digest} is not JSON`, { cause: e });
  }
  if (doc.subject?.digest !== subject.digest) {
    throw new KilnError("KILN_E_UNSAFE", `artifact ${expectedDigest ?? "?"} does not refer to ${subject.digest}`, { hint: "the registry's referrers list is wrong; the artifact was not kept" });
  }
  const artifactType = typeof doc.artifactType === "string" ? doc.artifactType : doc.config?.mediaType;
  if (!artifactType) throw new KilnError("KILN_E_IMAGE", `artifact ${expectedDigest ?? "?"} has no artifactType`);
  for (const b of [doc.config, ...(Array.isArray(doc.layers) ? doc.layers : [])]) {
    if (!b || !isDigest(b.digest) || !(await store.hasBlob(b.digest))) {
      throw new KilnError("KILN_E_IMAGE", `artifact ${expectedDigest ?? "?"} needs blob ${b?.digest ?? "?"}, which is not in the store`, { hint: "pull its blobs before its manifest" });
    }
  }
  const writer = await store.createBlobWriter();
  await writer.write(manifestBytes);
  const blob = await writer.commit(expectedDigest === undefined ? {} : { digest: expectedDigest });
  const d: ReferrerDescriptor = { mediaType: MEDIA_TYPE.manifest, digest: blob.digest, size: blob.size, artifactType };
  if (doc.annotations && Object.keys(doc.annotations).length > 0) d.annotations = doc.annotations;
  await recordReferrer(store, subject, d);
  return d;
}

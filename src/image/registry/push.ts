// Push an image from the store to a registry: every blob the registry lacks
// (HEAD first, so a re-push uploads nothing it already has), then the manifest
// by digest, then by tag. The manifest bytes are the store's own, so the
// registry's digest is kiln's digest.
//
// Blobs up to `chunkThreshold` go up in one PUT (POST → PUT ?digest=, the body
// streamed from the store); larger ones in `chunkSize` PATCHes with
// Content-Range (POST → PATCH… → PUT ?digest=), which keeps memory flat and
// works with registries or proxies that cap a request's size.

import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { KilnError } from "../../errors.js";
import { resolveRef } from "../images.js";
import { referrersTag, referrersTagIndex, referrerUploads, type ReferrerDescriptor } from "../referrers.js";
import { splitRef } from "../ref.js";
import type { Store } from "../store.js";
import { ANNOTATION, MEDIA_TYPE, type Descriptor, type OciIndex, type OciManifest } from "../types.js";
import { readBody } from "./body.js";
import { RegistryClient, type Credentials } from "./client.js";
import { formatRegistryRef, type RegistryRef } from "./reference.js";

export interface BlobProgress {
  digest: string;
  size: number;
  /** bytes transferred so far */
  done: number;
  state: "start" | "progress" | "done" | "skipped";
}

export interface TransferOptions {
  credentials?: Credentials;
  insecure?: boolean;
  onProgress?: (p: BlobProgress) => void;
  /** a response body that sends nothing for this long is aborted (default 60 s) */
  idleTimeoutMs?: number;
}

export interface PushOptions extends TransferOptions {
  /** blobs larger than this go up in chunks (default 64 MiB) */
  chunkThreshold?: number;
  /** PATCH size of a chunked upload (default 16 MiB) */
  chunkSize?: number;
}

export interface TransferStats {
  /** blobs sent (push) or fetched (pull) */
  transferred: number;
  /** blobs the other side already had */
  skipped: number;
  bytesTransferred: number;
  bytesSkipped: number;
  chunked: number;
}

export interface PushResult {
  /** the store ref or digest pushed */
  source: string;
  digest: string;
  /** "REGISTRY/REPO@sha256:…" */
  reference: string;
  /** "REGISTRY/REPO:TAG", when a tag was pushed */
  tagReference?: string;
  tag?: string;
  blobs: TransferStats;
  /** the artifacts referring to the image (SBOM, signatures, provenance) that went up with it */
  referrers: ReferrersPushed;
}

export interface ReferrersPushed {
  /** artifact manifests pushed (by digest) */
  pushed: ReferrerDescriptor[];
  /**
   * "api": the registry indexes referrers itself (it answered OCI-Subject);
   * "tag": kiln maintained the fallback index at tag sha256-<hex>; "none": nothing to push
   */
  via: "api" | "tag" | "none";
}

const UPLOAD_TIMEOUT_MS = 30 * 60_000;

const UNCOMPRESSED_LAYER_TYPES: ReadonlySet<string> = new Set([MEDIA_TYPE.layerTar, MEDIA_TYPE.dockerLayerTar]);

/**
 * An image baked with image.compression: none stays on this machine. Compressing it on the way
 * would push another manifest, hence another digest than the one kiln tagged, signed and deploys,
 * so the push is refused before anything is sent.
 *
 *   layers [tar+gzip, tar+gzip] → pushed
 *   layers [tar+gzip, tar]      → KILN_E_USAGE naming the uncompressed layer
 */
export function refuseUncompressed(source: string, manifest: Pick<OciManifest, "layers">): void {
  const plain = manifest.layers.filter((l) => UNCOMPRESSED_LAYER_TYPES.has(l.mediaType));
  if (plain.length === 0) return;
  throw new KilnError("KILN_E_USAGE", `${source} has ${plain.length} uncompressed layer${plain.length === 1 ? "" : "s"} (as image.compression: none bakes them, for this machine only); nothing was pushed`, {
    hint: "remove image.compression (or set it to gzip) in kiln.yaml, bump version, run kiln bake, then push the new tag",
    details: plain.map((l) => ({ where: l.digest, message: `layer of media type ${l.mediaType}` })),
  });
}

export async function pushImage(store: Store, source: string, target: RegistryRef, opts: PushOptions = {}): Promise<PushResult> {
  if (target.digest) {
    throw new KilnError("KILN_E_USAGE", `push to ${formatRegistryRef(target)}: a push target names a repository and tag, not a digest`, {
      hint: `drop "@${target.digest.slice(0, 19)}…": the registry computes the digest from what kiln pushes`,
    });
  }
  const digest = await resolveRef(store, source);
  const manifestBytes = await store.readBlob(digest);
  const manifest = JSON.parse(manifestBytes.toString("utf8")) as OciManifest;
  refuseUncompressed(source, manifest);
  const mediaType = manifest.mediaType ?? MEDIA_TYPE.manifest;
  const tag = target.tag ?? (await defaultTag(store, source, digest, manifest));

  const client = new RegistryClient({ registry: target.registry, repository: target.repository, action: "push", credentials: opts.credentials, insecure: opts.insecure, idleTimeoutMs: opts.idleTimeoutMs });
  const threshold = opts.chunkThreshold ?? 64 * 1024 * 1024;
  const chunkSize = Math.max(1, opts.chunkSize ?? 16 * 1024 * 1024);
  const stats: TransferStats = { transferred: 0, skipped: 0, bytesTransferred: 0, bytesSkipped: 0, chunked: 0 };

  for (const blob of [...manifest.layers, manifest.config]) {
    if (await blobExists(client, blob)) {
      stats.skipped++;
      stats.bytesSkipped += blob.size;
      opts.onProgress?.({ digest: blob.digest, size: blob.size, done: blob.size, state: "skipped" });
      continue;
    }
    opts.onProgress?.({ digest: blob.digest, size: blob.size, done: 0, state: "start" });
    if (blob.size > threshold) {
      await uploadChunked(client, store, blob, chunkSize, opts.onProgress);
      stats.chunked++;
    } else {
      await uploadMonolithic(client, store, blob, opts.onProgress);
    }
    stats.transferred++;
    stats.bytesTransferred += blob.size;
    opts.onProgress?.({ digest: blob.digest, size: blob.size, done: blob.size, state: "done" });
  }

  // By digest first: a registry that refuses the manifest refuses it before any tag exists.
  await putManifest(client, digest, manifestBytes, mediaType, digest);
  if (tag !== undefined) await putManifest(client, tag, manifestBytes, mediaType, digest);
  // After the image: a registry may refuse a manifest whose subject it does not hold.
  // Their blobs are not counted in `blobs` (that is the image's own transfer).
  const referrers = await pushReferrers(client, store, digest);

  const base = `${target.registry}/${target.repository}`;
  const result: PushResult = { source, digest, reference: `${base}@${digest}`, blobs: stats, referrers };
  if (tag !== undefined) {
    result.tag = tag;
    result.tagReference = `${base}:${tag}`;
  }
  return result;
}

/** The tag a push gets when the target names none: the image's version. */
async function defaultTag(store: Store, source: string, digest: string, manifest: OciManifest): Promise<string | undefined> {
  const fromRef = splitRef(source);
  if (fromRef && !source.includes("@") && !/^(sha256:)?[0-9a-f]{12,64}$/.test(source)) return fromRef.version;
  const version = manifest.annotations?.[ANNOTATION.version];
  if (version && /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(version)) return version;
  const tagged = (await store.listTags()).find((t) => t.descriptor.digest === digest);
  return tagged?.version;
}

export async function blobExists(client: RegistryClient, blob: Descriptor): Promise<boolean> {
  const res = await client.request("HEAD", `blobs/${blob.digest}`, { ok: [200, 404], what: `blob ${blob.digest}` });
  await res.body?.cancel();
  if (res.status !== 200) return false;
  // A registry that holds different bytes under this digest is broken; trust only a matching size.
  const len = res.headers.get("content-length");
  return len === null || Number(len) === blob.size;
}

async function startUpload(client: RegistryClient, blob: Descriptor): Promise<string> {
  const res = await client.request("POST", "blobs/uploads/", { ok: [202], what: `upload of ${blob.digest}`, headers: { "content-length": "0" } });
  await res.body?.cancel();
  return client.resolveLocation(res, `upload of ${blob.digest}`);
}

function withDigest(location: string, digest: string): string {
  const u = new URL(location);
  u.searchParams.set("digest", digest);
  return u.toString();
}

async function finishUpload(client: RegistryClient, blob: Descriptor, res: Response): Promise<void> {
  await res.body?.cancel();
  const got = res.headers.get("docker-content-digest");
  if (got && got !== blob.digest) {
    throw new KilnError("KILN_E_UNSAFE", `${client.registry} stored blob ${blob.digest} as ${got}`, { hint: "the bytes changed in transit: push again" });
  }
}

export async function uploadMonolithic(client: RegistryClient, store: Store, blob: Descriptor, onProgress: PushOptions["onProgress"]): Promise<void> {
  const location = await startUpload(client, blob);
  const res = await client.request("PUT", withDigest(location, blob.digest), {
    ok: [201],
    what: `upload of blob ${blob.digest}`,
    headers: { "content-type": "application/octet-stream", "content-length": String(blob.size) },
    // The store's stream verifies the blob as it is read: a corrupt blob fails the upload.
    body: () => Readable.toWeb(Readable.from(counted(store, blob, onProgress))) as unknown as BodyInit,
    timeoutMs: UPLOAD_TIMEOUT_MS,
  });
  await finishUpload(client, blob, res);
}

async function uploadChunked(client: RegistryClient, store: Store, blob: Descriptor, chunkSize: number, onProgress: PushOptions["onProgress"]): Promise<void> {
  let location = await startUpload(client, blob);
  let offset = 0;
  const patch = async (chunk: Buffer) => {
    const end = offset + chunk.length - 1;
    const res = await client.request("PATCH", location, {
      ok: [202],
      what: `chunk ${offset}-${end} of blob ${blob.digest}`,
      headers: { "content-type": "application/octet-stream", "content-length": String(chunk.length), "content-range": `${offset}-${end}` },
      body: () => chunk as unknown as BodyInit,
      timeoutMs: UPLOAD_TIMEOUT_MS,
    });
    await res.body?.cancel();
    // The registry says how much it holds ("Range: 0-<last byte>"); it must be all we sent.
    const range = /^(?:bytes=)?0-(\d+)$/.exec(res.headers.get("range") ?? "");
    if (range && Number(range[1]) !== end) {
      throw new KilnError("KILN_E_REGISTRY", `${client.registry} holds bytes 0-${range[1]} of the upload of ${blob.digest}, expected 0-${end}`, { hint: "the upload was interrupted: push again" });
    }
    location = client.resolveLocation(res, `upload of ${blob.digest}`);
    offset += chunk.length;
    onProgress?.({ digest: blob.digest, size: blob.size, done: offset, state: "progress" });
  };
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  for await (const piece of store.openBlob(blob.digest)) {
    let buf = piece as Buffer;
    while (buf.length > 0) {
      const take = Math.min(buf.length, chunkSize - pendingBytes);
      pending.push(buf.subarray(0, take));
      pendingBytes += take;
      buf = buf.subarray(take);
      if (pendingBytes === chunkSize) {
        await patch(Buffer.concat(pending));
        pending = [];
        pendingBytes = 0;
      }
    }
  }
  if (pendingBytes > 0) await patch(Buffer.concat(pending));
  const res = await client.request("PUT", withDigest(location, blob.digest), {
    ok: [201],
    what: `upload of blob ${blob.digest}`,
    headers: { "content-length": "0" },
    timeoutMs: UPLOAD_TIMEOUT_MS,
  });
  await finishUpload(client, blob, res);
}

/** The blob's bytes, verified by the store as they are read (a corrupt blob throws at its end). */
async function* counted(store: Store, blob: Descriptor, onProgress: PushOptions["onProgress"]): AsyncGenerator<Buffer> {
  let done = 0;
  for await (const chunk of store.openBlob(blob.digest)) {
    done += (chunk as Buffer).length;
    onProgress?.({ digest: blob.digest, size: blob.size, done, state: "progress" });
    yield chunk as Buffer;
  }
}

/** PUT a manifest; returns the response headers (a referrers-capable registry answers an artifact with OCI-Subject). */
export async function putManifest(client: RegistryClient, reference: string, bytes: Buffer, mediaType: string, digest: string): Promise<Headers> {
  const res = await client.request("PUT", `manifests/${reference}`, {
    ok: [201],
    what: `manifest ${reference === digest ? digest : `${reference} (${digest.slice(0, 19)})`}`,
    headers: { "content-type": mediaType },
    body: () => bytes as unknown as BodyInit,
  });
  await res.body?.cancel();
  const got = res.headers.get("docker-content-digest");
  if (got && got !== digest) {
    throw new KilnError("KILN_E_UNSAFE", `${client.registry} stored the manifest as ${got}, not ${digest}`, {
      hint: "the registry rewrote the manifest (an old registry converting to another schema?): use a registry that stores OCI manifests as sent",
    });
  }
  return res.headers;
}

/**
 * Push the artifacts referring to `subjectDigest` (all of them, or those
 * `only` names): their blobs, then each artifact manifest by digest. A
 * registry with the referrers API indexes them from their `subject` and says
 * so with an OCI-Subject header; one without it (Debian's docker-registry
 * 2.8.2) gets the distribution-spec fallback: the image index at tag
 * sha256-<hex>, read, merged and written back. Two clients merging at once may
 * drop each other's entry (this registry has no conditional PUT); a re-push
 * restores it, since the merge is idempotent.
 */
export async function pushReferrers(client: RegistryClient, store: Store, subjectDigest: string, stats?: TransferStats, only?: ReadonlySet<string>): Promise<ReferrersPushed> {
  const uploads = (await referrerUploads(store, subjectDigest)).filter((u) => only === undefined || only.has(u.descriptor.digest));
  if (uploads.length === 0) return { pushed: [], via: "none" };
  let indexedByRegistry = true;
  for (const u of uploads) {
    for (const blob of u.blobs) {
      if (await blobExists(client, blob)) {
        if (stats) {
          stats.skipped++;
          stats.bytesSkipped += blob.size;
        }
        continue;
      }
      await uploadMonolithic(client, store, blob, undefined);
      if (stats) {
        stats.transferred++;
        stats.bytesTransferred += blob.size;
      }
    }
    const headers = await putManifest(client, u.descriptor.digest, u.manifest, MEDIA_TYPE.manifest, u.descriptor.digest);
    if (headers.get("oci-subject") !== subjectDigest) indexedByRegistry = false;
  }
  const pushed = uploads.map((u) => u.descriptor);
  if (indexedByRegistry) return { pushed, via: "api" };
  const tag = referrersTag(subjectDigest);
  const existing = await fetchReferrersIndex(client, tag);
  const merged = referrersTagIndex(existing, pushed);
  const bytes = Buffer.from(JSON.stringify(merged));
  if (existing === undefined || JSON.stringify(existing.manifests) !== JSON.stringify(merged.manifests)) {
    await putManifest(client, tag, bytes, MEDIA_TYPE.index, sha256Of(bytes));
  }
  return { pushed, via: "tag" };
}

/** The image index at a referrers fallback tag, or undefined when there is none yet. */
export async function fetchReferrersIndex(client: RegistryClient, tag: string): Promise<OciIndex | undefined> {
  const res = await client.request("GET", `manifests/${tag}`, { ok: [200, 404], what: `referrers index ${tag}`, headers: { accept: MEDIA_TYPE.index } });
  if (res.status === 404) {
    await res.body?.cancel();
    return undefined;
  }
  const body = await readBody(res, 4 * 1024 * 1024, `${client.registry}/${client.repository} referrers index ${tag}`);
  try {
    const doc = JSON.parse(body.toString("utf8")) as OciIndex;
    return Array.isArray(doc.manifests) ? doc : undefined;
  } catch {
    // Not an index: someone else's tag of that name. Rewriting it would destroy it.
    throw new KilnError("KILN_E_REGISTRY", `${client.registry}/${client.repository}:${tag} is not an image index`, { hint: "that tag is reserved for the referrers list (distribution-spec); remove the unrelated tag and push again" });
  }
}

function sha256Of(bytes: Buffer): string {
  return "sha256:" + createHash("sha256").update(bytes).digest("hex");
}

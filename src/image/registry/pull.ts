// Pull an image from a registry into the store. Nothing unverified is kept:
// the manifest's digest is checked against the reference's digest (or the
// registry's Docker-Content-Digest), every blob is streamed into a store
// writer that hashes while writing and only renames the file into blobs/ when
// digest and size match, and the manifest is written last, so a store never
// holds a manifest whose blobs are missing. An index (multi-platform image)
// resolves to its linux/<this machine's architecture> manifest.

import { KilnError } from "../../errors.js";
import { ociArchitecture } from "../compose.js";
import { isDigest, sha256Digest } from "../digest.js";
import { checkImageLayers } from "../layer-check.js";
import type { Store } from "../store.js";
import { MEDIA_TYPE, type Descriptor, type OciImageConfig, type OciIndex, type OciManifest } from "../types.js";
import { readBody } from "./body.js";
import { RegistryClient } from "./client.js";
import { fetchReferrersIndex, type BlobProgress, type TransferOptions, type TransferStats } from "./push.js";
import { referrersTag, storePulledReferrer, type ReferrerDescriptor } from "../referrers.js";
import { formatRegistryRef, parseRegistryRef, type RegistryRef } from "./reference.js";

export interface PullOptions extends TransferOptions {
  /** also tag the image in the store ("name:version"; tags never move) */
  tag?: string;
  /** the platform picked from an index (default linux/<this machine>) */
  platform?: { os: string; architecture: string };
}

export interface PullResult {
  /** the reference as asked */
  source: string;
  /** the image manifest's digest, as stored */
  digest: string;
  /** "REGISTRY/REPO@sha256:…" of that manifest */
  reference: string;
  /** when the reference named an index: its digest (the store keeps the chosen platform's manifest) */
  indexDigest?: string;
  tagged?: { ref: string; result: "created" | "exists" };
  blobs: TransferStats;
  /** the artifacts referring to the image that came with it (SBOM, signatures, provenance) */
  referrers: ReferrersPulled;
}

export interface ReferrersPulled {
  pulled: ReferrerDescriptor[];
  /** "api": the registry's referrers API; "tag": the fallback index at sha256-<hex>; "none": the registry lists none */
  via: "api" | "tag" | "none";
  /** referrers left behind, with why (a malformed or oversized artifact never fails the image's pull) */
  skipped: { digest: string; reason: string }[];
}

const MANIFEST_TYPES = new Set<string>([MEDIA_TYPE.manifest, MEDIA_TYPE.dockerManifest]);
const INDEX_TYPES = new Set<string>([MEDIA_TYPE.index, MEDIA_TYPE.dockerManifestList]);
const ACCEPT = [MEDIA_TYPE.manifest, MEDIA_TYPE.dockerManifest, MEDIA_TYPE.index, MEDIA_TYPE.dockerManifestList].join(", ");
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const MAX_CONFIG_BYTES = 8 * 1024 * 1024;

export async function pullImage(store: Store, source: RegistryRef, opts: PullOptions = {}): Promise<PullResult> {
  const wanted = source.digest ?? source.tag;
  if (wanted === undefined) {
    throw new KilnError("KILN_E_USAGE", `pull ${formatRegistryRef(source)}: name a tag or a digest`, {
      hint: `e.g. ${source.registry}/${source.repository}:1.0.0 or ${source.registry}/${source.repository}@sha256:…`,
    });
  }
  const client = new RegistryClient({ registry: source.registry, repository: source.repository, action: "pull", credentials: opts.credentials, insecure: opts.insecure, idleTimeoutMs: opts.idleTimeoutMs });
  const platform = opts.platform ?? { os: "linux", architecture: ociArchitecture(process.arch) };

  let got = await fetchManifest(client, wanted, source.digest);
  let indexDigest: string | undefined;
  if (INDEX_TYPES.has(got.mediaType)) {
    indexDigest = got.digest;
    const index = got.json as OciIndex;
    const pick = (index.manifests ?? []).find(
      (m) => MANIFEST_TYPES.has(m.mediaType) && m.platform?.os === platform.os && m.platform?.architecture === platform.architecture,
    );
    if (!pick) {
      const offered = (index.manifests ?? []).map((m) => (m.platform ? `${m.platform.os}/${m.platform.architecture}` : m.mediaType)).join(", ") || "nothing";
      throw new KilnError("KILN_E_IMAGE", `${formatRegistryRef(source)} is a multi-platform index without a ${platform.os}/${platform.architecture} image (it has ${offered})`, {
        hint: "pull an image built for this platform, or name the platform's manifest by digest",
      });
    }
    got = await fetchManifest(client, pick.digest, pick.digest);
    if (INDEX_TYPES.has(got.mediaType)) {
      throw new KilnError("KILN_E_IMAGE", `${formatRegistryRef(source)}: the index entry ${pick.digest} is itself an index`, { hint: "nested indexes are not supported; name an image manifest by digest" });
    }
  }
  const manifest = got.json as OciManifest;
  if (manifest.schemaVersion !== 2 || !manifest.config?.digest || !Array.isArray(manifest.layers)) {
    throw new KilnError("KILN_E_IMAGE", `${formatRegistryRef(source)} is not an image manifest (media type ${got.mediaType})`, {
      hint: "kiln pulls OCI and Docker schema 2 image manifests",
    });
  }

  const blobs = [manifest.config, ...manifest.layers];
  for (const [i, b] of blobs.entries()) {
    const cap = i === 0 ? MAX_CONFIG_BYTES : Number.MAX_SAFE_INTEGER;
    if (typeof b !== "object" || b === null || typeof b.digest !== "string" || !isDigest(b.digest) || !Number.isSafeInteger(b.size) || b.size < 0 || b.size > cap) {
      throw new KilnError("KILN_E_UNSAFE", `${formatRegistryRef(source)}: the manifest names ${i === 0 ? "a config" : `layer ${i - 1}`} without a valid digest and size${i === 0 ? ` (a config is at most ${MAX_CONFIG_BYTES} bytes)` : ""}`, {
        hint: "the registry serves a malformed or hostile manifest; nothing was stored",
        details: [{ where: formatRegistryRef(source), message: JSON.stringify(b)?.slice(0, 200) ?? "" }],
      });
    }
  }
  const stats: TransferStats = { transferred: 0, skipped: 0, bytesTransferred: 0, bytesSkipped: 0, chunked: 0 };
  for (const blob of blobs) {
    if (await store.hasBlob(blob.digest)) {
      stats.skipped++;
      stats.bytesSkipped += blob.size;
      opts.onProgress?.({ digest: blob.digest, size: blob.size, done: blob.size, state: "skipped" });
      continue;
    }
    await fetchBlob(client, store, blob, opts.onProgress);
    stats.transferred++;
    stats.bytesTransferred += blob.size;
  }

  // Refuse now what unpack would refuse later, before the manifest makes the image visible.
  const config = await store.readJsonBlob<OciImageConfig>(manifest.config.digest).catch((e: unknown) => {
    throw new KilnError("KILN_E_IMAGE", `${formatRegistryRef(source)}: the image config is not JSON`, { cause: e, hint: "the registry serves a malformed image" });
  });
  const diffIds = Array.isArray(config.rootfs?.diff_ids) ? config.rootfs.diff_ids : [];
  if (diffIds.length !== manifest.layers.length || !diffIds.every((d) => typeof d === "string" && isDigest(d))) {
    throw new KilnError("KILN_E_IMAGE", `${formatRegistryRef(source)}: the config lists ${diffIds.length} diff_ids for ${manifest.layers.length} layers`, { hint: "the registry serves a malformed image" });
  }
  await checkImageLayers(store, manifest.layers.map((d, i) => ({ descriptor: d, diffId: diffIds[i]! })), formatRegistryRef(source));

  // Last: the manifest makes the image visible, and every blob it names is in by now.
  const stored = await store.putBlob(got.bytes);
  if (stored.digest !== got.digest) throw new KilnError("KILN_E_INTERNAL", `manifest stored as ${stored.digest}, expected ${got.digest}`);
  const referrers = await pullReferrers(client, store, { mediaType: got.mediaType, digest: got.digest, size: got.bytes.length });
  const result: PullResult = {
    source: formatRegistryRef(source),
    digest: got.digest,
    reference: `${source.registry}/${source.repository}@${got.digest}`,
    blobs: stats,
    referrers,
  };
  if (indexDigest) result.indexDigest = indexDigest;
  if (opts.tag !== undefined) {
    const r = await store.tag(opts.tag, { mediaType: got.mediaType, digest: got.digest, size: got.bytes.length });
    result.tagged = { ref: opts.tag, result: r };
  }
  return result;
}

export const MAX_ARTIFACT_BLOB_BYTES = 16 * 1024 * 1024;
const MAX_REFERRERS = 64;

/**
 * Fetch the artifacts referring to an image: the referrers API when the
 * registry has it, else the fallback index at tag sha256-<hex>. Each artifact
 * manifest is fetched by digest, its blobs verified into the store, and it is
 * kept only if its `subject` is this image (storePulledReferrer). Runs after
 * the image is stored, so a failure here never costs the image.
 */
export async function pullReferrers(client: RegistryClient, store: Store, subject: Descriptor, stats?: TransferStats): Promise<ReferrersPulled> {
  let via: ReferrersPulled["via"] = "api";
  let list: Descriptor[] | undefined;
  try {
    const res = await client.request("GET", `referrers/${subject.digest}`, { ok: [200, 404], what: `referrers of ${subject.digest}`, headers: { accept: MEDIA_TYPE.index } });
    if (res.status === 200) {
      const body = await readBody(res, MAX_MANIFEST_BYTES, `${client.registry}/${client.repository} referrers of ${subject.digest}`);
      try {
        const doc = JSON.parse(body.toString("utf8")) as OciIndex;
        if (Array.isArray(doc.manifests)) list = doc.manifests;
      } catch {
        list = undefined;
      }
    } else {
      await res.body?.cancel();
    }
    if (list === undefined) {
      via = "tag";
      list = (await fetchReferrersIndex(client, referrersTag(subject.digest)))?.manifests;
    }
  } catch (e) {
    return { pulled: [], via: "none", skipped: [{ digest: "(referrers list)", reason: e instanceof Error ? e.message : String(e) }] };
  }
  const out: ReferrersPulled = { pulled: [], via: list && list.length > 0 ? via : "none", skipped: [] };
  for (const d of (list ?? []).slice(0, MAX_REFERRERS)) {
    const digest = typeof d?.digest === "string" ? d.digest : "?";
    try {
      if (!isDigest(digest) || d.mediaType !== MEDIA_TYPE.manifest) throw new Error(`not an OCI manifest descriptor (${String(d?.mediaType)})`);
      const m = await fetchManifest(client, digest, digest);
      const doc = m.json as { config?: Descriptor; layers?: Descriptor[] };
      const blobs = [doc.config, ...(Array.isArray(doc.layers) ? doc.layers : [])];
      for (const b of blobs) {
        if (!b || !isDigest(b.digest) || !Number.isSafeInteger(b.size) || b.size < 0 || b.size > MAX_ARTIFACT_BLOB_BYTES) throw new Error("a blob without a valid digest and size (at most 16 MiB)");
        if (await store.hasBlob(b.digest)) continue;
        await fetchBlob(client, store, b, undefined);
        if (stats) {
          stats.transferred++;
          stats.bytesTransferred += b.size;
        }
      }
      out.pulled.push(await storePulledReferrer(store, subject, m.bytes, digest));
    } catch (e) {
      out.skipped.push({ digest, reason: e instanceof Error ? e.message : String(e) });
    }
  }
  return out;
}

export interface FetchedManifest {
  bytes: Buffer;
  digest: string;
  mediaType: string;
  json: unknown;
}

export async function fetchManifest(client: RegistryClient, reference: string, expectedDigest: string | undefined): Promise<FetchedManifest> {
  const what = `manifest ${reference}`;
  const res = await client.request("GET", `manifests/${reference}`, { ok: [200], what, headers: { accept: ACCEPT } });
  const bytes = await readBody(res, MAX_MANIFEST_BYTES, `${client.registry}/${client.repository} ${what}`);
  const digest = sha256Digest(bytes);
  // By digest: the bytes must hash to it. By tag: to what the registry says the tag is, if it says.
  const claimed = expectedDigest ?? res.headers.get("docker-content-digest") ?? undefined;
  if (claimed !== undefined && claimed.startsWith("sha256:") && claimed !== digest) {
    throw new KilnError("KILN_E_UNSAFE", `${client.registry}/${client.repository} ${what} does not match its digest: expected ${claimed}, got ${digest}`, {
      hint: "the registry or something between it and kiln altered the manifest; nothing was stored. Check the registry and pull again",
      details: [{ where: claimed, message: `content hashes to ${digest}` }],
    });
  }
  let json: { mediaType?: string; schemaVersion?: number; manifests?: unknown };
  try {
    json = JSON.parse(bytes.toString("utf8")) as typeof json;
  } catch (e) {
    throw new KilnError("KILN_E_IMAGE", `${client.registry}/${client.repository} ${what} is not JSON`, { cause: e, hint: "check the reference" });
  }
  const header = (res.headers.get("content-type") ?? "").split(";")[0]!.trim();
  const mediaType = json.mediaType ?? (MANIFEST_TYPES.has(header) || INDEX_TYPES.has(header) ? header : Array.isArray(json.manifests) ? MEDIA_TYPE.index : MEDIA_TYPE.manifest);
  if (!MANIFEST_TYPES.has(mediaType) && !INDEX_TYPES.has(mediaType)) {
    throw new KilnError("KILN_E_IMAGE", `${client.registry}/${client.repository} ${what} has media type ${mediaType}, which kiln cannot pull`, {
      hint: json.schemaVersion === 1 ? "Docker schema 1 manifests are obsolete: re-push the image with a current tool" : "kiln pulls OCI and Docker schema 2 image manifests and indexes",
    });
  }
  return { bytes, digest, mediaType, json };
}

export async function fetchBlob(client: RegistryClient, store: Store, blob: Descriptor, onProgress: ((p: BlobProgress) => void) | undefined): Promise<void> {
  const res = await client.request("GET", `blobs/${blob.digest}`, { ok: [200], what: `blob ${blob.digest}` });
  onProgress?.({ digest: blob.digest, size: blob.size, done: 0, state: "start" });
  const w = await store.createBlobWriter();
  let done = 0;
  try {
    if (!res.body) throw new KilnError("KILN_E_REGISTRY", `${client.registry} sent blob ${blob.digest} without a body`, { hint: "retry the pull" });
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      done += chunk.length;
      // A registry that sends more than the manifest declared is not sending this blob.
      if (done > blob.size) {
        throw new KilnError("KILN_E_UNSAFE", `blob ${blob.digest} from ${client.registry} is longer than its declared ${blob.size} bytes`, {
          hint: "the registry serves the wrong content for this digest; nothing was stored",
          details: [{ where: blob.digest, message: "size mismatch" }],
        });
      }
      await w.write(chunk);
      onProgress?.({ digest: blob.digest, size: blob.size, done, state: "progress" });
    }
  } catch (e) {
    await w.abort();
    if (e instanceof KilnError) throw e;
    throw new KilnError("KILN_E_REGISTRY", `download of blob ${blob.digest} from ${client.registry} broke off after ${done} bytes`, { cause: e, hint: "retry the pull: blobs already fetched are kept" });
  }
  // commit() hashes what was written and only renames it into blobs/ if it is this blob.
  try {
    await w.commit({ digest: blob.digest, size: blob.size });
  } catch (e) {
    if (e instanceof KilnError && e.code === "KILN_E_UNSAFE") {
      throw new KilnError("KILN_E_UNSAFE", `blob ${blob.digest} from ${client.registry}/${client.repository} does not match its digest; it was not stored`, {
        hint: "the registry or something between it and kiln altered the blob: check the registry, then pull again",
        details: e.details,
        cause: e,
      });
    }
    throw e;
  }
  onProgress?.({ digest: blob.digest, size: blob.size, done, state: "done" });
}

/**
 * `kiln deploy REGISTRY/REPO:TAG` or `…@sha256:…`: pull (credentials from
 * KILN_REGISTRY_USERNAME / KILN_REGISTRY_PASSWORD), check that what arrived is
 * what a digest reference names, and return the digest to deploy.
 */
export async function pullForDeploy(store: Store, ref: string, env: NodeJS.ProcessEnv = process.env, onProgress?: (p: BlobProgress) => void): Promise<PullResult> {
  const source = parseRegistryRef(ref);
  const credentials = env.KILN_REGISTRY_USERNAME && env.KILN_REGISTRY_PASSWORD !== undefined ? { username: env.KILN_REGISTRY_USERNAME, password: env.KILN_REGISTRY_PASSWORD } : undefined;
  const pulled = await pullImage(store, source, { credentials, ...(onProgress ? { onProgress } : {}) });
  if (source.digest && pulled.digest !== source.digest && pulled.indexDigest !== source.digest) {
    throw new KilnError("KILN_E_UNSAFE", `pulled ${pulled.digest} for ${ref}`, { hint: "the registry answered with another image: check it, then deploy again" });
  }
  return pulled;
}

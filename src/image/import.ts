// Importing a base image: an OCI layout directory, an oci-archive (the same
// layout in a tar) or a docker-archive (`docker save`). Every blob is verified
// against its digest before it enters the store; docker-archive layers, which
// are uncompressed, are gzipped once with kiln's pinned gzip (cached by
// diff_id and layer format), so a re-imported image keeps the same layer
// digests — or, for a bake with image.compression: none, kept as they are.

import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, stat } from "node:fs/promises";
import { join } from "node:path";
import { KilnError } from "../errors.js";
import { isGzipFile, type ExtractedArchive } from "./archive.js";
import type { BaseContext, BaseImage } from "./base-image.js";
import { ociArchitecture } from "./compose.js";
import { isDigest, sha256Digest } from "./digest.js";
import { cachedLayer, hashFile, LAYER_FORMAT } from "./layer.js";
import { BlockGzip } from "./parallel-gzip.js";
import type { Store } from "./store.js";
import { ANNOTATION, MEDIA_TYPE, type Descriptor, type LayerRecord, type OciImageConfig, type OciIndex, type OciManifest } from "./types.js";

// OCI layout directory or oci-archive

export interface LayoutSource {
  where: string;
  /** host path of the blob, or undefined if absent */
  blobFile(digest: string): string | undefined;
  indexFile(): string | undefined;
}

export function dirSource(dir: string): LayoutSource {
  return {
    where: dir,
    blobFile: (digest) => (isDigest(digest) ? join(dir, "blobs", "sha256", digest.slice(7)) : undefined),
    indexFile: () => join(dir, "index.json"),
  };
}

export function archiveSource(archive: ExtractedArchive, path: string): LayoutSource {
  return {
    where: path,
    blobFile: (digest) => (isDigest(digest) ? archive.file(`blobs/sha256/${digest.slice(7)}`) : undefined),
    indexFile: () => archive.file("index.json"),
  };
}

/** A descriptor from an untrusted manifest or index: a sha256 digest and, if any, a sane size. */
function checkDescriptor(d: unknown, where: string): Descriptor {
  const o = (typeof d === "object" && d !== null ? d : {}) as Partial<Descriptor>;
  if (typeof o.digest !== "string" || !isDigest(o.digest) || (o.size !== undefined && !(Number.isSafeInteger(o.size) && o.size >= 0))) {
    throw new KilnError("KILN_E_IMAGE", `${where} names a blob without a valid sha256 digest and size`, {
      hint: "the image is malformed or hostile; do not use it",
      details: [{ where, message: JSON.stringify(d)?.slice(0, 200) ?? String(d) }],
    });
  }
  return o as Descriptor;
}

async function readVerified(src: LayoutSource, desc: Descriptor): Promise<Buffer> {
  const d = checkDescriptor(desc, src.where);
  const file = src.blobFile(d.digest);
  let data: Buffer;
  try {
    if (file === undefined) throw new Error("no such blob");
    data = await readCapped(file, MAX_JSON_BYTES, `${src.where}: blob ${d.digest}`);
  } catch (e) {
    if (e instanceof KilnError) throw e;
    throw new KilnError("KILN_E_IMAGE", `${src.where} lacks blob ${d.digest}`, { cause: e });
  }
  const actual = sha256Digest(data);
  if (actual !== d.digest || (d.size !== undefined && d.size !== data.length)) {
    throw new KilnError("KILN_E_UNSAFE", `blob ${d.digest} in ${src.where} does not match its content (got ${actual})`, {
      hint: "the base image is corrupt or was modified",
      details: [{ where: d.digest, message: `content hashes to ${actual}` }],
    });
  }
  return data;
}

/** Copy a blob into the store (verifying it) unless the store already holds it. */
async function copyBlob(store: Store, file: string | undefined, d: Descriptor, where: string): Promise<boolean> {
  if (await store.hasBlob(d.digest)) return false;
  if (file === undefined) throw new KilnError("KILN_E_IMAGE", `${where} lacks blob ${d.digest}`);
  const w = await store.createBlobWriter();
  try {
    for await (const chunk of createReadStream(file)) await w.write(chunk as Buffer);
  } catch (e) {
    await w.abort();
    throw new KilnError("KILN_E_IMAGE", `cannot read ${file}`, { cause: e });
  }
  await w.commit({ digest: d.digest, size: d.size });
  return true;
}

const GZIP_LAYER_TYPES = new Set<string>([MEDIA_TYPE.layerGzip, MEDIA_TYPE.dockerLayerGzip]);
const TAR_LAYER_TYPES = new Set<string>([MEDIA_TYPE.layerTar, MEDIA_TYPE.dockerLayerTar]);

export async function importOci(src: LayoutSource, spec: string, tag: string | undefined, ctx: BaseContext): Promise<BaseImage> {
  ctx.onProgress({ phase: "import", detail: spec });
  const indexFile = src.indexFile();
  let index: OciIndex;
  try {
    if (indexFile === undefined) throw new Error("no index.json");
    index = JSON.parse((await readCapped(indexFile, MAX_JSON_BYTES, `${src.where}: index.json`)).toString("utf8")) as OciIndex;
  } catch (e) {
    throw new KilnError("KILN_E_IMAGE", `${src.where} is not an OCI image layout (index.json missing or invalid)`, { cause: e });
  }
  const manifests = index.manifests ?? [];
  let chosen: Descriptor | undefined;
  if (tag !== undefined) {
    chosen = manifests.find((d) => d.annotations?.[ANNOTATION.refName] === tag);
  } else if (manifests.length === 1) {
    chosen = manifests[0];
  }
  if (!chosen) {
    const refs = manifests.map((d) => d.annotations?.[ANNOTATION.refName]).filter((r): r is string => !!r);
    throw new KilnError("KILN_E_IMAGE", tag === undefined ? `${src.where} holds ${manifests.length} images; name one` : `${src.where} has no image tagged ${tag}`, {
      hint: refs.length > 0 ? `available: ${refs.slice(0, 10).map((r) => `oci:…:${r}`).join(", ")}` : "the layout has no tagged images",
    });
  }
  const refName = chosen.annotations?.[ANNOTATION.refName];
  let manifestDesc = chosen;
  let manifestBytes = await readVerified(src, manifestDesc);
  let parsed = parseJson<OciManifest & OciIndex>(manifestBytes, `${spec}: manifest ${manifestDesc.digest}`);
  if (Array.isArray(parsed.manifests)) {
    // An image index: pick this machine's platform.
    const arch = ociArchitecture(process.arch);
    const pick = parsed.manifests.find((d) => d.platform?.os === "linux" && d.platform.architecture === arch);
    if (!pick) throw new KilnError("KILN_E_IMAGE", `${spec} has no linux/${arch} image`);
    manifestDesc = pick;
    manifestBytes = await readVerified(src, pick);
    parsed = parseJson<OciManifest & OciIndex>(manifestBytes, `${spec}: manifest ${pick.digest}`);
  }
  const manifest = parsed as OciManifest;
  if (!manifest.config || !Array.isArray(manifest.layers)) throw new KilnError("KILN_E_IMAGE", `${spec}: ${manifestDesc.digest} is not an image manifest`);
  const configBytes = await readVerified(src, manifest.config);
  const config = parseJson<OciImageConfig>(configBytes, `${spec}: config ${manifest.config.digest}`);
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (!Array.isArray(diffIds) || diffIds.length !== manifest.layers.length) {
    throw new KilnError("KILN_E_IMAGE", `${spec}: config lists ${diffIds.length} diff_ids for ${manifest.layers.length} layers`);
  }
  let copied = false;
  const layers: LayerRecord[] = [];
  for (const [i, raw] of manifest.layers.entries()) {
    const l = checkDescriptor(raw, `${spec}: layer ${i}`);
    if (typeof diffIds[i] !== "string" || !isDigest(diffIds[i]!)) throw new KilnError("KILN_E_IMAGE", `${spec}: bad diff_id for layer ${i}`, { hint: "the image is malformed; re-export it" });
    const mediaType = GZIP_LAYER_TYPES.has(l.mediaType) ? MEDIA_TYPE.layerGzip : TAR_LAYER_TYPES.has(l.mediaType) ? MEDIA_TYPE.layerTar : undefined;
    if (!mediaType) throw new KilnError("KILN_E_IMAGE", `${spec}: layer ${l.digest} has unsupported media type ${l.mediaType}`, { hint: "kiln reads gzip and uncompressed tar layers" });
    const phase = `import layer ${i + 1}/${manifest.layers.length}`;
    ctx.onProgress({ phase, step: "start", detail: l.digest.slice(0, 19), total: l.size });
    const fresh = await copyBlob(ctx.store, src.blobFile(l.digest), l, src.where);
    ctx.onProgress({ phase, step: "end", bytes: l.size, detail: fresh ? "copied into the store" : "already in the store" });
    copied = fresh || copied;
    layers.push({ descriptor: { mediaType, digest: l.digest, size: l.size }, diffId: diffIds[i]! });
  }
  // Keep the exact manifest and config bytes, so base.digest is the digest the source knows it by.
  copied = (await copyBlob(ctx.store, src.blobFile(manifest.config.digest), manifest.config, src.where)) || copied;
  copied = (await copyBlob(ctx.store, src.blobFile(manifestDesc.digest), manifestDesc, src.where)) || copied;
  return { name: refName ?? spec, digest: manifestDesc.digest, config, layers, cached: !copied };
}

// ---------------------------------------------------------------------------
// docker-archive (docker save)

interface DockerManifestEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

function isDockerManifestEntry(e: unknown): e is DockerManifestEntry {
  if (typeof e !== "object" || e === null) return false;
  const o = e as Record<string, unknown>;
  const strings = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === "string");
  return typeof o.Config === "string" && strings(o.Layers) && (o.RepoTags === undefined || o.RepoTags === null || strings(o.RepoTags));
}

/** Manifests, indexes and configs are small; a larger "JSON" file is not one. */
const MAX_JSON_BYTES = 8 * 1024 * 1024;

async function readCapped(file: string, cap: number, what: string): Promise<Buffer> {
  const fh = await open(file, "r");
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size > cap) {
      throw new KilnError("KILN_E_IMAGE", `${what} is ${st.isFile() ? `${st.size} bytes, more than the ${cap} a manifest or config may have` : "not a regular file"}`, {
        hint: "the image is malformed or hostile; do not use it",
      });
    }
    return await fh.readFile();
  } finally {
    await fh.close();
  }
}

function parseJson<T>(bytes: Buffer, what: string): T {
  try {
    const v = JSON.parse(bytes.toString("utf8")) as unknown;
    if (typeof v !== "object" || v === null) throw new Error("not an object");
    return v as T;
  } catch (e) {
    throw new KilnError("KILN_E_IMAGE", `${what} is not a JSON object`, { cause: e, hint: "the image is malformed; re-export it" });
  }
}

export async function importDockerArchive(archive: ExtractedArchive, path: string, spec: string, tag: string | undefined, ctx: BaseContext): Promise<BaseImage> {
  ctx.onProgress({ phase: "import", detail: spec });
  const mf = archive.file("manifest.json");
  let entries: DockerManifestEntry[];
  try {
    if (mf === undefined) throw new Error("no manifest.json");
    entries = JSON.parse((await readCapped(mf, MAX_JSON_BYTES, `${path}: manifest.json`)).toString("utf8")) as DockerManifestEntry[];
    if (!Array.isArray(entries)) throw new Error("manifest.json is not a list");
  } catch (e) {
    throw new KilnError("KILN_E_IMAGE", `${path} is not a docker-archive (docker save) file`, { cause: e });
  }
  const bad = entries.findIndex((e) => !isDockerManifestEntry(e));
  if (bad !== -1) {
    throw new KilnError("KILN_E_IMAGE", `${path}: manifest.json entry ${bad} is not an image (it needs "Config": a file name and "Layers": a list of file names)`, {
      hint: "the archive was not written by docker save, or was modified; re-export it",
      details: [{ where: `${path}:manifest.json[${bad}]`, message: "malformed entry" }],
    });
  }
  const entry = tag !== undefined ? entries.find((e) => (e.RepoTags ?? []).some((t) => t === tag || t.endsWith(`/${tag}`))) : entries.length === 1 ? entries[0] : undefined;
  if (!entry) {
    const tags = entries.flatMap((e) => e.RepoTags ?? []);
    throw new KilnError("KILN_E_IMAGE", tag === undefined ? `${path} holds ${entries.length} images; name one` : `${path} has no image tagged ${tag}`, {
      hint: tags.length > 0 ? `available: ${tags.slice(0, 10).join(", ")} (docker-archive:PATH:NAME:TAG)` : undefined,
    });
  }
  const configFile = archive.file(entry.Config);
  if (configFile === undefined) throw new KilnError("KILN_E_IMAGE", `${path} lacks ${entry.Config}`);
  const configBytes = await readCapped(configFile, MAX_JSON_BYTES, `${path}: ${entry.Config}`);
  const configDigest = sha256Digest(configBytes);
  const config = parseJson<OciImageConfig>(configBytes, `${path}: ${entry.Config}`);
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== entry.Layers.length) {
    throw new KilnError("KILN_E_IMAGE", `${path}: config lists ${diffIds.length} diff_ids for ${entry.Layers.length} layers`);
  }
  let built = false;
  const layers: LayerRecord[] = [];
  for (const [i, name] of entry.Layers.entries()) {
    const file = archive.file(name);
    if (file === undefined) throw new KilnError("KILN_E_IMAGE", `${path} lacks layer ${name}`);
    const diffId = diffIds[i]!;
    if (!isDigest(diffId)) throw new KilnError("KILN_E_IMAGE", `${path}: bad diff_id ${diffId}`);
    const phase = `import layer ${i + 1}/${entry.Layers.length}`;
    ctx.onProgress({ phase, step: "start", detail: diffId.slice(0, 19) });
    if (await isGzipFile(file)) {
      const { size, sha256 } = await hashFile(file);
      const d: Descriptor = { mediaType: MEDIA_TYPE.layerGzip, digest: `sha256:${sha256}`, size };
      const fresh = await copyBlob(ctx.store, file, d, path);
      ctx.onProgress({ phase, step: "end", bytes: size, detail: fresh ? "copied into the store" : "already in the store" });
      built = fresh || built;
      layers.push({ descriptor: d, diffId });
      continue;
    }
    if (ctx.layerWrite?.compression === "none") {
      // A local-only image keeps the tar as it is: its digest is its diff_id (checked on commit).
      const d: Descriptor = { mediaType: MEDIA_TYPE.layerTar, digest: diffId, size: (await stat(file)).size };
      const fresh = await copyBlob(ctx.store, file, d, path);
      ctx.onProgress({ phase, step: "end", bytes: d.size, detail: fresh ? "copied into the store (uncompressed)" : "already in the store" });
      built = fresh || built;
      layers.push({ descriptor: d, diffId });
      continue;
    }
    // Uncompressed (the usual docker save form): compress once, deterministically, cached by diff_id and format.
    const key = sha256Digest(`${LAYER_FORMAT} ${diffId}`).slice(7);
    const threads = ctx.layerWrite?.threads ?? 1;
    const { record, cached } = await cachedLayer(ctx.store, "imported-layers", key, () => compressTarFile(ctx.store, file, diffId, path, threads));
    ctx.onProgress({ phase, step: "end", stored: record.descriptor.size, detail: cached ? "compressed before (cached)" : "compressed" });
    built = built || !cached;
    layers.push(record);
  }
  await ctx.store.putBlob(configBytes);
  return { name: entry.RepoTags?.[0] ?? spec, digest: configDigest, config, layers, cached: !built };
}

async function compressTarFile(store: Store, file: string, diffId: string, where: string, threads: number): Promise<LayerRecord> {
  const w = await store.createBlobWriter();
  const gz = new BlockGzip(threads, (member) => w.write(member));
  const h = createHash("sha256");
  try {
    for await (const chunk of createReadStream(file)) {
      h.update(chunk as Buffer);
      await gz.push(chunk as Buffer);
    }
    await gz.finish();
  } catch (e) {
    await gz.close();
    await w.abort();
    throw e;
  }
  const actual = "sha256:" + h.digest("hex");
  if (actual !== diffId) {
    await w.abort();
    throw new KilnError("KILN_E_UNSAFE", `a layer in ${where} does not match its diff_id ${diffId} (got ${actual})`, {
      hint: "the archive is corrupt or was modified",
      details: [{ where: diffId, message: `content hashes to ${actual}` }],
    });
  }
  const { digest, size } = await w.commit();
  return { descriptor: { mediaType: MEDIA_TYPE.layerGzip, digest, size }, diffId };
}

// Export an image from the store as a single file other tools load:
// - "oci": an oci-archive (an OCI image layout in a tar, index.json carrying
//   org.opencontainers.image.ref.name = "name:version");
// - "docker-archive": `docker save` format (manifest.json with Config /
//   RepoTags / Layers, the config as <hex>.json, uncompressed layers as
//   <diffid-hex>.tar, and the legacy `repositories` file).
// Every blob is verified as it is read; the file appears by rename when complete.
// A docker-archive's uncompressed layers are streamed into it (gunzip → diff_id check → tar
// entry), never written to a scratch file: their length, which the tar header needs first,
// is recorded when kiln writes the layer, else counted by a first pass (and then recorded).

import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, rename, rm, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { pipeline } from "node:stream";
import { pipeline as pipelineP } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import tar from "tar-stream";
import { KilnError } from "../errors.js";
import { canonicalBytes, digestHex } from "./digest.js";
import { readImage, resolveRef } from "./images.js";
import { forgetTarSize, knownTarSize, recordTarSize, type TarHeader } from "./layer.js";
import { splitRef } from "./ref.js";
import type { Store } from "./store.js";
import { ANNOTATION, MEDIA_TYPE, type Descriptor, type OciIndex } from "./types.js";

export type ExportFormat = "oci" | "docker-archive";

export interface ExportResult {
  /** the tag written into the archive, if the image has one */
  ref?: string;
  digest: string;
  format: ExportFormat;
  outFile: string;
  /** bytes */
  size: number;
}

interface TarMember {
  name: string;
  size: number;
  /** an in-memory body, or a verified store blob, or a layer blob uncompressed (checked against its diff_id) */
  body: { data: Buffer } | { blob: string } | { layer: Descriptor; diffId: string };
}

export interface ExportOptions {
  /** write no tag into the archive (a Docker Engine then knows the image only by its ID) */
  untagged?: boolean;
  /**
   * docker-archive only: diff IDs whose layer files are left out (manifest.json still names them).
   * For an engine that already holds those layers, and only a leading run of them: Docker's load
   * reads a layer's file only when it lacks the layer's chain (the layers below it included).
   */
  omitLayers?: ReadonlySet<string>;
}

export async function exportImage(store: Store, ref: string, format: ExportFormat, outFile: string, opts: ExportOptions = {}): Promise<ExportResult> {
  if (format !== "oci" && format !== "docker-archive") {
    throw new KilnError("KILN_E_USAGE", `unknown export format ${JSON.stringify(format)}`, { hint: 'use "oci" or "docker-archive"' });
  }
  const digest = await resolveRef(store, ref);
  const tags = (await store.listTags()).filter((t) => t.descriptor.digest === digest).map((t) => t.ref);
  const tag = opts.untagged ? undefined : tags.includes(ref) ? ref : tags[0];
  const { manifest, config } = await readImage(store, digest);
  const created = manifest.annotations?.[ANNOTATION.created] ?? config.created;
  const mtime = created ? Math.max(0, Math.floor(Date.parse(created) / 1000)) || 0 : 0;

  await mkdir(dirname(outFile), { recursive: true });
  const tmpOut = `${outFile}.tmp-${process.pid}-${Date.now()}`;
  try {
    let members: TarMember[];
    if (format === "oci") {
      members = ociMembers(await store.readBlob(digest), digest, [manifest.config, ...manifest.layers], tag);
    } else {
      members = [];
      const layerNames: string[] = [];
      const seen = new Set<string>();
      for (const [i, l] of manifest.layers.entries()) {
        const diffId = config.rootfs.diff_ids[i];
        if (diffId === undefined) throw new KilnError("KILN_E_IMAGE", `${digest}: config has fewer diff_ids than layers`);
        const name = `${digestHex(diffId)}.tar`;
        layerNames.push(name);
        if (seen.has(name) || opts.omitLayers?.has(diffId)) continue;
        seen.add(name);
        const size = await uncompressedSize(store, l, diffId);
        members.push({ name, size, body: { layer: l, diffId } });
      }
      const configName = `${digestHex(manifest.config.digest)}.json`;
      members.push({ name: configName, size: manifest.config.size, body: { blob: manifest.config.digest } });
      const repoTags = tag ? [tag] : null;
      const dm = Buffer.from(JSON.stringify([{ Config: configName, RepoTags: repoTags, Layers: layerNames }]));
      members.push({ name: "manifest.json", size: dm.length, body: { data: dm } });
      const parts = tag ? splitRef(tag) : undefined;
      if (parts && layerNames.length > 0) {
        const top = layerNames[layerNames.length - 1]!.replace(/\.tar$/, "");
        const repos = canonicalBytes({ [parts.name]: { [parts.version]: top } });
        members.push({ name: "repositories", size: repos.length, body: { data: repos } });
      }
    }
    members.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    await writeTar(store, members, mtime, tmpOut);
    await rename(tmpOut, outFile);
  } catch (e) {
    await rm(tmpOut, { force: true });
    throw e;
  }
  const { size } = await stat(outFile);
  return { ref: tag, digest, format, outFile, size };
}

function ociMembers(manifestBytes: Buffer, digest: string, blobs: Descriptor[], tag: string | undefined): TarMember[] {
  const index: OciIndex = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE.index,
    manifests: [
      {
        mediaType: MEDIA_TYPE.manifest,
        digest,
        size: manifestBytes.length,
        ...(tag ? { annotations: { [ANNOTATION.refName]: tag } } : {}),
      },
    ],
  };
  const indexBytes = canonicalBytes(index);
  const layout = Buffer.from('{"imageLayoutVersion":"1.0.0"}');
  const members: TarMember[] = [
    { name: "oci-layout", size: layout.length, body: { data: layout } },
    { name: "index.json", size: indexBytes.length, body: { data: indexBytes } },
    { name: `blobs/sha256/${digestHex(digest)}`, size: manifestBytes.length, body: { data: manifestBytes } },
  ];
  const seen = new Set<string>([digest]);
  for (const b of blobs) {
    if (seen.has(b.digest)) continue;
    seen.add(b.digest);
    members.push({ name: `blobs/sha256/${digestHex(b.digest)}`, size: b.size, body: { blob: b.digest } });
  }
  return members;
}

/**
 * The uncompressed length of a layer: from the cache, else counted by one pass through
 * layerChunks (which checks blob digest and diff_id). A wrong cached length cannot reach an
 * archive unnoticed: the streaming pass checks the length and the diff_id again.
 */
async function uncompressedSize(store: Store, layer: Descriptor, diffId: string): Promise<number> {
  const known = await knownTarSize(store, diffId);
  if (known !== undefined) return known;
  let size = 0;
  for await (const chunk of layerChunks(store, layer, diffId)) size += chunk.length;
  await recordTarSize(store, diffId, size);
  return size;
}

/**
 * A layer blob's uncompressed content, chunk by chunk, checked as it goes: the blob against its
 * digest (store.openBlob), the content against `diffId` and, when given, its length against
 * `size` — a mismatch throws KILN_E_UNSAFE after the last chunk (the caller drops its output).
 */
async function* layerChunks(store: Store, layer: Descriptor, diffId: string, size?: number): AsyncGenerator<Buffer> {
  const gz = layer.mediaType === MEDIA_TYPE.layerGzip || layer.mediaType === MEDIA_TYPE.dockerLayerGzip;
  const hash = createHash("sha256");
  let total = 0;
  const blob = store.openBlob(layer.digest);
  const source: AsyncIterable<Buffer> = gz ? pipeline(blob, createGunzip({ chunkSize: 256 * 1024 }), () => undefined) : blob;
  try {
    for await (const chunk of source) {
      hash.update(chunk);
      total += chunk.length;
      if (size !== undefined && total > size) break;
      yield chunk;
    }
  } catch (e) {
    if (e instanceof KilnError) throw e;
    await store.verifyBlob(layer.digest); // a corrupt blob is KILN_E_UNSAFE, not a gzip error
    throw new KilnError("KILN_E_IMAGE", `cannot decompress layer ${layer.digest}: ${(e as Error).message}`, { cause: e });
  } finally {
    blob.destroy();
  }
  if (size !== undefined && total !== size) {
    await forgetTarSize(store, diffId);
    throw new KilnError("KILN_E_UNSAFE", `layer ${layer.digest} does not uncompress to the ${size} bytes recorded for it`, {
      hint: "export again: the length is counted afresh",
      details: [{ where: layer.digest, message: "length mismatch" }],
    });
  }
  const actual = "sha256:" + hash.digest("hex");
  if (actual !== diffId) {
    throw new KilnError("KILN_E_UNSAFE", `layer ${layer.digest} does not match its diff_id ${diffId} (got ${actual})`, {
      details: [{ where: layer.digest, message: "diff_id mismatch" }],
    });
  }
}

async function writeTar(store: Store, members: TarMember[], mtime: number, outFile: string): Promise<void> {
  const pack = tar.pack();
  const dirs = new Set<string>();
  for (const m of members) {
    const parts = m.name.split("/");
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join("/"));
  }
  const header = (name: string, size: number, type: "file" | "directory"): TarHeader => ({
    name: type === "directory" ? `${name}/` : name,
    size,
    type,
    mode: type === "directory" ? 0o755 : 0o644,
    uid: 0,
    gid: 0,
    uname: "",
    gname: "",
    mtime: new Date(mtime * 1000),
  });
  const produce = async () => {
    try {
      for (const d of [...dirs].sort()) {
        await new Promise<void>((res, rej) => pack.entry(header(d, 0, "directory"), (e) => (e ? rej(e) : res())));
      }
      for (const m of members) {
        const h = header(m.name, m.size, "file");
        if ("data" in m.body) {
          const data = m.body.data;
          await new Promise<void>((res, rej) => pack.entry(h, data, (e) => (e ? rej(e) : res())));
          continue;
        }
        const body = m.body;
        await new Promise<void>((res, rej) => {
          const sink = pack.entry(h, (e) => (e ? rej(e) : res()));
          sink.on("error", () => undefined); // reported through rej
          const source = "layer" in body ? layerChunks(store, body.layer, body.diffId, m.size) : (store.openBlob(body.blob) as AsyncIterable<Buffer>);
          (async () => {
            for await (const chunk of source) {
              if (!sink.write(chunk)) await new Promise<void>((r) => sink.once("drain", () => r()));
            }
            sink.end(undefined);
          })().catch((e: Error) => {
            sink.destroy(e);
            rej(e);
          });
        });
      }
      pack.finalize();
    } catch (e) {
      pack.destroy(e as Error);
      throw e;
    }
  };
  const out = createWriteStream(outFile, { mode: 0o644 });
  const results = await Promise.allSettled([produce(), pipelineP(pack, out)]);
  const errors = results.filter((r): r is PromiseRejectedResult => r.status === "rejected").map((r) => r.reason as unknown);
  // The producer's error says why (e.g. a blob failed verification); the pipeline's only that it stopped.
  if (errors.length > 0) throw errors.find((e) => e instanceof KilnError) ?? errors[0];
}

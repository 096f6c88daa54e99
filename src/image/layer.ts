// Deterministic layers: the same entries and mtime give the same tar bytes
// and the same gzip bytes, on any machine, any Node version and any number of
// threads.
//
// What makes a layer reproducible here:
// - entries are planned first (planLayer): parents added, sorted byte-wise,
//   duplicates refused, so host readdir order never leaks in;
// - every header is written from the plan alone: uid/gid 0, empty
//   uname/gname, one mtime for all, normalized modes, no atime/ctime/pax extras;
// - gzip is a pinned WebAssembly deflate (parallel-gzip.ts says which and why)
//   at a pinned level, one gzip member per fixed 1 MiB block of the tar, with
//   mtime 0 and no file name in the headers. The blocks are compressed on
//   worker threads (KILN_BAKE_THREADS, default: every core), but the block size
//   is a constant of the format, so the thread count never shows in the bytes.
//   Node's zlib is avoided for writing because its output changes with the
//   bundled (Chromium) zlib.
//
// Format history (LAYER_FORMAT): kiln-layer/1 was one gzip member fed in 64 KiB
// chunks on one thread; kiln-layer/2 (1 MiB members, in parallel) gives every
// layer, and so every image, a new digest once: the same inputs baked before and
// after the change differ, and two bakes by the same kiln still agree.
// kiln-layer/3 swaps fflate level 6 for wasm miniz_oxide level 1 (5× less CPU,
// ~20% larger layers): again every digest changes once.
//
// A layer may also be left uncompressed (image.compression: none): the tar
// itself is the blob (media type …layer.v1.tar), for images that are only run
// here and never pushed.

import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { lstat, open, readdir, readlink, realpath } from "node:fs/promises";
import { createRequire } from "node:module";
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import tar from "tar-stream";
import { KilnError } from "../errors.js";
import { canonicalJson, isDigest, sha256Digest } from "./digest.js";
import { BlockGzip, GZIP_BLOCK, GZIP_ENCODER, GZIP_LEVEL } from "./parallel-gzip.js";
import { compareBytes, entryComponents, imagePathFromDest, resolveLinkTarget } from "./paths.js";
import type { Store } from "./store.js";
import { MEDIA_TYPE, type FileEntry, type LayerCompression, type LayerRecord, type LayerWriteOptions, type LayerRole, type ProgressFn } from "./types.js";

/** What tar-stream's pack.entry() accepts. */
export type TarHeader = Partial<tar.Header> & { name: string };

/** Changes whenever anything that shapes a layer's bytes changes; part of every cache key. */
export const LAYER_FORMAT = `kiln-layer/3 tar-stream@3.2.2 ${GZIP_ENCODER} level=${GZIP_LEVEL} members-of=${GZIP_BLOCK}`;

export interface LayerFile {
  size: number;
  /** hex sha256 of the content */
  sha256: string;
  /** read from here at write time (re-hashed and checked)… */
  hostPath?: string;
  /** …or taken from memory */
  data?: Uint8Array;
}

export interface LayerEntry {
  /** relative to the image root, no leading or trailing "/" ("usr/local/bin/node") */
  path: string;
  kind: "file" | "dir" | "symlink";
  /** permission bits, already normalized */
  mode: number;
  file?: LayerFile;
  linkTarget?: string;
}

export interface SkippedPath {
  path: string;
  reason: string;
}

// ---------------------------------------------------------------------------
// Planning (pure)

/**
 * Validate, de-duplicate, complete and order a layer's entries.
 *
 * - every ancestor directory gets an entry (mode 0755) if it has none;
 * - an identical duplicate is dropped, a conflicting one is refused;
 * - nothing may live below a file or a symlink of the same layer;
 * - a symlink whose target climbs above the image root is refused;
 * - the result is sorted by path, byte-wise, so parents precede children.
 *
 * Example: [file "app/a.js"] → [dir "app", file "app/a.js"].
 */
export function planLayer(entries: readonly LayerEntry[]): LayerEntry[] {
  const byPath = new Map<string, LayerEntry>();
  for (const e of entries) {
    const parts = entryComponents(e.path);
    if (parts.length === 0 || parts.join("/") !== e.path || parts.includes("..")) {
      throw new KilnError("KILN_E_IMAGE", `invalid layer path ${JSON.stringify(e.path)}`);
    }
    if (e.kind === "file" && !e.file) throw new KilnError("KILN_E_INTERNAL", `file entry ${e.path} has no content`);
    if (e.kind === "symlink") {
      const target = e.linkTarget ?? "";
      if (target === "" || resolveLinkTarget(parts.slice(0, -1), target) === undefined) {
        throw new KilnError("KILN_E_UNSAFE", `symlink /${e.path} → ${target} points outside the image`, {
          hint: "only symlinks that stay inside the image are kept",
        });
      }
    }
    const prev = byPath.get(e.path);
    if (prev === undefined) {
      byPath.set(e.path, e);
    } else if (!sameEntry(prev, e)) {
      throw new KilnError("KILN_E_IMAGE", `two different entries for /${e.path} in one layer`, {
        hint: "each destination path may be written once per layer (files, dependencies and config are separate layers)",
      });
    }
  }
  for (const e of [...byPath.values()]) {
    const parts = e.path.split("/");
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join("/");
      const existing = byPath.get(dir);
      if (existing === undefined) {
        byPath.set(dir, { path: dir, kind: "dir", mode: 0o755 });
      } else if (existing.kind !== "dir") {
        throw new KilnError("KILN_E_IMAGE", `/${e.path} would be written below the ${existing.kind} /${dir}`, {
          hint: "a path cannot be both a file (or symlink) and a directory",
        });
      }
    }
  }
  return [...byPath.values()].sort((a, b) => compareBytes(a.path, b.path));
}

function sameEntry(a: LayerEntry, b: LayerEntry): boolean {
  return (
    a.kind === b.kind &&
    a.mode === b.mode &&
    a.linkTarget === b.linkTarget &&
    a.file?.sha256 === b.file?.sha256
  );
}

/**
 * The cache key of a planned layer: everything that determines its bytes
 * (paths, kinds, modes, content hashes, link targets, mtime, writer format,
 * compression). Never the thread count: it does not change the bytes.
 */
export function layerCacheKey(role: LayerRole, planned: readonly LayerEntry[], mtime: number, compression: LayerCompression = "gzip"): string {
  const material = {
    format: LAYER_FORMAT,
    role,
    mtime,
    compression,
    entries: planned.map((e) => [e.path, e.kind, e.mode, e.file?.sha256 ?? e.linkTarget ?? ""]),
  };
  return sha256Digest(canonicalJson(material)).slice("sha256:".length);
}

/** Normalized file mode: an explicit "0640" wins; otherwise 0755 if any execute bit is set, else 0644. */
export function normalizeFileMode(hostMode: number, override?: string, where?: string): number {
  if (override !== undefined) {
    if (!/^0?[0-7]{3}$/.test(override)) {
      throw new KilnError("KILN_E_IMAGE", `mode ${JSON.stringify(override)} is not an octal permission like "0755"`, {
        details: where ? [{ where, message: "bad mode" }] : [],
      });
    }
    return parseInt(override, 8) & 0o777;
  }
  return hostMode & 0o111 ? 0o755 : 0o644;
}

// ---------------------------------------------------------------------------
// Collecting host files (I/O)

/**
 * Turn FileEntry specs into layer entries, hashing every file. A directory
 * src is copied recursively (".git" directories are left out). Symlinks are
 * kept when their target is relative and stays inside the image root
 * (node_modules/.bin links, lib → ../shared); absolute targets name host
 * paths and are skipped, as are links climbing above the root and
 * sockets/fifos/devices. Every skip is reported.
 */
export async function collectFiles(
  contextDir: string,
  specs: readonly FileEntry[],
  where: string,
): Promise<{ entries: LayerEntry[]; skipped: SkippedPath[]; newestMtime: number }> {
  const entries: LayerEntry[] = [];
  const skipped: SkippedPath[] = [];
  const files: { entry: LayerEntry; hostPath: string }[] = [];
  // Whole seconds, like the tar headers: the fallback created time (see pickCreatedEpoch).
  const mtime = { newest: 0 };

  for (const [i, spec] of specs.entries()) {
    const at = `${where}[${i}]`;
    let srcAbs = resolve(contextDir, spec.src);
    let st;
    try {
      // Symlinks (the source itself or a directory on its way) are resolved and must
      // stay in the project: a link to a host file must never be baked into the image.
      srcAbs = await insideProject(contextDir, srcAbs, spec.src, at);
      st = await lstat(srcAbs);
    } catch (e) {
      if (e instanceof KilnError) throw e;
      throw new KilnError("KILN_E_IMAGE", `cannot read ${spec.src}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, {
        hint: `paths in ${where} are relative to ${contextDir}`,
        details: [{ where: at, path: `${at}.src`, message: srcAbs }],
        cause: e,
      });
    }
    let destRel = imagePathFromDest(spec.dest, `${at}.dest`);
    if (st.isFile()) {
      if (spec.dest.endsWith("/")) destRel = destRel === "" ? basename(srcAbs) : `${destRel}/${basename(srcAbs)}`;
      if (destRel === "") throw new KilnError("KILN_E_IMAGE", `a file cannot be copied to "/"`, { details: [{ where: at, message: spec.dest }] });
      const entry: LayerEntry = { path: destRel, kind: "file", mode: normalizeFileMode(st.mode, spec.mode, `${at}.mode`) };
      entries.push(entry);
      files.push({ entry, hostPath: srcAbs });
      mtime.newest = Math.max(mtime.newest, Math.floor(st.mtimeMs / 1000));
    } else if (st.isDirectory()) {
      if (spec.mode !== undefined) normalizeFileMode(0, spec.mode, `${at}.mode`); // validate early
      await walk(srcAbs, destRel, spec.mode, entries, files, skipped, mtime);
    } else {
      throw new KilnError("KILN_E_IMAGE", `${spec.src} is neither a file nor a directory`, { details: [{ where: at, message: srcAbs }] });
    }
  }

  await mapLimit(files, 8, async ({ entry, hostPath }) => {
    entry.file = { ...(await hashFile(hostPath)), hostPath };
  });
  return { entries, skipped, newestMtime: mtime.newest };
}

/**
 * The real path of `abs`, which must lie inside the real project directory.
 * Examples (project /p): "app.js" → /p/app.js; "cfg" → /etc/cfg via a symlink → refused;
 * "lib/x" where lib → ../shared → refused.
 */
async function insideProject(contextDir: string, abs: string, src: string, at: string): Promise<string> {
  const root = await realpath(contextDir);
  const real = await realpath(abs);
  const rel = relative(root, real);
  if (rel === ".." || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
    throw new KilnError("KILN_E_SPEC", `${src} resolves to ${real}, outside the project ${root}`, {
      hint: "a file source (or a symlink on its way) must stay inside the directory holding kiln.yaml; copy the file into the project",
      details: [{ where: at, path: `${at}.src`, message: `symlink to ${real}` }],
    });
  }
  return real;
}

async function walk(
  dirAbs: string,
  destRel: string,
  modeOverride: string | undefined,
  entries: LayerEntry[],
  files: { entry: LayerEntry; hostPath: string }[],
  skipped: SkippedPath[],
  mtime: { newest: number },
): Promise<void> {
  if (destRel !== "") entries.push({ path: destRel, kind: "dir", mode: 0o755 });
  const names = (await readdir(dirAbs)).sort(compareBytes);
  for (const name of names) {
    const abs = join(dirAbs, name);
    const rel = destRel === "" ? name : `${destRel}/${name}`;
    const st = await lstat(abs);
    if (st.isDirectory()) {
      if (name === ".git") {
        skipped.push({ path: `/${rel}`, reason: "version-control metadata" });
        continue;
      }
      await walk(abs, rel, modeOverride, entries, files, skipped, mtime);
    } else if (st.isFile()) {
      const entry: LayerEntry = { path: rel, kind: "file", mode: normalizeFileMode(st.mode, modeOverride) };
      entries.push(entry);
      files.push({ entry, hostPath: abs });
      mtime.newest = Math.max(mtime.newest, Math.floor(st.mtimeMs / 1000));
    } else if (st.isSymbolicLink()) {
      const target = await readlink(abs);
      if (target.startsWith("/")) {
        skipped.push({ path: `/${rel}`, reason: `symlink to the absolute host path ${target}` });
      } else if (resolveLinkTarget(rel.split("/").slice(0, -1), target) === undefined) {
        skipped.push({ path: `/${rel}`, reason: `symlink to ${target} leaves the image root` });
      } else {
        entries.push({ path: rel, kind: "symlink", mode: 0o777, linkTarget: target });
        mtime.newest = Math.max(mtime.newest, Math.floor(st.mtimeMs / 1000));
      }
    } else {
      skipped.push({ path: `/${rel}`, reason: "not a regular file, directory or symlink" });
    }
  }
}

export async function hashFile(path: string): Promise<{ size: number; sha256: string }> {
  const hash = createHash("sha256");
  let size = 0;
  // O_NOFOLLOW: a file swapped for a symlink after it was listed is not followed out of the project.
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const buf = Buffer.allocUnsafe(1024 * 1024);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      size += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return { size, sha256: hash.digest("hex") };
}

async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++]!;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

// ---------------------------------------------------------------------------
// Writing (I/O)

/**
 * About how many tar bytes a layer's entries make (a 512-byte header each, content padded to
 * 512, the 1 KiB end): the total a progress bar fills towards. Long names add PAX headers, so
 * the real stream can be a little longer.
 *
 *   [dir "app", file "app/server.js" 700 B] → 512 + 512 + 1024 + 1024 = 3072
 */
export function tarSizeEstimate(planned: readonly LayerEntry[]): number {
  let n = 1024;
  for (const e of planned) n += 512 + Math.ceil((e.file?.size ?? 0) / 512) * 512;
  return n;
}

/**
 * Write a planned layer as a blob into the store: a gzip of its tar (or the tar itself with
 * compression "none"). `mtime` (seconds since the epoch) is stamped on every entry; `onBytes`
 * hears the uncompressed tar bytes written so far, chunk by chunk (for progress).
 *
 * One pass over the content: each chunk of the tar, as it is serialized, updates the DiffID
 * hash and goes to the gzip blocks (or the blob); the blob writer hashes what it writes.
 */
export async function writeLayer(
  store: Store,
  planned: readonly LayerEntry[],
  mtime: number,
  opts: LayerWriteOptions & { onBytes?: (tarBytes: number) => void } = {},
): Promise<LayerRecord> {
  const writer = await store.createBlobWriter();
  const diffHash = createHash("sha256");
  const compressed = (opts.compression ?? "gzip") === "gzip";
  const gz = compressed ? new BlockGzip(opts.threads ?? 1, (member) => writer.write(member)) : undefined;
  let tarBytes = 0;
  try {
    await serializeTar(planned, mtime, async (chunk) => {
      diffHash.update(chunk);
      tarBytes += chunk.length;
      opts.onBytes?.(tarBytes);
      if (gz) await gz.push(chunk);
      else await writer.write(chunk);
    });
    await gz?.finish();
  } catch (e) {
    await gz?.close();
    await writer.abort();
    throw e;
  }
  const { digest, size } = await writer.commit();
  const mediaType = compressed ? MEDIA_TYPE.layerGzip : MEDIA_TYPE.layerTar;
  const diffId = "sha256:" + diffHash.digest("hex");
  if (compressed) await recordTarSize(store, diffId, tarBytes);
  return { descriptor: { mediaType, digest, size }, diffId };
}

/** Layers whose tar length is kept in the store's cache ("tar-sizes", by DiffID; a docker-archive export needs it before the layer): smaller ones are counted again, cheaply. */
const KEEP_TAR_SIZE_FROM = 1024 * 1024;

/** Remember a layer's tar length (best effort: a cache that cannot be written only costs a count later). */
export async function recordTarSize(store: Pick<Store, "cachePut">, diffId: string, size: number): Promise<void> {
  if (size >= KEEP_TAR_SIZE_FROM) await store.cachePut("tar-sizes", diffId.slice("sha256:".length), { diffId, size }).catch(() => undefined);
}

/** A layer's tar length recorded by recordTarSize, if any. */
export async function knownTarSize(store: Pick<Store, "cacheGet">, diffId: string): Promise<number | undefined> {
  const known = await store.cacheGet<{ diffId?: string; size?: number }>("tar-sizes", diffId.slice("sha256:".length));
  return known?.diffId === diffId && Number.isSafeInteger(known.size) && known.size! >= 0 ? known.size : undefined;
}

/** Forget a recorded length found wrong. */
export async function forgetTarSize(store: Pick<Store, "cachePut">, diffId: string): Promise<void> {
  await store.cachePut("tar-sizes", diffId.slice("sha256:".length), {}).catch(() => undefined);
}

/** The DiffID and length of a planned layer's tar, without compressing it (checks a machine-cache entry, see machine-layers.ts). */
export async function tarDigest(planned: readonly LayerEntry[], mtime: number): Promise<{ diffId: string; bytes: number }> {
  const hash = createHash("sha256");
  let bytes = 0;
  await serializeTar(planned, mtime, async (chunk) => {
    hash.update(chunk);
    bytes += chunk.length;
  });
  return { diffId: "sha256:" + hash.digest("hex"), bytes };
}

// tar-stream's own header encoder (headers.js, which its package exports do not list): the
// bytes of every header stay exactly the ones its pack() wrote before kiln serialized layers
// itself (LAYER_FORMAT names tar-stream@3.2.2).
const tarHeaders = createRequire(import.meta.url)(join(dirname(createRequire(import.meta.url).resolve("tar-stream")), "headers.js")) as {
  encode(h: TarHeader): Uint8Array | null;
  encodePax(h: { name: string; linkname?: string | null; pax?: unknown }): Uint8Array;
};
const ZEROS = new Uint8Array(1024);
/** Bytes read from a host file at a time; one buffer per layer, reused (every consumer copies or finishes with a chunk before the next read). */
const READ_CHUNK = 1024 * 1024;

/**
 * The layer's tar, in order, to `emit` (each call awaited before the next; a chunk may be
 * reused after its call returns). The same bytes tar-stream's pack() gives for these headers:
 * its header defaults (size 0 for non-files, mode 0 → 0644/0755), a PAX header for names
 * that do not fit ustar, content padded to 512 bytes, 1 KiB of zeros at the end. File
 * content is re-hashed as it is read and must still match the hash planned (copied whole).
 */
async function serializeTar(planned: readonly LayerEntry[], mtime: number, emit: (chunk: Uint8Array) => Promise<void>): Promise<void> {
  let buf: Buffer | undefined;
  const pad = async (size: number) => {
    const r = size & 511;
    if (r) await emit(ZEROS.subarray(0, 512 - r));
  };
  for (const e of planned) {
    const header = headerFor(e, mtime);
    const data = e.kind === "file" && e.file!.data !== undefined ? e.file!.data : undefined;
    if (data !== undefined) header.size = data.byteLength;
    // pack.entry()'s defaults
    if (!header.size || header.type === "symlink") header.size = 0;
    if (!header.mode) header.mode = header.type === "directory" ? 0o755 : 0o644;
    const encoded = tarHeaders.encode(header);
    if (encoded) {
      await emit(encoded);
    } else {
      const pax = tarHeaders.encodePax({ name: header.name, linkname: header.linkname });
      const paxHeader: TarHeader = { ...header, name: "PaxHeader", size: pax.byteLength, type: "pax-header" as TarHeader["type"], linkname: header.linkname ? "PaxHeader" : header.linkname };
      await emit(tarHeaders.encode(paxHeader)!);
      await emit(pax);
      await pad(pax.byteLength);
      await emit(tarHeaders.encode({ ...paxHeader, size: header.size, type: header.type })!);
    }
    if (e.kind !== "file" || header.size === 0) continue;
    if (data !== undefined) {
      await emit(data);
    } else {
      buf ??= Buffer.allocUnsafe(READ_CHUNK);
      await copyChecked(e.file!, `/${e.path}`, buf, emit);
    }
    await pad(header.size);
  }
  await emit(ZEROS);
}

/**
 * writeLayer as one progress phase named `phase`: "start" with the entry count and the
 * estimated tar size, "update" as tar bytes go through gzip, "end" with the tar bytes, the
 * gzip size and the digest. A failure sends no "end": the caller's progress marks it failed.
 */
export async function writeLayerReported(
  store: Store,
  planned: readonly LayerEntry[],
  mtime: number,
  progress: ProgressFn,
  phase: string,
  what: string,
  write: LayerWriteOptions = {},
): Promise<LayerRecord> {
  const total = tarSizeEstimate(planned);
  progress({ phase, step: "start", detail: `${what} (${planned.length} entries)`, total });
  let bytes = 0;
  const record = await writeLayer(store, planned, mtime, {
    ...write,
    onBytes: (n) => {
      bytes = n;
      progress({ phase, step: "update", bytes: n, total });
    },
  });
  progress({ phase, step: "end", bytes, stored: record.descriptor.size, detail: `built ${record.descriptor.digest.slice(0, 19)}` });
  return record;
}

export function headerFor(e: LayerEntry, mtime: number): TarHeader {
  return {
    name: e.kind === "dir" ? `${e.path}/` : e.path,
    mode: e.mode,
    uid: 0,
    gid: 0,
    uname: "",
    gname: "",
    mtime: new Date(mtime * 1000),
    type: e.kind === "dir" ? "directory" : e.kind === "symlink" ? "symlink" : "file",
    size: e.kind === "file" ? e.file!.size : 0,
    ...(e.kind === "symlink" ? { linkname: e.linkTarget! } : {}),
  };
}

/** Emit exactly file.size bytes of the host file, refusing content that changed since it was hashed. */
async function copyChecked(file: LayerFile, imagePath: string, buf: Buffer, emit: (chunk: Uint8Array) => Promise<void>): Promise<void> {
  const hash = createHash("sha256");
  const fh = await open(file.hostPath!, constants.O_RDONLY | constants.O_NOFOLLOW);
  let total = 0;
  const changed = () =>
    new KilnError("KILN_E_IMAGE", `${file.hostPath} changed while it was being baked (${imagePath})`, {
      hint: "stop whatever is writing to the build context and bake again",
    });
  try {
    while (total < file.size) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, file.size - total), null);
      if (bytesRead === 0) break;
      const chunk = buf.subarray(0, bytesRead);
      hash.update(chunk);
      total += bytesRead;
      // The last chunk is checked before it is emitted: a changed file never completes its entry.
      if (total === file.size) {
        const extra = await fh.read(Buffer.alloc(1), 0, 1, null);
        if (extra.bytesRead !== 0 || hash.copy().digest("hex") !== file.sha256) throw changed();
      }
      await emit(chunk);
    }
    if (total !== file.size) throw changed();
  } finally {
    await fh.close();
  }
}

/** Reuse a cached layer when its cache entry exists and its blob is still in the store; otherwise build and remember it. */
export async function cachedLayer(store: Store, namespace: string, key: string, build: () => Promise<LayerRecord>): Promise<{ record: LayerRecord; cached: boolean }> {
  const hit = await store.cacheGet<LayerRecord>(namespace, key);
  if (hit && isDigest(hit.descriptor?.digest ?? "") && isDigest(hit.diffId ?? "") && (await store.hasBlob(hit.descriptor.digest))) {
    return { record: hit, cached: true };
  }
  const record = await build();
  await store.cachePut(namespace, key, record);
  return { record, cached: false };
}

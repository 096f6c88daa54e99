// The machine's layer cache: big layers built once per machine, shared by every store.
//
// A store already reuses its own layers (cachedLayer). But every fresh KILN_HOME — a CI job's
// workspace, a second project, a test — would gzip the same ~100 MB node runtime layer again
// (about 13 s of one core). Built layers of at least MIN_BYTES are therefore also kept under
// KILN_LAYER_CACHE (else $XDG_CACHE_HOME/kiln/layers, else ~/.cache/kiln/layers; "off"
// disables it), named by the layer's cache key, which already covers everything that decides
// its bytes (paths, modes, content hashes, mtime, writer format).
//
// The directory needs no trust for content: an entry is used only when its blob decompresses
// to exactly the tar this kiln would write for the planned entries (DiffID computed afresh
// from the files, uncompressed length capped at that tar's length), and the blob is copied
// into the store under its verified digest. Checking costs one tar pass and one gunzip,
// about 1 s for the runtime layer. What it cannot prove is that the gzip bytes are the ones
// this kiln would write, so the directory must be the user's own: one owned by someone else
// or writable by group or others is not used. Any problem with the cache means "build it".

import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { copyFile, lstat, mkdir, open, readdir, readFile, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { isDigest } from "./digest.js";
import { LAYER_FORMAT, recordTarSize, tarDigest, tarSizeEstimate, writeLayerReported, type LayerEntry } from "./layer.js";
import type { Store } from "./store.js";
import { MEDIA_TYPE, type LayerRecord, type LayerWriteOptions, type ProgressFn } from "./types.js";

/** Layers smaller than this are cheap to build and change often (the app): not kept. */
export const MIN_BYTES = 4 * 1024 * 1024;
/** Entries kept; the least recently used go first. */
export const MAX_ENTRIES = 12;

/** Where the machine's layer cache lives, or undefined when it is off. */
export function machineLayerCacheRoot(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const set = env.KILN_LAYER_CACHE;
  if (set === "off") return undefined;
  return set || join(env.XDG_CACHE_HOME || join(env.HOME || "/nonexistent", ".cache"), "kiln", "layers");
}

interface Entry {
  format: string;
  key: string;
  descriptor: { mediaType: string; digest: string; size: number };
  diffId: string;
}

/**
 * A layer for `planned`: from the machine's cache when a verified entry is there, else built
 * with writeLayerReported (and then kept for the next store). Same progress phase either way.
 */
export async function buildLayer(
  store: Store,
  key: string,
  planned: readonly LayerEntry[],
  mtime: number,
  progress: ProgressFn,
  phase: string,
  what: string,
  write: LayerWriteOptions = {},
  env: NodeJS.ProcessEnv = process.env,
): Promise<LayerRecord> {
  const root = machineLayerCacheRoot(env);
  const build = () => writeLayerReported(store, planned, mtime, progress, phase, what, write);
  // Uncompressed layers cost no gzip to build: nothing to save.
  if (!root || (write.compression ?? "gzip") !== "gzip" || tarSizeEstimate(planned) < MIN_BYTES || !(await ownDir(root))) return build();
  const entry = await candidate(root, key).catch(() => undefined);
  if (entry) {
    progress({ phase, step: "start", detail: `checking this machine's layer cache (${planned.length} entries)`, total: entry.descriptor.size });
    const hit = await take(root, entry, store, planned, mtime).catch(() => undefined);
    progress({ phase, step: "end", ...(hit ? { stored: hit.descriptor.size, detail: `reused ${hit.descriptor.digest.slice(0, 19)} from ${root}` } : { detail: "the cached entry did not verify: building" }) });
    if (hit) return hit;
  }
  const record = await build();
  await keep(root, key, store, record).catch(() => undefined);
  return record;
}

/** The directory exists (created 0700 if not), is a real directory, ours, and not writable by others. */
async function ownDir(root: string): Promise<boolean> {
  try {
    await mkdir(root, { recursive: true, mode: 0o700 });
    const st = await lstat(root);
    const uid = process.getuid?.() ?? st.uid;
    return st.isDirectory() && st.uid === uid && (st.mode & 0o022) === 0;
  } catch {
    return false;
  }
}

/** The entry recorded for `key`, when its record is well-formed and for this kiln's layer format. */
async function candidate(root: string, key: string): Promise<Entry | undefined> {
  const meta = join(root, `${key}.json`);
  const st = await lstat(meta).catch(() => undefined);
  if (!st?.isFile() || st.size > 4096) return undefined;
  const e = JSON.parse(await readFile(meta, "utf8")) as Entry;
  if (e.format !== LAYER_FORMAT || e.key !== key || e.descriptor?.mediaType !== MEDIA_TYPE.layerGzip) return undefined;
  if (!isDigest(e.descriptor.digest) || !isDigest(e.diffId) || !Number.isSafeInteger(e.descriptor.size)) return undefined;
  return e;
}

async function take(root: string, e: Entry, store: Store, planned: readonly LayerEntry[], mtime: number): Promise<LayerRecord | undefined> {
  const key = e.key;
  const meta = join(root, `${key}.json`);
  const expected = await tarDigest(planned, mtime);
  if (expected.diffId !== e.diffId) return undefined;

  const fh = await open(join(root, `${key}.tar.gz`), constants.O_RDONLY | constants.O_NOFOLLOW);
  const writer = await store.createBlobWriter();
  let ok = false;
  try {
    if ((await fh.stat()).size !== e.descriptor.size) return undefined;
    const hash = createHash("sha256");
    let bytes = 0;
    await pipeline(
      fh.createReadStream({ autoClose: false }),
      async function* (src: AsyncIterable<Buffer>) {
        for await (const chunk of src) {
          await writer.write(chunk);
          yield chunk;
        }
      },
      createGunzip(),
      async function (src: AsyncIterable<Buffer>) {
        for await (const chunk of src) {
          bytes += chunk.length;
          if (bytes > expected.bytes) throw new Error("decompresses to more than its tar");
          hash.update(chunk);
        }
      },
    );
    if (bytes !== expected.bytes || `sha256:${hash.digest("hex")}` !== expected.diffId) return undefined;
    await writer.commit({ digest: e.descriptor.digest, size: e.descriptor.size });
    ok = true;
    await recordTarSize(store, e.diffId, bytes);
  } finally {
    if (!ok) await writer.abort();
    await fh.close();
  }
  const now = new Date();
  await utimes(meta, now, now).catch(() => undefined);
  return { descriptor: { ...e.descriptor }, diffId: e.diffId };
}

async function keep(root: string, key: string, store: Store, record: LayerRecord): Promise<void> {
  if (record.descriptor.mediaType !== MEDIA_TYPE.layerGzip) return;
  const tmp = `.tmp-${process.pid}-${key.slice(0, 12)}`;
  const blobTmp = join(root, `${tmp}.tar.gz`);
  const metaTmp = join(root, `${tmp}.json`);
  try {
    await copyFile(store.blobPath(record.descriptor.digest), blobTmp);
    const entry: Entry = { format: LAYER_FORMAT, key, descriptor: { ...record.descriptor }, diffId: record.diffId };
    await writeFile(metaTmp, JSON.stringify(entry), { mode: 0o600 });
    // The blob before its record: a reader never finds a record without its blob.
    await rename(blobTmp, join(root, `${key}.tar.gz`));
    await rename(metaTmp, join(root, `${key}.json`));
  } finally {
    await rm(blobTmp, { force: true });
    await rm(metaTmp, { force: true });
  }
  await prune(root);
}

/** Keep the MAX_ENTRIES most recently used entries (a hit touches its record). */
async function prune(root: string): Promise<void> {
  const names = (await readdir(root)).filter((n) => n.endsWith(".json") && !n.startsWith("."));
  if (names.length <= MAX_ENTRIES) return;
  const aged = await Promise.all(names.map(async (n) => ({ n, t: (await stat(join(root, n)).catch(() => undefined))?.mtimeMs ?? 0 })));
  aged.sort((a, b) => b.t - a.t);
  for (const { n } of aged.slice(MAX_ENTRIES)) {
    const key = n.slice(0, -".json".length);
    await rm(join(root, n), { force: true });
    await rm(join(root, `${key}.tar.gz`), { force: true });
  }
}

// Checking an image's layers entry by entry without writing anything, so an
// image kiln would refuse to unpack is refused when it enters the store
// (import, pull) rather than later, when an instance or `kiln audit` unpacks it.
//
// `LayerTree` is a virtual file tree that applies the same rules as unpack.ts
// applies to the real one: names with ".." or a leading "/" are refused,
// parent directories are resolved through the image's own symlinks with the
// root as "/", symlinks may not climb above the root, hard links must name an
// existing non-directory, non-symlink entry inside the root, whiteouts remove
// what lower layers wrote. Devices and FIFOs are skipped (unpack skips them too).
//
// `scanLayer` streams one layer blob through it with caps on decompressed
// bytes, the compression ratio (gzip bombs) and the number of entries, and
// returns the diff_id it computed, so a lying diff_id is caught here too.

import { createHash } from "node:crypto";
import type { Readable } from "node:stream";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import tar from "tar-stream";
import { KilnError } from "../errors.js";
import { canonicalJson, sha256Digest } from "./digest.js";
import { entryComponents, resolveLinkTarget, unsafeEntryName } from "./paths.js";
import type { Store } from "./store.js";
import { MEDIA_TYPE, type LayerRecord } from "./types.js";

/** Caps on what one image may make kiln read. Generous for real images, small enough to stop a bomb early. */
export interface LayerLimits {
  /** decompressed bytes of one layer */
  layerBytes: number;
  /** entries (tar headers) in one layer */
  layerEntries: number;
  /** decompressed / compressed bytes allowed once `ratioFloor` bytes have come out */
  ratio: number;
  ratioFloor: number;
}

export const LAYER_LIMITS: LayerLimits = {
  layerBytes: 32 * 1024 ** 3,
  layerEntries: 2_000_000,
  // Real layers compress 2–10×; a run of zeros compresses ~1000×. Below the floor nothing is judged.
  ratio: 200,
  ratioFloor: 64 * 1024 ** 2,
};

type Kind = "dir" | "file" | "symlink";
interface Node {
  kind: Kind;
  target?: string;
}

export interface TreeHeader {
  name: string;
  type: string | null | undefined;
  linkname?: string | null;
}

export function unsafeEntry(layer: string, entry: string, why: string): KilnError {
  return new KilnError("KILN_E_UNSAFE", `layer ${layer} entry ${JSON.stringify(entry)}: ${why}`, {
    hint: "the image tries to write outside its root; do not run it (re-bake it, or import it from a trusted source)",
    details: [{ where: `${layer}:${entry}`, message: why }],
  });
}

/**
 * The image's file tree as kinds only, across its layers in order.
 *
 * Examples (each a separate image):
 * - [symlink "a" → "/etc"], then file "a/passwd" → written to "etc/passwd" (inside the root);
 * - symlink "x/y/l" → "../../z" is kept (it means "/z"); → "../../../z" is refused;
 * - symlink "d/l" → "../f", then hard link "top" → "d/l": refused (a hard link to a symlink
 *   would move the relative link to another directory, where it may point outside);
 * - hard link "h" → "../etc/passwd": refused ('..' component).
 */
export class LayerTree {
  private readonly nodes = new Map<string, Node>();
  private created = new Set<string>();

  startLayer(): void {
    this.created = new Set();
  }

  kind(path: string): Kind | undefined {
    return this.nodes.get(path)?.kind;
  }

  /** Apply one tar entry; throws KILN_E_UNSAFE / KILN_E_IMAGE exactly where unpack would. */
  apply(layer: string, h: TreeHeader): void {
    const bad = unsafeEntryName(h.name);
    if (bad) throw unsafeEntry(layer, h.name, bad);
    const parts = entryComponents(h.name);
    if (parts.length === 0) return;
    const leaf = parts[parts.length - 1]!;
    const parent = this.resolveDir(parts.slice(0, -1), true, layer, h.name);
    if (leaf.startsWith(".wh.")) {
      if (leaf === ".wh..wh..opq") {
        const prefix = parent.length === 0 ? "" : parent.join("/") + "/";
        for (const key of [...this.nodes.keys()]) {
          if (key.startsWith(prefix) && key.length > prefix.length && !key.slice(prefix.length).includes("/") && !this.created.has(key)) this.remove(key);
        }
      } else {
        const victim = leaf.slice(4);
        if (victim === "" || victim === "." || victim === "..") throw unsafeEntry(layer, h.name, "malformed whiteout");
        this.remove([...parent, victim].join("/"));
      }
      return;
    }
    const path = [...parent, leaf].join("/");
    switch (h.type) {
      case "directory":
        if (this.kind(path) !== "dir") this.set(path, { kind: "dir" });
        break;
      case "file":
      case "contiguous-file":
        this.set(path, { kind: "file" });
        break;
      case "symlink": {
        const target = h.linkname ?? "";
        if (target === "" || target.includes("\0")) throw unsafeEntry(layer, h.name, "empty symlink target");
        if (resolveLinkTarget(parent, target) === undefined) throw unsafeEntry(layer, h.name, `symlink to ${target} escapes the root`);
        this.set(path, { kind: "symlink", target });
        break;
      }
      case "link": {
        const target = h.linkname ?? "";
        const badTarget = target === "" ? "empty link target" : unsafeEntryName(target);
        if (badTarget) throw unsafeEntry(layer, h.name, `hard link to ${target}: ${badTarget}`);
        const tparts = entryComponents(target);
        if (tparts.length === 0) throw unsafeEntry(layer, h.name, "hard link to the root");
        const tparent = this.resolveDir(tparts.slice(0, -1), false, layer, h.name);
        const tpath = [...tparent, tparts[tparts.length - 1]!].join("/");
        const tkind = this.kind(tpath);
        if (tkind === undefined) throw unsafeEntry(layer, h.name, `hard link target ${target} does not exist`);
        if (tkind === "dir") throw unsafeEntry(layer, h.name, `hard link to directory ${target}`);
        if (tkind === "symlink") throw unsafeEntry(layer, h.name, `hard link to the symlink ${target}`);
        if (tpath !== path) this.set(path, { kind: "file" });
        break;
      }
      default:
        return; // devices, FIFOs, sockets: skipped, as unpack skips them
    }
    this.created.add(path);
  }

  private set(path: string, node: Node): void {
    if (this.nodes.get(path)?.kind === "dir" && node.kind !== "dir") this.remove(path);
    this.nodes.set(path, node);
  }

  private remove(path: string): void {
    const node = this.nodes.get(path);
    if (node === undefined) return;
    this.nodes.delete(path);
    if (node.kind === "dir") {
      const prefix = path + "/";
      for (const key of [...this.nodes.keys()]) if (key.startsWith(prefix)) this.nodes.delete(key);
    }
  }

  /** unpack.ts resolveDir, on the virtual tree. */
  private resolveDir(parts: string[], create: boolean, layer: string, entry: string): string[] {
    const cur: string[] = [];
    const queue = [...parts];
    let hops = 0;
    while (queue.length > 0) {
      const p = queue.shift()!;
      if (p === "" || p === ".") continue;
      if (p === "..") {
        if (cur.length === 0) throw unsafeEntry(layer, entry, "path resolves above the root");
        cur.pop();
        continue;
      }
      const key = [...cur, p].join("/");
      const node = this.nodes.get(key);
      if (node === undefined) {
        if (!create) throw unsafeEntry(layer, entry, `/${key} does not exist`);
        this.nodes.set(key, { kind: "dir" });
        cur.push(p);
      } else if (node.kind === "symlink") {
        if (++hops > 40) throw unsafeEntry(layer, entry, "too many levels of symbolic links");
        const target = node.target!;
        if (target.startsWith("/")) cur.length = 0;
        queue.unshift(...target.split("/"));
      } else if (node.kind === "dir") {
        cur.push(p);
      } else {
        throw new KilnError("KILN_E_IMAGE", `layer ${layer} entry ${JSON.stringify(entry)}: /${key} is not a directory`);
      }
    }
    return cur;
  }
}

/**
 * A pass-through that counts decompressed bytes against the caps and hashes
 * them (the diff_id). `compressed()` reports how much of the blob was read so far.
 */
export class LayerMeter extends Transform {
  readonly hash = createHash("sha256");
  bytes = 0;
  constructor(
    private readonly layer: string,
    private readonly limits: LayerLimits,
    private readonly compressed: () => number,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null, data?: Buffer) => void): void {
    this.bytes += chunk.length;
    const err = layerLimitError(this.layer, this.limits, this.bytes, this.compressed());
    if (err) return cb(err);
    this.hash.update(chunk);
    cb(null, chunk);
  }
}

/**
 * Whether `out` decompressed bytes from `read` compressed ones break a cap.
 * Examples (default limits): 1 GiB from 100 MiB → fine (10×); 100 MiB from
 * 100 KiB → a bomb (1000× past the 64 MiB floor); 40 GiB → over 32 GiB.
 * `read` is 0 for an uncompressed layer (no ratio to judge).
 */
export function layerLimitError(layer: string, limits: LayerLimits, out: number, read: number): KilnError | undefined {
  if (out > limits.layerBytes) {
    return new KilnError("KILN_E_UNSAFE", `layer ${layer} unpacks to more than ${limits.layerBytes} bytes`, {
      hint: "the layer is too large to be an application image, or is a decompression bomb; do not use it",
      details: [{ where: layer, message: "decompressed size over the cap" }],
    });
  }
  if (read > 0 && out > limits.ratioFloor && out > read * limits.ratio) {
    return new KilnError("KILN_E_UNSAFE", `layer ${layer} decompresses more than ${limits.ratio}× (${out} bytes from ${read}): a decompression bomb`, {
      hint: "real layers compress far less; do not use this image",
      details: [{ where: layer, message: "compression ratio over the cap" }],
    });
  }
  return undefined;
}

/** Count compressed bytes as they are read. */
export function countingTap(onBytes: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _e, cb) {
      onBytes(chunk.length);
      cb(null, chunk);
    },
  });
}

/**
 * Read one layer blob through `tree`, without writing anything. Returns the
 * diff_id (sha256 of the uncompressed tar).
 */
export async function scanLayer(source: Readable, gz: boolean, layer: string, tree: LayerTree, limits: LayerLimits = LAYER_LIMITS): Promise<string> {
  let read = 0;
  const tap = countingTap((n) => (read += n));
  const meter = new LayerMeter(layer, limits, () => (gz ? read : 0));
  const extract = tar.extract();
  const feed = gz ? pipeline(source, tap, createGunzip(), meter, extract) : pipeline(source, meter, extract);
  tree.startLayer();
  let entries = 0;
  const walk = async () => {
    for await (const entry of extract) {
      if (++entries > limits.layerEntries) {
        throw new KilnError("KILN_E_UNSAFE", `layer ${layer} has more than ${limits.layerEntries} entries`, {
          hint: "no application image needs that many files in one layer; do not use it",
          details: [{ where: layer, message: "entry count over the cap" }],
        });
      }
      entry.resume();
      tree.apply(layer, entry.header);
    }
  };
  const failed = await settleTar(feed, walk, extract, source);
  if (failed.length > 0) {
    throw new KilnError("KILN_E_IMAGE", `cannot read layer ${layer}: ${(failed[0] as Error).message}`, {
      cause: failed[0],
      hint: "the layer is not a valid (gzipped) tar; the image is corrupt",
    });
  }
  return "sha256:" + meter.hash.digest("hex");
}

/** What is known about a checked chain of layers (cached, so re-importing a base does not re-read it). */
const CHECK_FORMAT = "kiln-layer-check/1";

/**
 * Check every layer of an image, in order, as unpack would apply them, and
 * that each one's content matches its diff_id. Cached per chain of layer
 * digests: a chain that passed once passes again.
 */
export async function checkImageLayers(
  store: Pick<Store, "openBlob" | "cacheGet" | "cachePut">,
  layers: readonly LayerRecord[],
  where: string,
  limits: LayerLimits = LAYER_LIMITS,
): Promise<void> {
  const key = sha256Digest(canonicalJson({ format: CHECK_FORMAT, limits, layers: layers.map((l) => [l.descriptor.digest, l.diffId]) })).slice(7);
  if ((await store.cacheGet<{ ok: boolean }>("checked-layers", key))?.ok === true) return;
  const tree = new LayerTree();
  for (const l of layers) {
    const gz = l.descriptor.mediaType === MEDIA_TYPE.layerGzip || l.descriptor.mediaType === MEDIA_TYPE.dockerLayerGzip;
    const diffId = await scanLayer(store.openBlob(l.descriptor.digest), gz, l.descriptor.digest, tree, limits);
    if (diffId !== l.diffId) {
      throw new KilnError("KILN_E_UNSAFE", `layer ${l.descriptor.digest} of ${where} does not match its diff_id ${l.diffId} (got ${diffId})`, {
        hint: "the image is corrupt or was modified; nothing was imported",
        details: [{ where: l.descriptor.digest, message: "diff_id mismatch" }],
      });
    }
  }
  await store.cachePut("checked-layers", key, { ok: true });
}

/**
 * Run a tar stream's feed (blob → gunzip → meter → extract) and the consumer reading its
 * entries side by side; a failing consumer stops the feed. Returns the failures, with a
 * KilnError thrown at once when either side raised one (it already says what and where).
 */
export async function settleTar(feed: Promise<void>, consume: () => Promise<void>, extract: { destroy(e?: Error): void }, source: { destroy(): void }): Promise<unknown[]> {
  const results = await Promise.allSettled([
    feed,
    consume().catch((e: unknown) => {
      extract.destroy(e as Error);
      source.destroy();
      throw e;
    }),
  ]);
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === "rejected").map((r) => r.reason as unknown);
  const kiln = failed.find((e) => e instanceof KilnError);
  if (kiln) throw kiln;
  return failed;
}

// Reproducible gzip, compressed on several threads.
//
// The stream is cut into GZIP_BLOCK-byte blocks and each block becomes one
// independent gzip member (pinned encoder and level, mtime 0, no name); the
// members are written in input order. A multi-member gzip is one valid gzip
// (RFC 1952 §2.2): gunzip, Node's zlib, Docker, containerd and skopeo read it
// as the concatenation of the members' contents.
//
// The output depends only on the input bytes: the block size is a constant of
// the format, never derived from the thread count or the machine, and a block's
// member depends only on that block. So 1 thread and 8 threads give the same
// bytes, and so do two machines.
//
//   ""                            → 1 member (an empty one: a gzip file is never 0 bytes)
//   300 KiB                       → 1 member, compressed on the calling thread (no worker started)
//   exactly 2 MiB                 → 2 members (no empty member after a block boundary at the end)
//   2 MiB + 1 byte                → 3 members, the last holding 1 byte
//
// The encoder (kiln-layer/3) is flate2's deflate (miniz_oxide) compiled to
// WebAssembly, shipped pinned as @hazae41/foras, at level 1. Why this one
// (measured on the 2-core rig, 1 MiB blocks of the node binary, CPU MB/s, ratio):
//
//   fflate (pure JS) level 6 (kiln-layer/2)   ≈  8 MB/s   0.378
//   fflate level 1                            ≈  9 MB/s   0.400
//   pako (faithful zlib port) level 1         ≈  5 MB/s   –
//   Node's zlib level 1 / 6                   ≈ 41 / 20   0.415 / 0.381
//   foras (wasm miniz_oxide) level 1          ≈ 42 MB/s   0.459
//
// Node's zlib is not used although it is as fast: its output is not canonical
// zlib. Compared with pako on 17 blocks at levels 1, 2, 3, 4, 6 and 9, every
// block differed: Node bundles Chromium's zlib, whose insert_string hashes 4
// bytes with its own hash instead of zlib's rolling hash, and earlier Chromium
// revisions picked a CRC32C hash only when the CPU had SSE4.2/ARMv8 CRC, so the
// bytes depend on the Node build (and, for some builds, on the CPU). No pinned
// JS encoder reproduces them, so a start-up self-check could only refuse, not
// fall back to the same bytes. WebAssembly has no such trap: its integer
// semantics are fully specified, so one pinned .wasm gives the same bytes on
// every CPU and every Node version. Level 1 costs ~20% in size against level 6
// (the node runtime layer ~58 MB instead of ~48 MB) for 5× less CPU; higher
// miniz levels fall to ~19 MB/s at level 3. loadGzipEncoder checks a fixed
// sample against a committed digest, so a different encoder build (another
// foras version deduplicated in) stops the bake instead of silently changing
// every digest.
//
// Memory stays bounded whatever the layer's size: at most 2 × threads blocks
// are queued or being compressed (each worker has its next block ready while
// the calling thread waits for the oldest one, which must be written first).

import { createHash } from "node:crypto";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { __wbg_init as initEncoder, gzip as wasmGzip, Memory } from "@hazae41/foras";
import { KilnError } from "../errors.js";

/** The encoder and its setting: part of the layer format (layer.ts LAYER_FORMAT). */
export const GZIP_ENCODER = "foras@2.1.4";
export const GZIP_LEVEL = 1;
/** Bytes of input per gzip member. Part of the layer format: changing it changes every layer's digest. */
export const GZIP_BLOCK = 1024 * 1024;
/** More threads than this gain nothing on one layer stream and cost memory. */
const MAX_THREADS = 64;

/**
 * 64 KiB of text with runs of noise (selfCheckSample) gzip'd by GZIP_ENCODER at GZIP_LEVEL.
 * Changes only with the layer format; test/image/parallel-gzip.test.ts pins it too.
 */
export const SELF_CHECK_DIGEST = "567502c058cf0a753332db8ce619213bb334f1cb1fa5a1c978aeb728c84901af";

let ready: Promise<void> | undefined;
let loaded = false;

/** Deterministic, mixed compressible/incompressible input (a small LCG, no randomness). */
export function selfCheckSample(length = 64 * 1024): Uint8Array {
  const b = new Uint8Array(length);
  let x = 2463534242;
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    b[i] = (i >> 10) % 4 === 3 ? x >>> 24 : 32 + ((i * 31 + (i >> 7)) % 91);
  }
  return b;
}

/**
 * The encoder's WebAssembly bytes, from the data: URL the package bundles them in. Decoded
 * here rather than by the package's initBundledOnce(), which fetch()es the URL: that loads
 * Node's whole fetch implementation (about 50 ms of CPU in every process and worker thread
 * that compresses). Same bytes, same module: the package's own file, found next to its entry.
 */
async function bundledWasm(): Promise<Uint8Array> {
  const entry = import.meta.resolve("@hazae41/foras");
  const { data } = (await import(new URL("../../wasm/pkg/foras.wasm.mjs", entry).href)) as { data: string };
  const comma = data.indexOf(",");
  if (!data.startsWith("data:application/wasm;base64,") || comma === -1) {
    throw new KilnError("KILN_E_INTERNAL", `${GZIP_ENCODER} does not bundle its WebAssembly as this kiln expects`, { hint: "reinstall kiln's dependencies (npm ci)" });
  }
  return Buffer.from(data.slice(comma + 1), "base64");
}

/**
 * Load the wasm encoder (once per thread) and check it against SELF_CHECK_DIGEST.
 * Every path to gzipMember awaits this first.
 */
export function loadGzipEncoder(): Promise<void> {
  ready ??= (async () => {
    await initEncoder(await bundledWasm());
    loaded = true;
    const got = createHash("sha256").update(gzipMember(selfCheckSample())).digest("hex");
    if (got !== SELF_CHECK_DIGEST) {
      loaded = false;
      throw new KilnError("KILN_E_INTERNAL", `the gzip encoder does not give the bytes of this layer format (self-check sha256 ${got})`, {
        hint: `reinstall kiln's dependencies (npm ci): layers need exactly ${GZIP_ENCODER}`,
      });
    }
  })();
  return ready;
}

/** One block → one complete gzip member (header with mtime 0 and no name, deflate, CRC32, size). */
export function gzipMember(block: Uint8Array): Uint8Array {
  if (!loaded) throw new KilnError("KILN_E_INTERNAL", "gzipMember called before loadGzipEncoder()");
  const input = new Memory(block);
  try {
    // copyAndDispose: a plain array that owns its buffer, and the wasm-side output is freed.
    return wasmGzip(input, GZIP_LEVEL).copyAndDispose();
  } finally {
    input.free();
  }
}

/**
 * How many threads compress a layer: KILN_BAKE_THREADS when set, else the
 * machine's available cores.
 *
 *   (undefined, 2) → 2      ("", 8)   → 8      ("1", 8) → 1
 *   ("4", 2)       → 4 (asking for more than the cores is allowed)
 *   ("0" | "-1" | "two" | "1.5" | "65") → KILN_E_USAGE
 */
export function pickBakeThreads(fromEnv: string | undefined, cores: number): number {
  if (fromEnv === undefined || fromEnv.trim() === "") return Math.max(1, Math.min(MAX_THREADS, Math.floor(cores)));
  const n = /^\s*\d+\s*$/.test(fromEnv) ? Number(fromEnv) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_THREADS) {
    throw new KilnError("KILN_E_USAGE", `KILN_BAKE_THREADS=${JSON.stringify(fromEnv)} is not a whole number from 1 to ${MAX_THREADS}`, {
      hint: "set it to the number of threads that compress a layer (e.g. 1 or 4), or unset it to use every core",
    });
  }
  return n;
}

/** pickBakeThreads over an environment and this machine's cores. */
export function bakeThreads(env: Record<string, string | undefined>): number {
  return pickBakeThreads(env.KILN_BAKE_THREADS, availableParallelism());
}

/**
 * A gzip writer: push() input in any slicing, then finish(). Compressed bytes
 * go to `write` in order; push() and finish() resolve once their output is
 * written or queued within the memory bound. Call close() on an error path: it
 * stops the workers (finish() does it on success).
 */
export class BlockGzip {
  private block: Uint8Array = new Uint8Array(GZIP_BLOCK);
  private fill = 0;
  /** members being compressed, oldest first */
  private readonly pending: Promise<Uint8Array>[] = [];
  private pool: GzipPool | undefined;
  /** block buffers the workers gave back, reused so no block pays for fresh memory */
  private readonly free: Uint8Array[] = [];
  private members = 0;
  private readonly threads: number;

  constructor(
    threads: number,
    private readonly write: (member: Uint8Array) => Promise<void>,
  ) {
    this.threads = Math.max(1, Math.min(MAX_THREADS, Math.floor(threads)));
  }

  async push(data: Uint8Array): Promise<void> {
    let off = 0;
    while (off < data.length) {
      const n = Math.min(GZIP_BLOCK - this.fill, data.length - off);
      this.block.set(data.subarray(off, off + n), this.fill);
      this.fill += n;
      off += n;
      if (this.fill === GZIP_BLOCK) await this.dispatch(false);
    }
  }

  async finish(): Promise<void> {
    try {
      // A final partial block; an empty input still makes one (empty) member.
      if (this.fill > 0 || this.members === 0) await this.dispatch(true);
      while (this.pending.length > 0) await this.write(await this.pending.shift()!);
    } finally {
      await this.close();
    }
  }

  /** Stop the workers; pending members are dropped. Safe to call more than once. */
  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    this.pending.length = 0;
    if (pool) await pool.close();
  }

  private async dispatch(last: boolean): Promise<void> {
    const full = this.block;
    const block = this.fill === GZIP_BLOCK ? full : full.subarray(0, this.fill);
    this.members++;
    this.fill = 0;
    // One thread, or a layer that fits in one block: no worker is worth starting.
    const alone = this.threads === 1 || (last && this.pool === undefined);
    if (alone) {
      await loadGzipEncoder();
      // gzipMember copies the block into the encoder's memory: the same buffer takes the next block.
      const member = gzipMember(block);
      this.block = last ? new Uint8Array(0) : full;
      await this.write(member);
      return;
    }
    // The buffer is handed over to a worker (transferred); the next block takes one a worker gave back, or a new one.
    this.block = last ? new Uint8Array(0) : (this.free.pop() ?? new Uint8Array(GZIP_BLOCK));
    this.pool ??= new GzipPool(this.threads, (buffer) => {
      if (buffer.byteLength === GZIP_BLOCK && this.free.length < 2 * this.threads + 1) this.free.push(new Uint8Array(buffer));
    });
    const p = this.pool.compress(block);
    // Rejections are handled when the member's turn comes; until then, do not report them as unhandled.
    p.catch(() => undefined);
    this.pending.push(p);
    while (this.pending.length >= 2 * this.threads) await this.write(await this.pending.shift()!);
  }
}

interface Job {
  block: Uint8Array;
  resolve: (member: Uint8Array) => void;
  reject: (e: Error) => void;
}

/** Worker threads compressing one block at a time each; jobs are taken in the order given. */
class GzipPool {
  private readonly idle: Worker[] = [];
  private readonly all: Worker[] = [];
  private readonly running = new Map<Worker, Job>();
  private readonly queue: Job[] = [];
  private failure: Error | undefined;

  constructor(
    threads: number,
    private readonly recycle: (block: ArrayBuffer) => void,
  ) {
    for (let i = 0; i < threads; i++) {
      const w = new Worker(new URL("./gzip-worker.js", import.meta.url));
      w.on("message", ({ member, block }: { member: Uint8Array; block: ArrayBuffer }) => {
        const job = this.running.get(w);
        this.running.delete(w);
        this.idle.push(w);
        this.recycle(block);
        job?.resolve(member);
        this.next();
      });
      w.on("error", (e) => this.fail(e));
      w.on("exit", (code) => {
        if (this.all.includes(w)) this.fail(new Error(`a gzip worker exited with code ${code}`));
      });
      this.all.push(w);
      this.idle.push(w);
    }
  }

  compress(block: Uint8Array): Promise<Uint8Array> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<Uint8Array>((resolve, reject) => {
      this.queue.push({ block, resolve, reject });
      this.next();
    });
  }

  async close(): Promise<void> {
    const workers = this.all.splice(0);
    this.fail(new Error("the gzip pool was closed"));
    await Promise.all(workers.map((w) => w.terminate()));
  }

  private next(): void {
    while (this.queue.length > 0 && this.idle.length > 0) {
      const w = this.idle.pop()!;
      const job = this.queue.shift()!;
      this.running.set(w, job);
      w.postMessage(job.block, [job.block.buffer as ArrayBuffer]);
    }
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const job of [...this.running.values(), ...this.queue.splice(0)]) {
      job.reject(new KilnError("KILN_E_INTERNAL", `gzip compression failed: ${e.message}`, { cause: e }));
    }
    this.running.clear();
  }
}

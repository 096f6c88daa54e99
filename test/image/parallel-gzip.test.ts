// The block gzip's contract: the same bytes whatever the thread count and the slicing of the
// input, one gzip member per GZIP_BLOCK of input, readable by Node's gunzip as one stream.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { before, test } from "node:test";
import { gunzipSync } from "node:zlib";
import { KilnError } from "../../src/errors.js";
import { BlockGzip, GZIP_BLOCK, gzipMember, loadGzipEncoder, pickBakeThreads, SELF_CHECK_DIGEST, selfCheckSample } from "../../src/image/parallel-gzip.js";

// membersOf calls gzipMember directly; BlockGzip loads the encoder by itself.
before(() => loadGzipEncoder());

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** Compress `data`, pushed in slices of the given sizes (cycled), on `threads` threads. */
async function compress(data: Uint8Array, threads: number, sizes: number[] = [data.length || 1]): Promise<Buffer> {
  const out: Uint8Array[] = [];
  const gz = new BlockGzip(threads, async (m) => {
    out.push(m);
  });
  let off = 0;
  let k = 0;
  while (off < data.length) {
    const n = Math.min(sizes[k++ % sizes.length]!, data.length - off);
    await gz.push(data.subarray(off, off + n));
    off += n;
  }
  await gz.finish();
  return Buffer.concat(out);
}

/** Mostly text-like (compresses, fast), one 8 KiB run in eight of noise (does not): members of different sizes. */
function sample(length: number): Buffer {
  const b = Buffer.alloc(length);
  let x = 12345;
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = (i >> 13) % 8 !== 0 ? 97 + ((i * 7) % 13) : x >>> 24;
  }
  return b;
}

function membersOf(data: Uint8Array): Buffer {
  if (data.length === 0) return Buffer.from(gzipMember(data));
  const parts: Uint8Array[] = [];
  for (let off = 0; off < data.length; off += GZIP_BLOCK) parts.push(gzipMember(data.subarray(off, off + GZIP_BLOCK)));
  return Buffer.concat(parts);
}

test("pickBakeThreads: KILN_BAKE_THREADS wins, else the cores; nonsense is a usage error", () => {
  const rows: [string | undefined, number, number][] = [
    [undefined, 2, 2],
    ["", 8, 8],
    ["1", 8, 1],
    ["4", 2, 4],
    [" 3 ", 2, 3],
    [undefined, 0, 1],
  ];
  for (const [env, cores, want] of rows) assert.equal(pickBakeThreads(env, cores), want, `${JSON.stringify(env)}, ${cores}`);
  for (const bad of ["0", "-1", "two", "1.5", "65"]) {
    assert.throws(() => pickBakeThreads(bad, 2), (e) => e instanceof KilnError && e.code === "KILN_E_USAGE" && /KILN_BAKE_THREADS/.test(e.message), bad);
  }
});

test("the same bytes for 1, 2 and 4 threads and any slicing; Node's gunzip reads the members as one stream", async () => {
  const data = sample(2 * GZIP_BLOCK + 12_345);
  const one = await compress(data, 1);
  assert.ok(one.equals(membersOf(data)), "one member per block, in order");
  for (const [threads, sizes] of [
    [2, [data.length]],
    [4, [1, 511, 65_536, 4097]],
    [2, [GZIP_BLOCK + 1, 3]],
  ] as const) {
    assert.ok((await compress(data, threads, [...sizes])).equals(one), `${threads} threads, slices ${sizes.join(",")}`);
  }
  assert.ok(gunzipSync(one).equals(data));
  // Every member's header: no file name, mtime 0.
  assert.equal(one[3], 0);
  assert.equal(one.readUInt32LE(4), 0);
});

// The layer format's bytes, pinned: these digests are the same on every machine, CPU and Node
// version (a wasm encoder); if one changes, every layer digest changed and LAYER_FORMAT must be bumped.
test("golden bytes: the self-check sample and a 2-block sample give the committed digests on 1 and 2 threads", async () => {
  assert.equal(sha256(gzipMember(selfCheckSample())), SELF_CHECK_DIGEST);
  assert.equal(SELF_CHECK_DIGEST, "567502c058cf0a753332db8ce619213bb334f1cb1fa5a1c978aeb728c84901af");
  const data = sample(GZIP_BLOCK + 4321);
  const one = await compress(data, 1);
  assert.equal(sha256(one), "97c37836bc27a519ac2a671928e65fa08bc29f0b88632f509dd49752f2955b23");
  assert.equal(sha256(await compress(data, 2)), sha256(one));
  assert.ok(gunzipSync(one).equals(data));
});

test("empty and tiny inputs: one member, on the calling thread", async () => {
  const empty = await compress(new Uint8Array(0), 4);
  assert.ok(empty.equals(Buffer.from(gzipMember(new Uint8Array(0)))));
  assert.equal(gunzipSync(empty).length, 0);
  const tiny = await compress(Buffer.from("hi\n"), 4);
  assert.ok(tiny.equals(await compress(Buffer.from("hi\n"), 1)));
  assert.equal(gunzipSync(tiny).toString(), "hi\n");
});

test("a block boundary exactly at the end: no empty member after it", async () => {
  const data = sample(2 * GZIP_BLOCK);
  const out = await compress(data, 2, [GZIP_BLOCK]);
  assert.ok(out.equals(Buffer.concat([gzipMember(data.subarray(0, GZIP_BLOCK)), gzipMember(data.subarray(GZIP_BLOCK))])));
  assert.ok(out.equals(await compress(data, 1)));
  assert.ok(gunzipSync(out).equals(data));
  // One byte past the boundary is a third member.
  const more = Buffer.concat([data, Buffer.from("!")]);
  assert.ok((await compress(more, 2)).equals(Buffer.concat([out, Buffer.from(gzipMember(Buffer.from("!")))])));
});

test("a failing sink stops the compression with its error, and close() stops the workers", async () => {
  const gz = new BlockGzip(2, async () => {
    throw new Error("disk full");
  });
  const data = sample(6 * GZIP_BLOCK);
  await assert.rejects(
    (async () => {
      await gz.push(data);
      await gz.finish();
    })(),
    /disk full/,
  );
  await gz.close();
});

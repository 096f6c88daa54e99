import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { chmod, mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { gzipSync } from "node:zlib";
import { hashFile, planLayer, type LayerEntry } from "../../src/image/layer.js";
import { buildLayer, MAX_ENTRIES, MIN_BYTES, machineLayerCacheRoot } from "../../src/image/machine-layers.js";
import { openStore } from "../../src/image/store.js";
import type { ProgressEvent } from "../../src/image/types.js";
import { tempDir } from "./helpers.js";

/** A planned layer holding one big random file (above MIN_BYTES, so it is cached machine-wide). */
async function bigLayer(dir: string, bytes = MIN_BYTES + 1024): Promise<LayerEntry[]> {
  const host = join(dir, `blob-${randomBytes(4).toString("hex")}`);
  await writeFile(host, Buffer.concat([randomBytes(16), Buffer.alloc(bytes - 16)]));
  const file = { ...(await hashFile(host)), hostPath: host };
  return planLayer([{ path: "opt/big.bin", kind: "file", mode: 0o644, file }]);
}

const quiet = () => undefined;

test("a big layer built in one store is reused, verified, by the next store; small layers are not kept", async (t) => {
  const dir = await tempDir(t);
  const env = { KILN_LAYER_CACHE: join(dir, "cache") };
  const planned = await bigLayer(dir);
  const a = openStore(join(dir, "a"));
  const built = await buildLayer(a, "k1", planned, 0, quiet, "layer base", "building", {}, env);
  const kept = (await readdir(env.KILN_LAYER_CACHE)).sort();
  assert.deepEqual(kept, ["k1.json", "k1.tar.gz"]);
  assert.equal(((await stat(env.KILN_LAYER_CACHE)).mode & 0o777).toString(8), "700");

  const b = openStore(join(dir, "b"));
  const events: ProgressEvent[] = [];
  const reused = await buildLayer(b, "k1", planned, 0, (e) => events.push(e), "layer base", "building", {}, env);
  assert.deepEqual(reused, built);
  await b.verifyBlob(reused.descriptor.digest);
  assert.match(events.at(-1)?.detail ?? "", /^reused sha256:/);

  const small = planLayer([{ path: "etc/x", kind: "file", mode: 0o644, file: { size: 2, sha256: createHash("sha256").update("hi").digest("hex"), data: Buffer.from("hi") } }]);
  await buildLayer(a, "small", small, 0, quiet, "layer app", "building", {}, env);
  assert.deepEqual((await readdir(env.KILN_LAYER_CACHE)).sort(), ["k1.json", "k1.tar.gz"]);
});

test("an entry that does not decompress to the planned tar is not used: the layer is built and the entry replaced", async (t) => {
  const dir = await tempDir(t);
  const env = { KILN_LAYER_CACHE: join(dir, "cache") };
  const planned = await bigLayer(dir);
  const built = await buildLayer(openStore(join(dir, "a")), "k", planned, 0, quiet, "layer base", "building", {}, env);
  // Same record, other content: a gzip of different bytes padded to the recorded size is still refused.
  const record = JSON.parse(await readFile(join(env.KILN_LAYER_CACHE, "k.json"), "utf8"));
  const other = gzipSync(randomBytes(1024));
  await writeFile(join(env.KILN_LAYER_CACHE, "k.tar.gz"), Buffer.concat([other, Buffer.alloc(record.descriptor.size - other.length)]));
  const b = openStore(join(dir, "b"));
  const events: ProgressEvent[] = [];
  const again = await buildLayer(b, "k", planned, 0, (e) => events.push(e), "layer base", "building", {}, env);
  assert.deepEqual(again, built);
  assert.ok(events.some((e) => /did not verify/.test(e.detail ?? "")), JSON.stringify(events.map((e) => e.detail)));
  assert.deepEqual(await readFile(join(env.KILN_LAYER_CACHE, "k.tar.gz")), await readFile(b.blobPath(built.descriptor.digest)));
});

test("a gzip bomb in the cache is refused", async (t) => {
  const dir = await tempDir(t);
  const env = { KILN_LAYER_CACHE: join(dir, "cache") };
  const planned = await bigLayer(dir);
  const built = await buildLayer(openStore(join(dir, "a")), "k", planned, 0, quiet, "layer base", "building", {}, env);
  const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024));
  const record = JSON.parse(await readFile(join(env.KILN_LAYER_CACHE, "k.json"), "utf8"));
  record.descriptor.size = bomb.length;
  await writeFile(join(env.KILN_LAYER_CACHE, "k.json"), JSON.stringify(record));
  await writeFile(join(env.KILN_LAYER_CACHE, "k.tar.gz"), bomb);
  const again = await buildLayer(openStore(join(dir, "b")), "k", planned, 0, quiet, "layer base", "building", {}, env);
  assert.deepEqual(again, built);
});

test("a cache directory others can write to, or KILN_LAYER_CACHE=off, is not used", async (t) => {
  const dir = await tempDir(t);
  const shared = join(dir, "shared");
  await mkdir(shared);
  await chmod(shared, 0o777);
  const planned = await bigLayer(dir);
  await buildLayer(openStore(join(dir, "a")), "k", planned, 0, quiet, "layer base", "building", {}, { KILN_LAYER_CACHE: shared });
  assert.deepEqual(await readdir(shared), []);

  assert.equal(machineLayerCacheRoot({ KILN_LAYER_CACHE: "off" }), undefined);
  assert.equal(machineLayerCacheRoot({ HOME: "/home/u" }), "/home/u/.cache/kiln/layers");
  assert.equal(machineLayerCacheRoot({ HOME: "/home/u", XDG_CACHE_HOME: "/c" }), "/c/kiln/layers");
});

test(`the cache keeps the ${MAX_ENTRIES} most recently used entries`, async (t) => {
  const dir = await tempDir(t);
  const env = { KILN_LAYER_CACHE: join(dir, "cache") };
  const store = openStore(join(dir, "s"));
  for (let i = 0; i <= MAX_ENTRIES; i++) await buildLayer(store, `k${String(i).padStart(2, "0")}`, await bigLayer(dir), 0, quiet, "layer base", "building", {}, env);
  const records = (await readdir(env.KILN_LAYER_CACHE)).filter((n) => n.endsWith(".json"));
  assert.equal(records.length, MAX_ENTRIES);
});

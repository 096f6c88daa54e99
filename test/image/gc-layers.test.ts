// gc of unpacked layer directories (src/image/gc.ts): kept while a kept image lists the
// layer, whatever rootfs trees exist; all kept when a kept image's config is unreadable.

import assert from "node:assert/strict";
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { collectGarbage } from "../../src/image/gc.js";
import { openStore, readImage, unpackRootfs, type Store } from "../../src/image/index.js";
import { MEDIA_TYPE } from "../../src/image/types.js";
import { layersRoot } from "../../src/image/unpack.js";
import { craftImage, tempDir, type RawEntry } from "./helpers.js";

const BASE: RawEntry[] = [{ name: "usr/", type: "directory" }, { name: "usr/bin/", type: "directory" }, { name: "usr/bin/tool", body: "t".repeat(5000), mode: 0o755 }];
const app = (v: string): RawEntry[] => [{ name: "app/", type: "directory" }, { name: "app/v", body: v.repeat(1000) }];

async function layerDirs(store: Store): Promise<string[]> {
  return (await readdir(layersRoot(store))).filter((n) => /^[0-9a-f]{64}$/.test(n)).sort();
}

async function setup(t: { after(fn: () => Promise<void> | void): void }) {
  const dir = await tempDir(t);
  const store = openStore(join(dir, "store"));
  const a = await craftImage(store, [BASE, app("a")]);
  const b = await craftImage(store, [BASE, app("b")]);
  for (const [ref, digest] of [["x:1", a], ["x:2", b]] as const) {
    const size = (await store.readBlob(digest)).length;
    await store.tag(ref, { mediaType: MEDIA_TYPE.manifest, digest, size });
  }
  const ids = async (d: string) => (await readImage(store, d)).config.rootfs.diff_ids.map((x) => x.slice(7));
  return { store, a, b, aIds: await ids(a), bIds: await ids(b) };
}

test("a layer directory stays while a kept image lists it and goes with the last image using it; the kept image recomposes without unpacking", async (t) => {
  const { store, a, b, aIds, bIds } = await setup(t);
  await unpackRootfs(store, a);
  await unpackRootfs(store, b);
  assert.equal((await layerDirs(store)).length, 3);
  // Only b is pinned and tags are pruned: a's image, its rootfs tree and its app layer go;
  // the base stays (b lists it), and so does b's app layer.
  const r = await collectGarbage(store, { pins: [{ digest: b, reasons: ["test pin"] }], pruneTags: true, graceMs: 0 });
  assert.deepEqual(r.removedLayers.map((l) => l.diffId.slice(7)), [aIds[1]]);
  assert.deepEqual(await layerDirs(store), [...bIds].sort());
  assert.match(r.keptLayers.find((l) => l.diffId.slice(7) === bIds[0])!.reasons.join(), /image x:2/);
  assert.deepEqual(r.removedRootfs.map((x) => x.digest), [a]);
  // a's app layer held 1000 bytes of its own; its rootfs tree nothing more (links).
  assert.equal(r.bytesFreed - r.removedBlobs.reduce((n, x) => n + x.size, 0), 1000);
  // b's root is still whole and a fresh compose of b still works from the kept layers.
  await rm(join(store.rootfsRoot(), b.slice(7)), { recursive: true });
  await rm(join(store.rootfsRoot(), `${b.slice(7)}.complete`));
  const root = await unpackRootfs(store, b);
  assert.deepEqual(await readdir(join(root, "app")), ["v"]);
  assert.equal((await layerDirs(store)).length, 2, "nothing unpacked again");
});

test("recently used layer directories and those of images whose config is unreadable are kept", async (t) => {
  const { store, a, b } = await setup(t);
  await unpackRootfs(store, a);
  await unpackRootfs(store, b);
  const recent = await collectGarbage(store, { pins: [], pruneTags: true, dryRun: true });
  assert.equal(recent.removedLayers.length, 0);
  assert.ok(recent.keptLayers.every((l) => l.reasons.join() === "unpacked recently"), JSON.stringify(recent.keptLayers));
  // b's config blob is gone: which layers b needs is unknown, so no layer directory is removed.
  await rm(store.blobPath((await readImage(store, b)).manifest.config.digest));
  const r = await collectGarbage(store, { pins: [{ digest: b, reasons: ["test pin"] }], graceMs: 0, dryRun: true });
  assert.equal(r.removedLayers.length, 0);
  assert.equal(r.keptLayers.length, 3);
  assert.match(r.keptLayers[0]!.reasons.join(), /unreadable/);
});

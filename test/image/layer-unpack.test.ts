// Layers unpacked once by DiffID and roots composed from them (src/image/unpack.ts):
// sharing between images, whiteouts against a shared lower layer, and what a failed
// layer leaves behind. No process is spawned.

import assert from "node:assert/strict";
import { lstat, readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { KilnError } from "../../src/errors.js";
import { openStore, readImage, unpackRootfs } from "../../src/image/index.js";
import { layersRoot } from "../../src/image/unpack.js";
import { craftImage, tempDir, type RawEntry } from "./helpers.js";

const BASE: RawEntry[] = [
  { name: "usr/", type: "directory" },
  { name: "usr/bin/", type: "directory" },
  { name: "usr/bin/tool", body: "#!/bin/sh\necho tool\n", mode: 0o755 },
  { name: "etc/", type: "directory" },
  { name: "etc/gone.conf", body: "deleted by the app layer" },
  { name: "etc/conf.d/", type: "directory" },
  { name: "etc/conf.d/a", body: "a" },
  { name: "etc/conf.d/b", body: "b" },
  { name: "var/", type: "directory" },
  { name: "var/data/", type: "directory" },
  { name: "var/data/x", body: "x" },
  { name: "opt/thing", body: "a file the app layer turns into a directory" },
];

async function exists(p: string): Promise<boolean> {
  return lstat(p).then(
    () => true,
    () => false,
  );
}

test("two images sharing a base layer share its unpacked files; only the app layer is unpacked again", async (t) => {
  const dir = await tempDir(t);
  const store = openStore(join(dir, "store"));
  const v1 = await craftImage(store, [BASE, [{ name: "app/", type: "directory" }, { name: "app/server.js", body: "v1" }]]);
  const v2 = await craftImage(store, [BASE, [{ name: "app/", type: "directory" }, { name: "app/server.js", body: "v2" }]]);
  const r1 = await unpackRootfs(store, v1);
  const layersAfterV1 = (await readdir(layersRoot(store))).filter((n) => !n.includes("."));
  assert.equal(layersAfterV1.length, 2);
  const r2 = await unpackRootfs(store, v2);
  assert.notEqual(r1, r2);
  const layers = (await readdir(layersRoot(store))).filter((n) => !n.includes("."));
  assert.equal(layers.length, 3, "base once, two app layers");
  const { config } = await readImage(store, v2);
  assert.deepEqual(layers.sort(), [...new Set([...layersAfterV1, ...config.rootfs.diff_ids.map((d) => d.slice(7))])].sort());
  assert.equal(await readFile(join(r1, "app/server.js"), "utf8"), "v1");
  assert.equal(await readFile(join(r2, "app/server.js"), "utf8"), "v2");
  const a = await stat(join(r1, "usr/bin/tool"));
  const b = await stat(join(r2, "usr/bin/tool"));
  assert.equal(a.ino, b.ino, "one inode for the base file in both roots");
  assert.equal(a.ino, (await stat(join(layersRoot(store), config.rootfs.diff_ids[0]!.slice(7), "usr/bin/tool"))).ino);
  assert.equal(a.mode & 0o7777, 0o755);
  if (process.getuid?.() === 0) assert.equal(a.uid, 0, "owned by root: the instance's user cannot write through the link");
  assert.deepEqual(await readdir(join(store.root, "tmp")), []);
  for (const n of await readdir(layersRoot(store))) assert.ok(!n.endsWith(".lock"), `no lock left: ${n}`);
});

test("two images sharing a base, unpacked at the same time, unpack it once", async (t) => {
  const dir = await tempDir(t);
  const store = openStore(join(dir, "store"));
  const images = await Promise.all(["a", "b", "c"].map((v) => craftImage(store, [BASE, [{ name: "app/", type: "directory" }, { name: "app/v", body: v }]])));
  const roots = await Promise.all(images.map((d) => unpackRootfs(store, d)));
  assert.equal(new Set((await Promise.all(roots.map((r) => stat(join(r, "usr/bin/tool"))))).map((s) => s.ino)).size, 1);
  assert.equal((await readdir(layersRoot(store))).filter((n) => !n.includes(".")).length, 4);
  assert.deepEqual(await Promise.all(roots.map((r) => readFile(join(r, "app/v"), "utf8"))), ["a", "b", "c"]);
  assert.deepEqual(await readdir(join(store.root, "tmp")), []);
});

test("an upper layer's whiteouts delete a file and replace directories in the root, never in the shared lower layer", async (t) => {
  const dir = await tempDir(t);
  const store = openStore(join(dir, "store"));
  const plain = await craftImage(store, [BASE]);
  const app = await craftImage(store, [
    BASE,
    [
      { name: "etc/", type: "directory" },
      { name: "etc/.wh.gone.conf" },
      { name: "etc/conf.d/", type: "directory" },
      { name: "etc/conf.d/.wh..wh..opq" },
      { name: "etc/conf.d/c", body: "c" },
      { name: "var/.wh.data" },
      { name: "var/data", body: "now a file" },
      { name: "opt/thing/", type: "directory" },
      { name: "opt/thing/inside", body: "i" },
    ],
  ]);
  const root = await unpackRootfs(store, app);
  assert.equal(await exists(join(root, "etc/gone.conf")), false, "file whiteout");
  assert.deepEqual((await readdir(join(root, "etc/conf.d"))).sort(), ["c"], "opaque directory: lower entries hidden, the layer's own kept");
  assert.equal(await readFile(join(root, "var/data"), "utf8"), "now a file", "directory replaced by a file");
  assert.equal(await readFile(join(root, "opt/thing/inside"), "utf8"), "i", "file replaced by a directory");
  for (const p of ["etc", "etc/conf.d", "var", "opt"]) {
    for (const n of await readdir(join(root, p))) assert.ok(!n.startsWith(".wh."), `no whiteout file in the root: ${p}/${n}`);
  }
  // The lower layer is shared: an image made of it alone still has everything.
  const lower = await unpackRootfs(store, plain);
  assert.equal(await readFile(join(lower, "etc/gone.conf"), "utf8"), "deleted by the app layer");
  assert.deepEqual((await readdir(join(lower, "etc/conf.d"))).sort(), ["a", "b"]);
  assert.equal(await readFile(join(lower, "var/data/x"), "utf8"), "x");
  assert.equal(await readFile(join(lower, "opt/thing"), "utf8"), "a file the app layer turns into a directory");
  assert.equal((await stat(join(lower, "usr/bin/tool"))).ino, (await stat(join(root, "usr/bin/tool"))).ino);
});

test("a named directory replaces a lower symlink; one made only for a child follows it", async (t) => {
  const dir = await tempDir(t);
  const store = openStore(join(dir, "store"));
  const digest = await craftImage(store, [
    [{ name: "usr/lib/", type: "directory" }, { name: "usr/lib/base.so", body: "b" }, { name: "lib", type: "symlink", linkname: "usr/lib" }, { name: "bin", type: "symlink", linkname: "usr/bin" }],
    [{ name: "lib/extra.so", body: "e" }, { name: "bin/", type: "directory" }, { name: "bin/sh", body: "sh" }],
  ]);
  const root = await unpackRootfs(store, digest);
  assert.equal(await readFile(join(root, "usr/lib/extra.so"), "utf8"), "e", "followed the lower symlink, inside the root");
  assert.ok((await lstat(join(root, "lib"))).isSymbolicLink());
  assert.ok((await lstat(join(root, "bin"))).isDirectory(), "a named directory hides the symlink");
  assert.equal(await readFile(join(root, "bin/sh"), "utf8"), "sh");
  assert.equal(await exists(join(root, "usr/bin")), false);
  for (const n of await readdir(join(root, "usr/lib"))) assert.ok(!n.startsWith(".wh."), n);
});

test("a refused layer leaves no layer directory, and the layers before it stay for the next image", async (t) => {
  const dir = await tempDir(t);
  const store = openStore(join(dir, "store"));
  const digest = await craftImage(store, [BASE, [{ name: "app/../../escape", body: "x" }]]);
  await assert.rejects(unpackRootfs(store, digest), (e) => e instanceof KilnError && e.code === "KILN_E_UNSAFE" && e.message.includes("app/../../escape"));
  const names = await readdir(layersRoot(store));
  assert.equal(names.filter((n) => !n.includes(".")).length, 1, "the base layer, complete");
  assert.equal(names.filter((n) => n.endsWith(".complete")).length, 1);
  assert.deepEqual(await readdir(store.rootfsRoot()), []);
  assert.deepEqual(await readdir(join(store.root, "tmp")), []);
});

import assert from "node:assert/strict";
import { lstat, mkdir, readdir, readFile, readlink, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { KilnError } from "../../src/errors.js";
import { openStore, readImage, unpackRootfs } from "../../src/image/index.js";
import { craftImage, tempDir, type RawEntry } from "./helpers.js";

async function exists(p: string): Promise<boolean> {
  return lstat(p).then(
    () => true,
    () => false,
  );
}

/**
 * Each case is a list of layers; the store lives in dir/store and a sentinel
 * directory dir/outside must stay empty, whatever the layers try.
 */
const malicious: { name: string; layers: RawEntry[][]; entry: string }[] = [
  { name: "absolute path", layers: [[{ name: "/tmp/pwned", body: "x" }]], entry: "/tmp/pwned" },
  { name: "../ component", layers: [[{ name: "app/../../../../outside/pwned", body: "x" }]], entry: "app/../../../../outside/pwned" },
  { name: "leading ../", layers: [[{ name: "../outside/pwned", body: "x" }]], entry: "../outside/pwned" },
  {
    name: "symlink escaping the root, then a write through it",
    layers: [[{ name: "evil", type: "symlink", linkname: "../../../../../../outside" }, { name: "evil/pwned", body: "x" }]],
    entry: "evil",
  },
  {
    name: "escaping symlink in one layer, write through it in the next",
    layers: [[{ name: "app/", type: "directory" }, { name: "app/up", type: "symlink", linkname: "../.." }], [{ name: "app/up/pwned", body: "x" }]],
    entry: "app/up",
  },
  { name: "hard link to an absolute path", layers: [[{ name: "passwd", type: "link", linkname: "/etc/passwd" }]], entry: "passwd" },
  { name: "hard link climbing out", layers: [[{ name: "passwd", type: "link", linkname: "../../../../etc/passwd" }]], entry: "passwd" },
];

describe("unpack refuses layers that escape the root", () => {
  for (const c of malicious) {
    test(c.name, async (t) => {
      const dir = await tempDir(t);
      await mkdir(join(dir, "outside"));
      const store = openStore(join(dir, "store"));
      const digest = await craftImage(store, c.layers);
      const { manifest } = await readImage(store, digest);
      await assert.rejects(unpackRootfs(store, digest), (e) => {
        assert.ok(e instanceof KilnError, String(e));
        assert.equal(e.code, "KILN_E_UNSAFE");
        assert.ok(manifest.layers.some((l) => e.message.includes(l.digest)), `names the layer: ${e.message}`);
        assert.ok(e.message.includes(c.entry), `names the entry: ${e.message}`);
        return true;
      });
      assert.deepEqual(await readdir(join(dir, "outside")), [], "nothing written outside");
      assert.equal(await exists("/tmp/pwned"), false);
      assert.deepEqual(await readdir(store.rootfsRoot()), [], "no rootfs left behind");
      assert.deepEqual(await readdir(join(store.root, "tmp")), [], "temp tree removed");
    });
  }
});

test("absolute symlinks resolve inside the root, also when later layers write through them", async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, "outside"));
  const store = openStore(join(dir, "store"));
  const outside = join(dir, "outside");
  const digest = await craftImage(store, [
    [{ name: "lib", type: "symlink", linkname: outside }, { name: "usr/", type: "directory" }],
    [{ name: "lib/x.so", body: "lib" }, { name: "usr/lib", type: "symlink", linkname: "../lib" }],
    [{ name: "usr/lib/y.so", body: "y" }],
  ]);
  const root = await unpackRootfs(store, digest);
  assert.deepEqual(await readdir(outside), [], "the host path the link names is untouched");
  assert.equal(await readFile(join(root, outside, "x.so"), "utf8"), "lib");
  assert.equal(await readFile(join(root, outside, "y.so"), "utf8"), "y");
  assert.equal(await readlink(join(root, "lib")), outside);
});

test("layers apply in order, with whiteouts, and the tree is readable but not writable by others", async (t) => {
  const dir = await tempDir(t);
  const store = openStore(join(dir, "store"));
  const digest = await craftImage(store, [
    [
      { name: "app/", type: "directory", mode: 0o777 },
      { name: "app/keep.js", body: "keep" },
      { name: "app/old.js", body: "old" },
      { name: "app/run", body: "#!/bin/sh", mode: 0o4777 },
      { name: "app/secret", body: "s", mode: 0o600 },
      { name: "cache/", type: "directory" },
      { name: "cache/a", body: "a" },
      { name: "cache/b", body: "b" },
      { name: "dev/null", type: "file", body: "" },
    ],
    [
      { name: "app/.wh.old.js" },
      { name: "app/keep.js", body: "replaced" },
      { name: "app/hard", type: "link", linkname: "app/keep.js" },
      { name: "cache/.wh..wh..opq" },
      { name: "cache/c", body: "c" },
      { name: "etc/", type: "directory" },
      { name: "etc/motd", body: "hi" },
    ],
  ]);
  const root = await unpackRootfs(store, digest);
  assert.equal(await exists(join(root, "app/old.js")), false, "whiteout removed the file");
  assert.equal(await readFile(join(root, "app/keep.js"), "utf8"), "replaced");
  assert.equal(await readFile(join(root, "app/hard"), "utf8"), "replaced");
  assert.deepEqual((await readdir(join(root, "cache"))).sort(), ["c"], "opaque whiteout hid lower entries");
  assert.equal(await exists(join(root, "app/.wh.old.js")), false);
  assert.equal((await stat(join(root, "app"))).mode & 0o7777, 0o755);
  assert.equal((await stat(join(root, "app/run"))).mode & 0o7777, 0o755, "setuid and world-write dropped");
  assert.equal((await stat(join(root, "app/secret"))).mode & 0o7777, 0o644, "readable by the instance user");
  assert.equal((await stat(root)).mode & 0o7777, 0o755);
  for (const mp of ["dev", "proc", "sys", "tmp"]) assert.ok((await stat(join(root, mp))).isDirectory(), `mount point /${mp}`);
  if (process.getuid?.() === 0) assert.equal((await stat(join(root, "etc/motd"))).uid, 0);
  // Unpacked once per digest.
  assert.equal(await unpackRootfs(store, digest), root);
});

test("concurrent unpacks of one digest agree on one tree", async (t) => {
  const dir = await tempDir(t);
  const store = openStore(join(dir, "store"));
  const files: RawEntry[] = Array.from({ length: 200 }, (_, i) => ({ name: `d${i % 10}/f${i}`, body: `content ${i}` }));
  const digest = await craftImage(store, [files]);
  const roots = await Promise.all(Array.from({ length: 4 }, () => unpackRootfs(store, digest)));
  assert.equal(new Set(roots).size, 1);
  assert.equal(await readFile(join(roots[0]!, "d3/f123"), "utf8"), "content 123");
  assert.deepEqual(await readdir(store.rootfsRoot()), [digest.slice(7), `${digest.slice(7)}.complete`]);
  assert.deepEqual(await readdir(join(store.root, "tmp")), []);
});

test("a corrupted layer blob is refused and leaves no rootfs", async (t) => {
  const dir = await tempDir(t);
  const store = openStore(join(dir, "store"));
  const digest = await craftImage(store, [[{ name: "a", body: "a".repeat(10_000) }]]);
  const { manifest } = await readImage(store, digest);
  const path = store.blobPath(manifest.layers[0]!.digest);
  const bytes = await readFile(path);
  bytes[20] ^= 0x01;
  await writeFile(path, bytes);
  await assert.rejects(unpackRootfs(store, digest), (e) => e instanceof KilnError && e.code === "KILN_E_UNSAFE");
  assert.deepEqual(await readdir(store.rootfsRoot()), []);
});

test("a layer whose content does not match its diff_id is refused", async (t) => {
  const dir = await tempDir(t);
  const store = openStore(join(dir, "store"));
  const digest = await craftImage(store, [[{ name: "a", body: "a" }]]);
  const { manifest, config } = await readImage(store, digest);
  // Re-point the manifest at a config with a wrong diff_id.
  const { canonicalBytes, sha256Digest } = await import("../../src/image/digest.js");
  const badConfig = await store.putBlob(canonicalBytes({ ...config, rootfs: { type: "layers", diff_ids: [sha256Digest("other")] } }));
  const bad = await store.putBlob(canonicalBytes({ ...manifest, config: { ...manifest.config, ...badConfig } }));
  await assert.rejects(unpackRootfs(store, bad.digest), (e) => e instanceof KilnError && e.code === "KILN_E_UNSAFE" && /diff_id/.test(e.message));
});

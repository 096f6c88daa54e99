// An unpacked rootfs is used only when its completion marker says it is whole:
// a tree left half-written (a crash between writing and publishing) is
// replaced by a fresh unpack, never run.

import assert from "node:assert/strict";
import { lstat, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { digestHex } from "../../src/image/digest.js";
import { openStore, unpackRootfs } from "../../src/image/index.js";
import { rootfsMarker } from "../../src/image/unpack.js";
import { craftImage, tempDir } from "../image/helpers.js";

test("a rootfs directory without its marker is not trusted: it is unpacked again", async (t) => {
  const dir = await tempDir(t, "kiln-hostile-");
  const store = openStore(join(dir, "store"));
  const digest = await craftImage(store, [[{ name: "app/server.js", body: "whole" }, { name: "etc/passwd", body: "app:x:1000:1000::/:/bin/sh\n" }]]);
  const hex = digestHex(digest);
  // What a crash mid-unpack (or an interrupted copy) leaves: the directory, half of the files.
  await mkdir(join(store.rootfsRoot(), hex, "app"), { recursive: true });
  await writeFile(join(store.rootfsRoot(), hex, "app", "server.js"), "trunc");
  const root = await unpackRootfs(store, digest);
  assert.equal(await readFile(join(root, "app/server.js"), "utf8"), "whole");
  assert.ok((await lstat(join(root, "etc/passwd"))).isFile());
  assert.ok((await lstat(rootfsMarker(store, hex))).isFile(), "the marker is written once the tree is whole");
  // With the marker, the tree is reused as is.
  assert.equal(await unpackRootfs(store, digest), root);
});

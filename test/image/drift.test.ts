// Drift of an unpacked root: compareTrees (the rows of its doc comment), then a
// real bake (the tiny base and the fixture app), unpacked, verified clean, then
// tampered with (a file rewritten, one removed, a file and a link added):
// each change is a finding. Spawns nothing.

import assert from "node:assert/strict";
import { appendFile, chmod, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { bake, openStore, unpackRootfs } from "../../src/image/index.js";
import { compareTrees, unpackedDigests, verifyRootfs, type TreeNode } from "../../src/image/drift.js";
import { driftFromChanges } from "../../src/providers/docker/drift.js";
import { buildTinyBase, copyFixtureApp, recipe, tempDir } from "./helpers.js";

const f = (sha256: string): TreeNode => ({ type: "file", sha256 });
const m = (o: Record<string, TreeNode>) => new Map(Object.entries(o));

test("compareTrees: the doc comment's rows", () => {
  assert.deepEqual(compareTrees(m({ a: f("h1") }), m({ a: f("h2") })), [{ path: "a", kind: "modified", detail: "sha256 h1… → h2…" }]);
  assert.deepEqual(compareTrees(m({ a: f("h1") }), m({})), [{ path: "a", kind: "missing" }]);
  assert.deepEqual(compareTrees(m({}), m({ x: f("h") })), [{ path: "x", kind: "added" }]);
  assert.deepEqual(compareTrees(m({ a: { type: "dir" } }), m({ a: f("h") })), [{ path: "a", kind: "type-changed", detail: "dir → file" }]);
  assert.deepEqual(compareTrees(m({ l: { type: "symlink", target: "/x" } }), m({ l: { type: "symlink", target: "/y" } })), [{ path: "l", kind: "link-changed", detail: "/x → /y" }]);
  assert.deepEqual(compareTrees(m({ tmp: { type: "dir" } }), m({ tmp: { type: "dir" }, "tmp/s": f("h") })), []);
  assert.deepEqual(compareTrees(m({}), m({ proc: { type: "dir" } })), [], "a mount point the unpacker added is not drift");
});

test("verifyRootfs: a fresh root is clean; rewritten, removed and added entries are findings, /tmp is not", async (t) => {
  const dir = await tempDir(t);
  const base = await buildTinyBase(join(dir, "base"));
  await copyFixtureApp(join(dir, "ctx"));
  const store = openStore(join(dir, "store"));
  const r = await bake(recipe(join(dir, "ctx"), base.spec), { store, sourceDateEpoch: 1_700_000_000 });
  const root = await unpackRootfs(store, r.digest);
  assert.deepEqual(await unpackedDigests(store), [r.digest]);
  const clean = await verifyRootfs(store, r.digest);
  assert.deepEqual(clean.findings, []);
  assert.ok(clean.checked > 5, `${clean.checked} entries checked`);

  await chmod(join(root, "etc/motd"), 0o644);
  await appendFile(join(root, "etc/motd"), "patched in place\n");
  await rm(join(root, "bin/hello"));
  await writeFile(join(root, "etc/backdoor"), "x");
  await writeFile(join(root, "tmp/scratch"), "fine: /tmp is the sandbox's");
  await symlink("/etc/passwd", join(root, "etc/link"));
  const drift = await verifyRootfs(store, r.digest);
  assert.deepEqual(
    drift.findings.map((x) => [x.path, x.kind]),
    [
      ["bin/hello", "missing"],
      ["etc/backdoor", "added"],
      ["etc/link", "added"],
      ["etc/motd", "modified"],
    ],
  );
});

test("driftFromChanges (docker diff): the doc comment's rows", () => {
  const c = (Kind: number, Path: string) => ({ Kind, Path });
  assert.deepEqual(driftFromChanges([c(0, "/etc"), c(1, "/etc/x")], []), [{ path: "/etc/x", kind: "added" }]);
  assert.deepEqual(driftFromChanges([c(0, "/data"), c(1, "/data/db")], ["/data"]), []);
  assert.deepEqual(driftFromChanges([c(0, "/tmp"), c(1, "/tmp/sock")], []), []);
  assert.deepEqual(driftFromChanges([c(0, "/var"), c(0, "/var/lib"), c(1, "/var/lib/app/v")], ["/var/lib/app"]), []);
  assert.deepEqual(driftFromChanges([c(2, "/usr/bin/node")], []), [{ path: "/usr/bin/node", kind: "deleted" }]);
  assert.deepEqual(driftFromChanges([c(0, "/etc/passwd"), c(1, "/tmpfile")], []), [{ path: "/etc/passwd", kind: "modified" }, { path: "/tmpfile", kind: "added" }], "/tmpfile is not under /tmp");
});

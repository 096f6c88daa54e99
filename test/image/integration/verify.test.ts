// `kiln verify` as a user runs it: a baked image's unpacked root (what local
// instances run from) is clean (exit 0), then a file rewritten in it is
// reported as drift (exit 1, text and --json); an image never unpacked is bad input (exit 2).

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { appendFile, chmod } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { bake, openStore, unpackRootfs } from "../../../src/image/index.js";
import { KILN_BIN as CLI } from "../../support/kiln-bin.js";
import { buildTinyBase, copyFixtureApp, recipe, tempDir } from "../helpers.js";

test("kiln verify: clean root exit 0, drift exit 1 with the path, unknown root exit 2", async (t) => {
  const dir = await tempDir(t, "kiln-verify-it-");
  const base = await buildTinyBase(join(dir, "base"));
  await copyFixtureApp(join(dir, "ctx"));
  const home = join(dir, "store");
  const store = openStore(home);
  const r = await bake(recipe(join(dir, "ctx"), base.spec), { store, sourceDateEpoch: 1_700_000_000 });
  const kiln = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, KILN_HOME: home }, encoding: "utf8", timeout: 120_000 });

  const never = kiln(["verify", r.digest]);
  assert.equal(never.status, 2, never.stderr);
  assert.match(never.stderr, /has no unpacked root/);

  const root = await unpackRootfs(store, r.digest);
  const ok = kiln(["verify", "--json"]);
  assert.equal(ok.status, 0, ok.stderr);
  const j = JSON.parse(ok.stdout) as { ok: boolean; roots: { digest: string; findings: unknown[] }[] };
  assert.deepEqual([j.ok, j.roots.map((x) => x.digest), j.roots[0]!.findings], [true, [r.digest], []]);

  await chmod(join(root, "etc/motd"), 0o644);
  await appendFile(join(root, "etc/motd"), "edited on the server\n");
  const bad = kiln(["verify"]);
  assert.equal(bad.status, 1, bad.stderr);
  assert.match(bad.stdout, new RegExp(`^DRIFT ${r.digest} \\d+ entries, 1 finding\\n  modified +/etc/motd \\(sha256 `, "m"));
});

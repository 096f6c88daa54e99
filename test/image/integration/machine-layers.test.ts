// The machine's layer cache with the real runtime layer: a second store takes the node runtime
// layer from the cache instead of gzipping it again, and the image is the one a bake without the
// cache makes (same digest).

import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { helloWorkspace, kiln } from "../../integration/support.js";

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const temp = (p: string) => {
  const d = mkdtempSync(join(tmpdir(), p));
  dirs.push(d);
  return d;
};

test("a second store reuses the runtime layer from the machine's cache, and bakes the same image as without it", async () => {
  const ws = await helloWorkspace("kiln-machine-layers-");
  dirs.push(ws.dir);
  const cache = join(temp("kiln-layer-cache-"), "layers");
  const bake = (home: string, layerCache: string) =>
    kiln(["bake"], { cwd: ws.dir, env: { KILN_HOME: home, KILN_LAYER_CACHE: layerCache, SOURCE_DATE_EPOCH: "1700000000" }, timeoutMs: 600_000 });
  const digest = (out: string) => /sha256:[0-9a-f]{64}/.exec(out)?.[0];

  const first = await bake(temp("kiln-ml-a-"), cache);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stderr, /layer base: done in .*built sha256:/, first.stderr);
  assert.equal(readdirSync(cache).filter((n) => n.endsWith(".tar.gz")).length, 1, "the runtime layer is kept for the next store");

  const second = await bake(temp("kiln-ml-b-"), cache);
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stderr, /layer base: checking this machine's layer cache/, second.stderr);
  assert.match(second.stderr, /layer base: done in .*reused sha256:/, second.stderr);

  const without = await bake(temp("kiln-ml-c-"), "off");
  assert.equal(without.code, 0, without.stderr);
  assert.doesNotMatch(without.stderr, /layer cache/);
  assert.ok(digest(first.stdout));
  assert.equal(digest(second.stdout), digest(first.stdout));
  assert.equal(digest(without.stdout), digest(first.stdout));
});

// The "node" base (~100 MB: this machine's Node binary and its libraries) is
// expensive to build, so it is baked in this one file, in one store, and the
// timings the brief asks for are printed here (not asserted: a timing belongs
// in a benchmark).

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { bake, openStore, readImage, unpackRootfs, type BakeResult } from "../../../src/image/index.js";
import { copyFixtureApp, need, recipe, tempDir } from "../helpers.js";
import { freeLoopbackPort } from "../../../src/net.js";

const EPOCH = 1_700_000_000;

async function timed<T>(label: string, timings: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const r = await fn();
  timings[label] = `${((performance.now() - t0) / 1000).toFixed(2)} s`;
  return r;
}

test("node base: cold bake, cached re-bake, app-only change, and the image runs under bubblewrap", async (t) => {
  const dir = await tempDir(t);
  const ctx = join(dir, "ctx");
  await copyFixtureApp(ctx);
  const store = openStore(join(dir, "store"));
  const timings: Record<string, string> = {};

  const cold: BakeResult = await timed("cold bake (node base)", timings, () => bake(recipe(ctx, "node"), { store, sourceDateEpoch: EPOCH }));
  assert.equal(cold.cached, false);
  assert.deepEqual(cold.layers.map((l) => l.role), ["base", "dependencies", "app", "config"]);
  const baseLayer = cold.layers[0]!;
  timings["base layer compressed"] = `${(baseLayer.size / 1e6).toFixed(1)} MB`;

  const warm = await timed("unchanged re-bake", timings, () => bake(recipe(ctx, "node"), { store, sourceDateEpoch: EPOCH }));
  assert.equal(warm.digest, cold.digest);
  assert.equal(warm.cached, true);

  await writeFile(join(ctx, "server.js"), (await readFile(join(ctx, "server.js"), "utf8")) + "// v2\n");
  const v2 = await timed("app-only change re-bake", timings, () => bake(recipe(ctx, "node", { version: "1.0.1" }), { store, sourceDateEpoch: EPOCH }));
  assert.deepEqual(v2.layers.map((l, i) => l.digest === cold.layers[i]!.digest), [true, true, false, true]);

  const { manifest, config } = await readImage(store, cold.digest);
  assert.match(manifest.annotations?.["org.opencontainers.image.base.name"] ?? "", /^kiln\/node:\d+\.\d+\.\d+$/);
  assert.match(manifest.annotations?.["org.opencontainers.image.base.digest"] ?? "", /^sha256:[0-9a-f]{64}$/);
  assert.equal(config.config?.User, "1000:1000");

  const rootfs = await timed("unpack rootfs", timings, () => unpackRootfs(store, v2.digest));
  assert.equal((await stat(join(rootfs, "usr/local/bin/node"))).mode & 0o777, 0o755);
  for (const f of ["etc/passwd", "etc/group", "etc/ssl/certs/ca-certificates.crt"]) {
    if (f.includes("ssl") && !(await stat("/" + f).catch(() => undefined))) continue;
    assert.ok((await stat(join(rootfs, f))).isFile(), f);
  }

  console.log("# node base timings:", JSON.stringify(timings));
  t.diagnostic(JSON.stringify(timings));

  if (!need(t, "bwrap")) return;
  const port = await freeLoopbackPort();
  const child = spawn(
    "bwrap",
    ["--ro-bind", rootfs, "/", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent",
      "--unshare-user", "--uid", "1000", "--gid", "1000", "--setenv", "PORT", String(port), "--chdir", "/app", "/usr/local/bin/node", "/app/server.js"],
    { stdio: ["ignore", "inherit", "inherit"] },
  );
  t.after(() => {
    child.kill("SIGKILL");
  });
  let body = "";
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    try {
      body = await (await fetch(`http://127.0.0.1:${port}/`)).text();
      break;
    } catch {
      if (child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  assert.equal(body, "       hello\n", "the app served from the unpacked image, as uid 1000, read-only root");
});

// Roots composed from layers (src/image/unpack.ts) under real bubblewrap instances:
// two digests that share a base layer run from one copy of its files (same inode),
// an upper layer's whiteouts are what the instance sees, and an instance cannot write
// through a shared link. The base layer is this Node binary and its libraries.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { canonicalBytes, sha256Digest } from "../../../src/image/digest.js";
import { openStore, unpackRootfs, type Store } from "../../../src/image/index.js";
import { layersRoot } from "../../../src/image/unpack.js";
import { MEDIA_TYPE, type OciImageConfig } from "../../../src/image/types.js";
import { LocalProvider, type ImageRunConfig } from "../../../src/providers/local/index.js";
import type { ObservedInstance } from "../../../src/providers/provider.js";
import { rawTar, type RawEntry } from "../../image/helpers.js";
import { APP_GID, APP_UID, buildTestRootfs } from "../local-fixtures.js";

const haveBwrap = spawnSync("bwrap", ["--version"]).status === 0;
const skip = haveBwrap ? undefined : "needs bubblewrap (apt-get install bubblewrap)";
if (skip && process.env.KILN_REQUIRE_ALL === "1") throw new Error(`KILN_REQUIRE_ALL=1 but this test ${skip}`);
if (skip) console.log(`# skipping: ${skip}`);

// Reports what the instance sees of the layers and whether it can write to a shared file.
const PROBE = (version: string) => `
import http from "node:http";
import fs from "node:fs";
function tryOpen(p) { try { fs.closeSync(fs.openSync(p, "r+")); return "ok"; } catch (e) { return e.code; } }
function exists(p) { try { fs.lstatSync(p); return true; } catch { return false; } }
http.createServer((req, res) => res.end(JSON.stringify({
  version: ${JSON.stringify(version)},
  gone: exists("/etc/gone.conf"),
  confd: fs.readdirSync("/etc/conf.d").sort(),
  data: fs.statSync("/var/data").isDirectory() ? "dir" : fs.readFileSync("/var/data", "utf8"),
  whiteoutFiles: fs.readdirSync("/etc").filter((n) => n.startsWith(".wh.")),
  writeNode: tryOpen("/usr/local/bin/node"),
  writeBase: tryOpen("/etc/passwd"),
}))).listen(Number(process.env.PORT), "127.0.0.1");
process.on("SIGTERM", () => process.exit(0));
`;

const CONFIG: ImageRunConfig = {
  env: ["PATH=/usr/local/bin:/usr/bin:/bin"],
  entrypoint: ["/usr/local/bin/node"],
  cmd: ["/app/layers.mjs"],
  user: `${APP_UID}:${APP_GID}`,
  workdir: "/app",
};

let dir = "";
let store: Store;
let provider: LocalProvider;
const launched: string[] = [];

async function putLayer(tarBytes: Buffer): Promise<{ descriptor: { mediaType: string; digest: string; size: number }; diffId: string }> {
  const b = await store.putBlob(tarBytes);
  return { descriptor: { mediaType: MEDIA_TYPE.layerTar, ...b }, diffId: sha256Digest(tarBytes) };
}

async function image(layers: Array<{ descriptor: { mediaType: string; digest: string; size: number }; diffId: string }>): Promise<string> {
  const config: OciImageConfig = { architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) } };
  const c = await store.putBlob(canonicalBytes(config));
  const m = await store.putBlob(canonicalBytes({ schemaVersion: 2, mediaType: MEDIA_TYPE.manifest, config: { mediaType: MEDIA_TYPE.config, ...c }, layers: layers.map((l) => l.descriptor) }));
  return m.digest;
}

function get(address: string): Promise<string> {
  const [host, port] = address.split(":");
  return new Promise((resolve, reject) => {
    const r = request({ host, port: Number(port), path: "/", agent: false, timeout: 2000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve(body));
    });
    r.on("timeout", () => r.destroy(new Error("timeout")));
    r.on("error", reject);
    r.end();
  });
}

async function probe(inst: ObservedInstance): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      return JSON.parse(await get(inst.address)) as Record<string, unknown>;
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`instance ${inst.id} never served: ${String(e)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

before(() => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), "kiln-layers-test-"));
  store = openStore(join(dir, "home"));
  provider = new LocalProvider({ home: join(dir, "home"), sandbox: "bwrap", rootfs: (d) => unpackRootfs(store, d), imageConfig: async () => CONFIG, log: () => undefined });
});

after(async () => {
  for (const id of launched) await provider.terminate(id, { graceMs: 0 }).catch(() => undefined);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("two digests sharing a base layer run from one copy of it; whiteouts hold; no write through a shared link", { skip }, async () => {
  const baseDir = join(dir, "base-tree");
  mkdirSync(baseDir);
  buildTestRootfs(baseDir);
  mkdirSync(join(baseDir, "etc/conf.d"), { recursive: true });
  writeFileSync(join(baseDir, "etc/gone.conf"), "deleted by v2");
  writeFileSync(join(baseDir, "etc/conf.d/a"), "a");
  writeFileSync(join(baseDir, "etc/conf.d/b"), "b");
  mkdirSync(join(baseDir, "var/data"), { recursive: true });
  writeFileSync(join(baseDir, "var/data/x"), "x");
  // The base layer as an image tool would write it: sorted, owned by root.
  const baseTar = execFileSync("tar", ["--sort=name", "--owner=0", "--group=0", "--numeric-owner", "-C", baseDir, "-cf", "-", "."], { maxBuffer: 1 << 30 });
  const base = await putLayer(baseTar);
  const app = (version: string, extra: RawEntry[] = []) => rawTar([{ name: "app/", type: "directory" }, { name: "app/layers.mjs", body: PROBE(version) }, ...extra]);
  const v1 = await image([base, await putLayer(await app("v1"))]);
  const v2 = await image([
    base,
    await putLayer(
      await app("v2", [
        { name: "etc/", type: "directory" },
        { name: "etc/.wh.gone.conf" },
        { name: "etc/conf.d/", type: "directory" },
        { name: "etc/conf.d/.wh..wh..opq" },
        { name: "etc/conf.d/c", body: "c" },
        { name: "var/", type: "directory" },
        { name: "var/.wh.data" },
        { name: "var/data", body: "a file now" },
      ]),
    ),
  ]);

  const req = (id: string, digest: string) => ({ instanceId: id, service: "layers", release: id, digest, env: {}, volumes: [] });
  launched.push("layers-v1");
  const i1 = await provider.launch(req("layers-v1", v1));
  launched.push("layers-v2");
  const i2 = await provider.launch(req("layers-v2", v2));
  const p1 = await probe(i1);
  const p2 = await probe(i2);

  assert.equal(p1.version, "v1");
  assert.equal(p1.gone, true);
  assert.deepEqual(p1.confd, ["a", "b"]);
  assert.equal(p1.data, "dir");
  assert.equal(p2.version, "v2");
  assert.equal(p2.gone, false, "the whiteout deleted the base's file");
  assert.deepEqual(p2.confd, ["c"], "the opaque directory hid the base's entries");
  assert.equal(p2.data, "a file now", "a directory replaced by a file");
  for (const p of [p1, p2]) {
    assert.deepEqual(p.whiteoutFiles, []);
    assert.notEqual(p.writeNode, "ok", `the shared node binary is not writable from the instance (${String(p.writeNode)})`);
    assert.notEqual(p.writeBase, "ok", `a shared base file is not writable from the instance (${String(p.writeBase)})`);
  }

  // On the host: one inode for the base's files in both roots and in the layer directory.
  const r1 = await unpackRootfs(store, v1);
  const r2 = await unpackRootfs(store, v2);
  const n1 = statSync(join(r1, "usr/local/bin/node"));
  const n2 = statSync(join(r2, "usr/local/bin/node"));
  const inLayer = statSync(join(layersRoot(store), base.diffId.slice(7), "usr/local/bin/node"));
  assert.equal(n1.ino, n2.ino);
  assert.equal(n1.ino, inLayer.ino);
  assert.equal(n1.mode & 0o7777, 0o755);
  if (process.getuid?.() === 0) assert.equal(n1.uid, 0);
  assert.deepEqual(readFileSync(join(r1, "usr/local/bin/node")).subarray(0, 4), readFileSync(process.execPath).subarray(0, 4));
  assert.equal(readdirSync(layersRoot(store)).filter((n) => /^[0-9a-f]{64}$/.test(n)).length, 3, "the base layer once, two app layers");
});

import assert from "node:assert/strict";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { gunzipSync } from "node:zlib";
import { KilnError } from "../../../src/errors.js";
import { sha256Digest } from "../../../src/image/digest.js";
import { bake, exportImage, openStore, readImage } from "../../../src/image/index.js";
import { buildTinyBase, copyFixtureApp, execFileP, need, recipe, tempDir } from "../helpers.js";

async function bakedFixture(dir: string) {
  const base = await buildTinyBase(join(dir, "base"));
  const ctx = join(dir, "ctx");
  await copyFixtureApp(ctx);
  const store = openStore(join(dir, "store"));
  const r = await bake(recipe(ctx, base.spec), { store, sourceDateEpoch: 1_700_000_000 });
  return { store, r };
}

test("oci export: an OCI layout in a tar, tagged, byte-identical on every export", async (t) => {
  const dir = await tempDir(t);
  const { store, r } = await bakedFixture(dir);
  const out = join(dir, "out/fixture.oci.tar");
  const res = await exportImage(store, "fixture:1.0.0", "oci", out);
  assert.deepEqual({ ...res, size: 0 }, { ref: "fixture:1.0.0", digest: r.digest, format: "oci", outFile: out, size: 0 });
  const again = join(dir, "out/again.tar");
  await exportImage(store, r.digest.slice(0, 19), "oci", again);
  assert.ok((await readFile(out)).equals(await readFile(again)), "deterministic archive");

  const x = join(dir, "x");
  await mkdir(x);
  await execFileP("tar", ["xf", out, "-C", x]);
  const index = JSON.parse(await readFile(join(x, "index.json"), "utf8"));
  assert.equal(index.manifests.length, 1);
  assert.equal(index.manifests[0].digest, r.digest);
  assert.equal(index.manifests[0].annotations["org.opencontainers.image.ref.name"], "fixture:1.0.0");
  const blobs = await readdir(join(x, "blobs/sha256"));
  assert.equal(blobs.length, 1 + 1 + r.layers.length);
  for (const b of blobs) assert.equal(sha256Digest(await readFile(join(x, "blobs/sha256", b))), `sha256:${b}`);
  assert.deepEqual(await readdir(join(dir, "out")), ["again.tar", "fixture.oci.tar"], "no temp files left");
});

test("docker-archive export: manifest.json, config, uncompressed layers named by diff_id", async (t) => {
  const dir = await tempDir(t);
  const { store, r } = await bakedFixture(dir);
  const out = join(dir, "fixture.docker.tar");
  await exportImage(store, "fixture:1.0.0", "docker-archive", out);
  const x = join(dir, "x");
  await mkdir(x);
  await execFileP("tar", ["xf", out, "-C", x]);
  const [m] = JSON.parse(await readFile(join(x, "manifest.json"), "utf8"));
  assert.deepEqual(m.RepoTags, ["fixture:1.0.0"]);
  assert.equal(m.Config, `${r.configDigest.slice(7)}.json`);
  assert.deepEqual(m.Layers, r.layers.map((l) => `${l.diffId.slice(7)}.tar`));
  for (const l of r.layers) assert.equal(sha256Digest(await readFile(join(x, `${l.diffId.slice(7)}.tar`))), l.diffId);
  assert.equal(sha256Digest(await readFile(join(x, m.Config))), r.configDigest);
  const repos = JSON.parse(await readFile(join(x, "repositories"), "utf8"));
  assert.deepEqual(Object.keys(repos), ["fixture"]);
});

test("skopeo accepts the store and both export formats", async (t) => {
  if (!need(t, "skopeo")) return;
  const dir = await tempDir(t);
  const { store, r } = await bakedFixture(dir);
  const oci = join(dir, "f.oci.tar");
  const docker = join(dir, "f.docker.tar");
  await exportImage(store, "fixture:1.0.0", "oci", oci);
  await exportImage(store, "fixture:1.0.0", "docker-archive", docker);
  const inspect = async (ref: string, config = false) => JSON.parse((await execFileP("skopeo", ["inspect", ...(config ? ["--config"] : []), ref], { maxBuffer: 16 << 20 })).stdout);

  assert.equal((await inspect(`oci:${store.root}:fixture:1.0.0`)).Digest, r.digest);
  assert.equal((await inspect(`oci-archive:${oci}`)).Digest, r.digest);
  assert.equal((await inspect(`oci-archive:${oci}:fixture:1.0.0`)).Digest, r.digest);
  const d = await inspect(`docker-archive:${docker}`);
  assert.deepEqual(d.Layers, r.layers.map((l) => l.diffId), "docker-archive layers are the uncompressed tars");
  assert.equal((await inspect(`docker-archive:${docker}:fixture:1.0.0`)).Architecture, "amd64");
  const cfg = await inspect(`docker-archive:${docker}`, true);
  assert.deepEqual(cfg.config.Entrypoint, ["/usr/local/bin/node"]);

  // A copy through skopeo back into an OCI layout keeps the manifest digest (nothing to convert).
  const copied = join(dir, "copied");
  await execFileP("skopeo", ["copy", `oci-archive:${oci}`, `oci:${copied}:fixture:1.0.0`]);
  assert.equal((await inspect(`oci:${copied}:fixture:1.0.0`)).Digest, r.digest);
});

test("umoci unpacks an image from the store", async (t) => {
  if (!need(t, "umoci")) return;
  if (process.getuid?.() !== 0) {
    t.skip("umoci unpack without --rootless needs root");
    return;
  }
  const dir = await tempDir(t);
  const { store } = await bakedFixture(dir);
  const bundle = join(dir, "bundle");
  await execFileP("umoci", ["unpack", "--image", `${store.root}:fixture:1.0.0`, bundle]);
  assert.equal(await readFile(join(bundle, "rootfs/etc/app/app.json"), "utf8"), '{ "greeting": "hello" }\n');
  assert.equal(await readFile(join(bundle, "rootfs/etc/motd"), "utf8"), "tiny\n");
});

test("export verifies blobs and leaves no partial file", async (t) => {
  const dir = await tempDir(t);
  const { store, r } = await bakedFixture(dir);
  const { manifest } = await readImage(store, r.digest);
  const app = manifest.layers[3]!;
  const bytes = gunzipSync(await readFile(store.blobPath(app.digest)));
  bytes[600] ^= 0xff;
  const { gzipSync } = await import("node:zlib");
  await writeFile(store.blobPath(app.digest), gzipSync(bytes));
  for (const format of ["oci", "docker-archive"] as const) {
    const out = join(dir, `bad-${format}.tar`);
    await assert.rejects(exportImage(store, "fixture:1.0.0", format, out), (e) => e instanceof KilnError && e.code === "KILN_E_UNSAFE", format);
    assert.ok(!(await readdir(dir)).some((f) => f.startsWith(`bad-${format}`)), "no output file");
  }
  await assert.rejects(exportImage(store, "nope:1", "oci", join(dir, "x.tar")), (e) => e instanceof KilnError && e.code === "KILN_E_NOT_FOUND");
});

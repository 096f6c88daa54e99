import assert from "node:assert/strict";
import { chmod, lstat, lutimes, readdir, readFile, readlink, rm, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Gunzip } from "fflate";
import { describe, test } from "node:test";
import { KilnError } from "../../src/errors.js";
import { bake, exportImage, listImages, openStore, readImage, resolveCreatedEpoch, resolveRef, unpackRootfs, type ProgressEvent } from "../../src/image/index.js";
import { checkImageLayers } from "../../src/image/layer-check.js";
import { parseRegistryRef, pushImage } from "../../src/image/registry/index.js";
import { buildTinyBase, copyFixtureApp, execFileP, recipe, tempDir } from "./helpers.js";

const EPOCH = 1_700_000_000;

function code(e: unknown): string | undefined {
  return e instanceof KilnError ? e.code : undefined;
}

async function walkFiles(dir: string, out: string[] = []): Promise<string[]> {
  for (const name of await readdir(dir)) {
    const p = join(dir, name);
    const st = await lstat(p);
    if (st.isDirectory()) await walkFiles(p, out);
    else out.push(p);
  }
  return out;
}

test("two bakes in two stores give the same digest, whatever the files' mtimes and modes", async (t) => {
  const dir = await tempDir(t);
  const baseA = await buildTinyBase(join(dir, "baseA"));
  const baseB = await buildTinyBase(join(dir, "baseB"));
  assert.equal(baseA.digest, baseB.digest, "the tiny base itself is reproducible");

  await copyFixtureApp(join(dir, "ctxA"));
  await copyFixtureApp(join(dir, "ctxB"));
  // Disturb everything host-specific in B: mtimes, group-write bits (a different umask).
  let i = 0;
  for (const f of await walkFiles(join(dir, "ctxB"))) {
    const st = await lstat(f);
    if (st.isSymbolicLink()) continue;
    await chmod(f, st.mode & 0o111 ? 0o775 : 0o664);
    await utimes(f, 1_000_000 + i, 2_000_000 + i++);
  }

  const storeA = openStore(join(dir, "storeA"));
  const storeB = openStore(join(dir, "storeB"));
  const a = await bake(recipe(join(dir, "ctxA"), baseA.spec), { store: storeA, sourceDateEpoch: EPOCH });
  const b = await bake(recipe(join(dir, "ctxB"), baseB.spec), { store: storeB, sourceDateEpoch: EPOCH });
  assert.equal(a.digest, b.digest);
  assert.equal(a.configDigest, b.configDigest);
  assert.deepEqual(a.layers, b.layers);
  assert.deepEqual(a.layers.map((l) => l.role), ["base", "base", "dependencies", "app", "config"]);
  assert.equal(a.ref, "fixture:1.0.0");
  assert.equal(a.created, "2023-11-14T22:13:20Z");
  assert.equal(a.timestampedName, "fixture-1.0.0-20231114221320");
  assert.equal(a.cached, false);
  // Both stores' blobs are byte-identical too.
  assert.deepEqual((await readdir(join(storeA.root, "blobs/sha256"))).sort(), (await readdir(join(storeB.root, "blobs/sha256"))).sort());
});

describe("re-bakes", () => {
  test("unchanged inputs are fully cached; an app-only change rebuilds only the app layer", async (t) => {
    const dir = await tempDir(t);
    const base = await buildTinyBase(join(dir, "base"));
    const ctx = join(dir, "ctx");
    await copyFixtureApp(ctx);
    const store = openStore(join(dir, "store"));
    const first = await bake(recipe(ctx, base.spec), { store, sourceDateEpoch: EPOCH });

    const events: ProgressEvent[] = [];
    const again = await bake(recipe(ctx, base.spec), { store, sourceDateEpoch: EPOCH, onProgress: (e) => events.push(e) });
    assert.equal(again.digest, first.digest);
    assert.equal(again.cached, true);
    assert.equal(first.unchanged, false, "a first bake is never 'unchanged'");
    assert.equal(again.unchanged, true, "the same tag and inputs again: unchanged");
    assert.ok(!events.some((e) => e.step === "start" && e.phase.startsWith("layer ")));

    await writeFile(join(ctx, "server.js"), "console.log('v2');\n");
    const built: string[] = [];
    const v2 = await bake(recipe(ctx, base.spec, { version: "1.0.1" }), {
      store,
      sourceDateEpoch: EPOCH,
      onProgress: (e) => {
        if (e.step === "start" && e.phase.startsWith("layer ")) built.push(e.phase.slice("layer ".length));
      },
    });
    assert.deepEqual(built, ["app"]);
    assert.equal(v2.cached, false);
    const changed = v2.layers.map((l, i) => (l.digest === first.layers[i]!.digest ? "same" : l.role));
    assert.deepEqual(changed, ["same", "same", "same", "app", "same"]);
    assert.notEqual(v2.digest, first.digest);

    // A new version with nothing else changed reuses every layer, but it is a new image, not "unchanged".
    const v3 = await bake(recipe(ctx, base.spec, { version: "1.0.2" }), { store, sourceDateEpoch: EPOCH });
    assert.equal(v3.cached, true);
    assert.equal(v3.unchanged, false);
  });

  test("baking a different image under an existing tag is refused before the tag moves", async (t) => {
    const dir = await tempDir(t);
    const base = await buildTinyBase(join(dir, "base"));
    const ctx = join(dir, "ctx");
    await copyFixtureApp(ctx);
    const store = openStore(join(dir, "store"));
    const first = await bake(recipe(ctx, base.spec), { store, sourceDateEpoch: EPOCH });
    await writeFile(join(ctx, "config/app.json"), '{"greeting":"changed"}');
    const events: ProgressEvent[] = [];
    await assert.rejects(bake(recipe(ctx, base.spec), { store, sourceDateEpoch: EPOCH, onProgress: (e) => events.push(e) }), (e) => {
      assert.equal(code(e), "KILN_E_TAG_IMMUTABLE");
      assert.match((e as KilnError).message, /tag fixture:1\.0\.0 already points to sha256:/);
      assert.match((e as KilnError).hint ?? "", /bump the version/);
      return true;
    });
    // Refused before the bake's work: no layer written, nothing composed.
    assert.deepEqual(events.filter((e) => e.phase === "layer" || e.phase === "config" || e.phase === "tag"), []);
    // An env change (no file changed) is refused early too.
    await writeFile(join(ctx, "config/app.json"), '{ "greeting": "hello" }\n');
    await assert.rejects(bake(recipe(ctx, base.spec, { env: { NODE_ENV: "production", GREETING: "hello" } }), { store, sourceDateEpoch: EPOCH }), (e) => code(e) === "KILN_E_TAG_IMMUTABLE");
    assert.equal(await resolveRef(store, "fixture:1.0.0"), first.digest);
    // a changed created time is a different image, too
    await writeFile(join(ctx, "config/app.json"), '{ "greeting": "hello" }\n');
    await assert.rejects(bake(recipe(ctx, base.spec), { store, sourceDateEpoch: EPOCH + 1 }), (e) => code(e) === "KILN_E_TAG_IMMUTABLE");
    // A tag with no recorded inputs (tagged by an older kiln) is still refused, when it is written.
    await rm(join(store.root, "cache/bake-inputs"), { recursive: true, force: true });
    await assert.rejects(bake(recipe(ctx, base.spec), { store, sourceDateEpoch: EPOCH + 2 }), (e) => code(e) === "KILN_E_TAG_IMMUTABLE" && /, not sha256:/.test((e as KilnError).message));
    assert.equal(await resolveRef(store, "fixture:1.0.0"), first.digest);
  });
});

test("the image config and manifest carry the recipe, the base and the annotations", async (t) => {
  const dir = await tempDir(t);
  const base = await buildTinyBase(join(dir, "base"));
  const ctx = join(dir, "ctx");
  await copyFixtureApp(ctx);
  const store = openStore(join(dir, "store"));
  const r = await bake(recipe(ctx, base.spec, { revision: "0123abcd", config: [] }), { store, sourceDateEpoch: EPOCH });
  assert.deepEqual(r.layers.map((l) => l.role), ["base", "base", "dependencies", "app"], "empty config role has no layer");
  const { manifest, config } = await readImage(store, r.digest);
  assert.equal(manifest.mediaType, "application/vnd.oci.image.manifest.v1+json");
  assert.deepEqual(manifest.annotations, {
    "dev.kiln.timestamped-name": "fixture-1.0.0-20231114221320",
    "org.opencontainers.image.base.digest": base.digest,
    "org.opencontainers.image.base.name": "tiny:1",
    "org.opencontainers.image.created": "2023-11-14T22:13:20Z",
    "org.opencontainers.image.ref.name": "fixture:1.0.0",
    "org.opencontainers.image.revision": "0123abcd",
    "org.opencontainers.image.title": "fixture",
    "org.opencontainers.image.version": "1.0.0",
  });
  assert.equal(manifest.config.digest, r.configDigest);
  assert.deepEqual(config.config, {
    User: "1000:1000",
    ExposedPorts: { "8080/tcp": {} },
    Env: ["PATH=/bin:/usr/bin", "BASE_VAR=1", "GREETING=hi", "KILN_IMAGE_VERSION=1.0.0", "NODE_ENV=production"],
    Entrypoint: ["/usr/local/bin/node"],
    Cmd: ["/app/server.js"],
    WorkingDir: "/app",
    Labels: { "base.label": "x", team: "platform" },
  });
  assert.equal(config.rootfs.diff_ids.length, manifest.layers.length);
  assert.deepEqual(config.history?.map((h) => h.created_by), ["tiny 1", "tiny 2", "kiln bake: dependencies layer", "kiln bake: app layer"]);
  // The stored bytes are canonical JSON (no whitespace, sorted keys).
  const raw = (await readFile(store.blobPath(r.digest), "utf8"));
  assert.ok(!raw.includes("\n") && raw.startsWith('{"annotations":'));
});

test("the baked files land where the recipe says, with normalized modes", async (t) => {
  const dir = await tempDir(t);
  const base = await buildTinyBase(join(dir, "base"));
  const ctx = join(dir, "ctx");
  await copyFixtureApp(ctx);
  const store = openStore(join(dir, "store"));
  const r = await bake(recipe(ctx, base.spec), { store, sourceDateEpoch: EPOCH });
  const root = await unpackRootfs(store, r.digest);
  assert.equal(await readFile(join(root, "app/node_modules/left-pad/package.json"), "utf8"), await readFile(join(ctx, "deps/left-pad/package.json"), "utf8"));
  assert.equal((await stat(join(root, "app/bin/start.sh"))).mode & 0o777, 0o755);
  assert.equal((await stat(join(root, "app/server.js"))).mode & 0o777, 0o644);
  assert.equal(await readlink(join(root, "app/lib/main.js")), "../server.js");
  assert.equal(await readFile(join(root, "etc/app/app.json"), "utf8"), await readFile(join(ctx, "config/app.json"), "utf8"));
  assert.equal(await readFile(join(root, "etc/motd"), "utf8"), "tiny\n", "base layers applied");
  assert.ok((await stat(join(root, "app/package.json"))).isFile(), 'dest ending in "/" copies into the directory');
});

test("a layer of several gzip members (threads 1 and 3, one digest) passes kiln's layer check and unpacks whole", async (t) => {
  const dir = await tempDir(t);
  const base = await buildTinyBase(join(dir, "base"));
  const ctx = join(dir, "ctx");
  await copyFixtureApp(ctx);
  // 2.5 MiB of dependencies: a layer of three 1 MiB gzip members.
  const blob = Buffer.alloc(Math.floor(2.5 * 1024 * 1024));
  for (let i = 0; i < blob.length; i++) blob[i] = (i * 2654435761) >>> 26;
  await writeFile(join(ctx, "deps/blob.bin"), blob);
  const one = await bake(recipe(ctx, base.spec), { store: openStore(join(dir, "s1")), sourceDateEpoch: EPOCH, threads: 1 });
  const store = openStore(join(dir, "s3"));
  const three = await bake(recipe(ctx, base.spec), { store, sourceDateEpoch: EPOCH, threads: 3 });
  assert.equal(three.digest, one.digest);
  assert.deepEqual([one.threads, three.threads], [1, 3]);
  const deps = three.layers.find((l) => l.role === "dependencies")!;
  let members = 1; // onmember is heard where each further member starts
  const gunzip = new Gunzip(() => undefined);
  gunzip.onmember = () => members++;
  gunzip.push(await readFile(store.blobPath(deps.digest)), true);
  assert.equal(members, 3, "2.5 MiB of tar and more: three members");
  await checkImageLayers(store, three.layers.map((l) => ({ descriptor: { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: l.digest, size: l.size }, diffId: l.diffId })), "test");
  const root = await unpackRootfs(store, three.digest);
  assert.ok((await readFile(join(root, "app/node_modules/blob.bin"))).equals(blob));
});

test("compression none: kiln's layers are plain tars; the image unpacks and exports, push is refused, and a tag never changes form", async (t) => {
  const dir = await tempDir(t);
  const base = await buildTinyBase(join(dir, "base"));
  const ctx = join(dir, "ctx");
  await copyFixtureApp(ctx);
  const store = openStore(join(dir, "store"));
  const plain = await bake(recipe(ctx, base.spec, { compression: "none" }), { store, sourceDateEpoch: EPOCH });
  const gz = await bake(recipe(ctx, base.spec), { store: openStore(join(dir, "store-gz")), sourceDateEpoch: EPOCH });
  const { manifest, config } = await readImage(store, plain.digest);
  assert.deepEqual(
    manifest.layers.map((l) => l.mediaType),
    [...Array(2).fill("application/vnd.oci.image.layer.v1.tar+gzip"), ...Array(3).fill("application/vnd.oci.image.layer.v1.tar")],
    "the imported base keeps its gzip layers; the three layers kiln writes are tars",
  );
  manifest.layers.slice(2).forEach((l, i) => assert.equal(l.digest, config.rootfs.diff_ids[i + 2], "a tar layer's digest is its diff_id"));
  assert.notEqual(plain.digest, gz.digest, "another form, another image");
  assert.equal(plain.configDigest, gz.configDigest, "the same content: the config (diff_ids) is the same");

  const root = await unpackRootfs(store, plain.digest);
  assert.equal(await readFile(join(root, "etc/app/app.json"), "utf8"), await readFile(join(ctx, "config/app.json"), "utf8"));
  assert.equal(await readFile(join(root, "etc/motd"), "utf8"), "tiny\n");
  for (const format of ["oci", "docker-archive"] as const) {
    const r = await exportImage(store, plain.ref, format, join(dir, `out.${format}.tar`));
    assert.ok(r.size > 0);
  }

  await assert.rejects(pushImage(store, plain.ref, parseRegistryRef("127.0.0.1:9/kiln/fixture")), (e) => code(e) === "KILN_E_USAGE" && /3 uncompressed layers/.test((e as Error).message) && /image\.compression/.test((e as KilnError).hint ?? ""));
  await assert.rejects(bake(recipe(ctx, base.spec), { store, sourceDateEpoch: EPOCH }), (e) => code(e) === "KILN_E_TAG_IMMUTABLE", "gzip under the same version is another image");
});

describe("created time", () => {
  test("option, then SOURCE_DATE_EPOCH, then git commit time, then 0", async (t) => {
    const dir = await tempDir(t);
    assert.deepEqual(await resolveCreatedEpoch(dir, 5, { SOURCE_DATE_EPOCH: "7" }), { epoch: 5, source: "option" });
    assert.deepEqual(await resolveCreatedEpoch(dir, undefined, { SOURCE_DATE_EPOCH: "7" }), { epoch: 7, source: "SOURCE_DATE_EPOCH" });
    assert.deepEqual(await resolveCreatedEpoch(dir, undefined, {}), { epoch: 0, source: "default" });
    assert.deepEqual(await resolveCreatedEpoch(dir, undefined, { SOURCE_DATE_EPOCH: "" }, 1_750_000_000), { epoch: 1_750_000_000, source: "mtime" });
    await assert.rejects(resolveCreatedEpoch(dir, undefined, { SOURCE_DATE_EPOCH: "yesterday" }), (e) => code(e) === "KILN_E_IMAGE");
    await assert.rejects(resolveCreatedEpoch(dir, -1, {}), (e) => code(e) === "KILN_E_IMAGE");

    const env = { ...process.env, GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@example.invalid", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@example.invalid", GIT_COMMITTER_DATE: "@1600000000 +0000", GIT_AUTHOR_DATE: "@1600000000 +0000" };
    try {
      await execFileP("git", ["init", "-q", dir], { env });
      await writeFile(join(dir, "f"), "x");
      await execFileP("git", ["-C", dir, "add", "f"], { env });
      await execFileP("git", ["-C", dir, "-c", "commit.gpgsign=false", "commit", "-q", "-m", "x"], { env });
    } catch (e) {
      t.diagnostic(`git unavailable, skipping the git case: ${(e as Error).message}`);
      return;
    }
    assert.deepEqual(await resolveCreatedEpoch(dir, undefined, {}), { epoch: 1_600_000_000, source: "git" });
    assert.deepEqual(await resolveCreatedEpoch(dir, undefined, {}, 1_750_000_000), { epoch: 1_600_000_000, source: "git" }, "a commit time wins over mtimes");
  });

  test("outside git and without SOURCE_DATE_EPOCH, an image is dated by its newest input file (not 1970), reproducibly", async (t) => {
    const dir = await tempDir(t);
    const base = await buildTinyBase(join(dir, "base"));
    const stamp = async (ctx: string, newest: number) => {
      let i = 0;
      // lutimes: a symlink is an input too, with its own mtime
      for (const f of await walkFiles(ctx)) await lutimes(f, 1_000, 1_700_000_000 + i++);
      await utimes(join(ctx, "config/app.json"), 1_000, newest);
    };
    await copyFixtureApp(join(dir, "ctxA"));
    await copyFixtureApp(join(dir, "ctxB"));
    await stamp(join(dir, "ctxA"), 1_750_000_000.7);
    await stamp(join(dir, "ctxB"), 1_750_000_000.2);
    const events: ProgressEvent[] = [];
    const a = await bake(recipe(join(dir, "ctxA"), base.spec), { store: openStore(join(dir, "storeA")), env: {}, onProgress: (e) => events.push(e) });
    const b = await bake(recipe(join(dir, "ctxB"), base.spec), { store: openStore(join(dir, "storeB")), env: {} });
    assert.equal(a.created, "2025-06-15T15:06:40Z");
    assert.equal(a.timestampedName, "fixture-1.0.0-20250615150640");
    assert.ok(events.some((e) => e.phase === "created" && e.detail === "2025-06-15T15:06:40Z (from mtime)"), JSON.stringify(events));
    assert.equal(a.digest, b.digest, "same inputs, same (whole-second) mtimes: same digest");

    // A newer input file is a newer image.
    await utimes(join(dir, "ctxB/server.js"), 1_000, 1_760_000_000);
    const c = await bake(recipe(join(dir, "ctxB"), base.spec, { version: "1.0.1" }), { store: openStore(join(dir, "storeB")), env: {} });
    assert.equal(c.created, "2025-10-09T08:53:20Z");
  });
});

describe("bases from files", () => {
  test("an oci-archive and a docker-archive of an image work as bases", async (t) => {
    const dir = await tempDir(t);
    const base = await buildTinyBase(join(dir, "base"));
    await exportImage(base.store, "tiny:1", "oci", join(dir, "ctx/tiny.oci.tar"));
    await exportImage(base.store, "tiny:1", "docker-archive", join(dir, "ctx/tiny.docker.tar"));
    const ctx = join(dir, "ctx");
    await copyFixtureApp(ctx);

    const viaLayout = await bake(recipe(ctx, base.spec), { store: openStore(join(dir, "s0")), sourceDateEpoch: EPOCH });
    const store = openStore(join(dir, "s1"));
    // relative paths are resolved from the context directory
    const viaOci = await bake(recipe(ctx, "oci:tiny.oci.tar"), { store, sourceDateEpoch: EPOCH });
    assert.equal(viaOci.digest, viaLayout.digest, "same base, same image");

    const viaDocker = await bake(recipe(ctx, "docker-archive:tiny.docker.tar", { version: "2" }), { store, sourceDateEpoch: EPOCH });
    // docker save stores layers uncompressed; kiln recompresses them with the same pinned gzip
    assert.deepEqual(viaDocker.layers, viaOci.layers);
    const { manifest } = await readImage(store, viaDocker.digest);
    assert.equal(manifest.annotations?.["org.opencontainers.image.base.name"], "tiny:1");
    const { manifest: tinyManifest } = await readImage(base.store, base.digest);
    assert.equal(manifest.annotations?.["org.opencontainers.image.base.digest"], tinyManifest.config.digest, "docker-archive base digest is the image id");

    const again = await bake(recipe(ctx, "docker-archive:tiny.docker.tar", { version: "2" }), { store, sourceDateEpoch: EPOCH });
    assert.equal(again.cached, true);

    // With compression none, docker save's tar layers are kept as they are: every layer a tar, digest = diff_id.
    const plain = await bake(recipe(ctx, "docker-archive:tiny.docker.tar", { version: "3", compression: "none" }), { store, sourceDateEpoch: EPOCH });
    assert.deepEqual(plain.layers.map((l) => l.digest), plain.layers.map((l) => l.diffId));
    assert.deepEqual(plain.layers.map((l) => l.diffId), viaDocker.layers.map((l) => l.diffId));
    assert.ok((await readImage(store, plain.digest)).manifest.layers.every((l) => l.mediaType === "application/vnd.oci.image.layer.v1.tar"));

    await assert.rejects(bake(recipe(ctx, "oci:missing-dir"), { store }), (e) => code(e) === "KILN_E_IMAGE");
    await assert.rejects(bake(recipe(ctx, `oci:${join(dir, "base")}:nope:1`), { store }), (e) => code(e) === "KILN_E_IMAGE" && /tiny:1/.test((e as KilnError).hint ?? ""));
    await assert.rejects(bake(recipe(ctx, "debian:12"), { store }), (e) => code(e) === "KILN_E_IMAGE");
  });

  test("a corrupt base blob is refused", async (t) => {
    const dir = await tempDir(t);
    const base = await buildTinyBase(join(dir, "base"));
    const { manifest } = await readImage(base.store, base.digest);
    const victim = base.store.blobPath(manifest.layers[0]!.digest);
    const bytes = await readFile(victim);
    bytes[bytes.length - 5] ^= 0xff;
    await writeFile(victim, bytes);
    const ctx = join(dir, "ctx");
    await copyFixtureApp(ctx);
    await assert.rejects(bake(recipe(ctx, base.spec), { store: openStore(join(dir, "s")), sourceDateEpoch: EPOCH }), (e) => code(e) === "KILN_E_UNSAFE");
  });
});

describe("list / resolve / read", () => {
  test("listImages, resolveRef forms and not-found hints", async (t) => {
    const dir = await tempDir(t);
    const base = await buildTinyBase(join(dir, "base"));
    const ctx = join(dir, "ctx");
    await copyFixtureApp(ctx);
    const store = openStore(join(dir, "store"));
    const a = await bake(recipe(ctx, base.spec), { store, sourceDateEpoch: EPOCH });
    await writeFile(join(ctx, "server.js"), "// v2\n");
    const b = await bake(recipe(ctx, base.spec, { version: "1.1.0" }), { store, sourceDateEpoch: EPOCH + 60 });

    const list = await listImages(store);
    assert.deepEqual(
      list.map((i) => [i.ref, i.name, i.version, i.digest, i.created, i.timestampedName]),
      [
        ["fixture:1.0.0", "fixture", "1.0.0", a.digest, "2023-11-14T22:13:20Z", "fixture-1.0.0-20231114221320"],
        ["fixture:1.1.0", "fixture", "1.1.0", b.digest, "2023-11-14T22:14:20Z", "fixture-1.1.0-20231114221420"],
      ],
    );
    assert.equal(list[0]!.size, a.layers.reduce((n, l) => n + l.size, 0) + (await readImage(store, a.digest)).manifest.config.size);

    assert.equal(await resolveRef(store, "fixture:1.0.0"), a.digest);
    assert.equal(await resolveRef(store, a.digest), a.digest);
    assert.equal(await resolveRef(store, a.digest.slice(0, 7 + 12)), a.digest);
    assert.equal(await resolveRef(store, a.digest.slice(7, 7 + 16)), a.digest);
    assert.equal(await resolveRef(store, `fixture@${b.digest}`), b.digest);
    await assert.rejects(resolveRef(store, `other@${b.digest}`), (e) => code(e) === "KILN_E_NOT_FOUND");
    await assert.rejects(resolveRef(store, a.digest.slice(0, 7 + 8)), (e) => code(e) === "KILN_E_NOT_FOUND", "prefix shorter than 12");
    await assert.rejects(resolveRef(store, "fixture:9.9.9"), (e) => {
      assert.equal(code(e), "KILN_E_NOT_FOUND");
      assert.match((e as KilnError).hint ?? "", /fixture:1\.0\.0, fixture:1\.1\.0/);
      return true;
    });
    await assert.rejects(resolveRef(store, "fixtrue:1.0.0"), (e) => /fixture:1\.0\.0/.test((e as KilnError).hint ?? ""));
    // The untagged base manifest kiln stored is reachable by full digest.
    assert.equal(await resolveRef(store, base.digest), base.digest);
  });

  test("invalid names and versions are refused", async (t) => {
    const dir = await tempDir(t);
    const store = openStore(join(dir, "store"));
    for (const over of [{ name: "Shop" }, { name: "shop app" }, { version: "1.0+build" }, { version: "" }, { port: 70000 }]) {
      await assert.rejects(bake(recipe(dir, "node", over), { store }), (e) => code(e) === "KILN_E_IMAGE", JSON.stringify(over));
    }
  });
});

// kiln gc at the library level: real bakes into a real store, releases recorded in a real
// state database, then mark-and-sweep with the pin policy. No daemons.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdir, readFile, lstat, writeFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { Controller } from "../../src/controller/controller.js";
import { canonicalBytes } from "../../src/image/digest.js";
import { gcHome, imageCompleteness } from "../../src/doctor/index.js";
import { KilnError } from "../../src/errors.js";
import { homePaths } from "../../src/home.js";
import { bake, openStore, readImage, unpackRootfs, type Store } from "../../src/image/index.js";
import { MEDIA_TYPE } from "../../src/image/types.js";
import { FakeProvider, manualClock } from "../../src/providers/fake/index.js";
import { StateDb } from "../../src/state/db.js";
import { FakeRouter } from "../../src/traffic/fake.js";
import { releaseSpec } from "../controller/fake-world.js";
import { buildTinyBase, copyFixtureApp, recipe, tempDir } from "./helpers.js";

const SERVICE = "fixture";

interface Baked {
  version: string;
  ref: string;
  digest: string;
}

/** Bake `count` versions (each with its own config layer) into a fresh home. */
async function bakeVersions(t: { after(fn: () => Promise<void> | void): void }, count: number): Promise<{ home: string; store: Store; images: Baked[]; ctx: string; base: string }> {
  const dir = await tempDir(t, "kiln-gc-");
  const home = join(dir, "home");
  const base = await buildTinyBase(join(dir, "base"));
  const ctx = join(dir, "ctx");
  await copyFixtureApp(ctx);
  const store = openStore(home);
  const images: Baked[] = [];
  for (let i = 1; i <= count; i++) {
    await writeFile(join(ctx, "config", "app.json"), JSON.stringify({ greeting: "hello", build: i }));
    const r = await bake(recipe(ctx, base.spec, { version: `1.0.${i}` }), { store, sourceDateEpoch: 1_700_000_000 + i });
    images.push({ version: `1.0.${i}`, ref: r.ref, digest: r.digest });
  }
  return { home, store, images, ctx, base: base.spec };
}

/** Releases r1…rN for the images, rN live (its previous rN-1), as the controller records them. */
function recordReleases(home: string, images: Baked[]): StateDb {
  const db = new StateDb(homePaths(home).stateDb);
  let prev: string | undefined;
  for (const [i, img] of images.entries()) {
    const last = i === images.length - 1;
    const r = db.createRelease({
      service: SERVICE, ref: img.ref, version: img.version, digest: img.digest, configHash: "sha256:0", env: {}, spec: releaseSpec(),
      strategy: "rolling", status: last ? "live" : "superseded", createdAt: 1000 + i, previous: prev,
    });
    prev = r.id;
  }
  db.setFact(SERVICE, "live", prev);
  return db;
}

/** sha256 over every file's path, size and content under `root` (the lock file excluded: it comes and goes). */
async function hashTree(root: string): Promise<string> {
  const h = createHash("sha256");
  const walk = async (dir: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const p = join(dir, name);
      const st = await lstat(p);
      h.update(`${p.slice(root.length)}\0${st.isDirectory() ? "d" : st.size}\0`);
      if (st.isDirectory()) await walk(p);
      else if (st.isFile()) h.update(await readFile(p));
    }
  };
  await walk(root);
  return h.digest("hex");
}

test("gc keeps the newest N releases, the live rollback target and what instances run; removes the rest; deploy and rollback inside the window still work", async (t) => {
  const { home, store, images } = await bakeVersions(t, 7);
  const db = recordReleases(home, images);
  // an instance still runs v2 (say, a fleet the controller has not replaced yet)
  db.insertInstance({ id: "fixture-r2-aaaaaa", service: SERVICE, release: "r2", digest: images[1]!.digest, state: "running", routing: "active", launchedAt: 1 });
  db.close();
  for (const i of [0, 2, 6]) await unpackRootfs(store, images[i]!.digest); // v1, v3, v7 unpacked
  const diffIds = await Promise.all(images.map(async (img) => (await readImage(store, img.digest)).config.rootfs.diff_ids));

  const r = await gcHome({ home, keep: 3, pruneTags: true, graceMs: 0 });

  const keptDigests = new Set([images[6], images[5], images[4], images[1]].map((i) => i!.digest));
  assert.deepEqual(new Set(r.kept.map((k) => k.digest)), keptDigests);
  assert.deepEqual((await store.listTags()).map((x) => x.ref).sort(), ["fixture:1.0.2", "fixture:1.0.5", "fixture:1.0.6", "fixture:1.0.7"]);
  assert.deepEqual(r.removedTags.map((x) => x.ref).sort(), ["fixture:1.0.1", "fixture:1.0.3", "fixture:1.0.4"]);
  for (const i of [0, 2, 3]) assert.equal(await store.hasBlob(images[i]!.digest), false, `${images[i]!.ref} removed`);
  for (const img of images.filter((i) => keptDigests.has(i.digest))) assert.deepEqual(await imageCompleteness(store, img.digest), [], `${img.ref} whole`);
  const why = (d: string) => r.kept.find((k) => k.digest === d)!.reasons.join("; ");
  assert.match(why(images[6]!.digest), /r7.*live/);
  assert.match(why(images[1]!.digest), /instance fixture-r2-aaaaaa runs it/);
  // rootfs: v1 and v3 removed, v7 (live) kept
  assert.deepEqual(r.removedRootfs.map((x) => x.digest).sort(), [images[0]!.digest, images[2]!.digest].sort());
  assert.deepEqual((await readdir(store.rootfsRoot())).filter((n) => !n.endsWith(".complete")), [images[6]!.digest.slice(7)]);
  assert.deepEqual((await readdir(store.rootfsRoot())).filter((n) => n.endsWith(".complete")), [`${images[6]!.digest.slice(7)}.complete`], "markers go with their trees");
  assert.ok(r.bytesFreed > 0 && r.removedBlobs.length >= 6, `freed ${r.bytesFreed} bytes in ${r.removedBlobs.length} blobs`);
  // Rootfs trees are hard-link farms over layer directories. The versions differ only in
  // their config layer: v1's and v3's go with their images, the shared ones stay (kept
  // images use them), so removing v1's and v3's trees frees only those layers' files.
  const onlyIn = (i: number) => diffIds[i]!.filter((d) => diffIds.every((other, j) => j === i || !other.includes(d)));
  assert.deepEqual(r.removedLayers.map((l) => l.diffId).sort(), [...onlyIn(0), ...onlyIn(2)].sort());
  assert.deepEqual(r.keptLayers.map((l) => l.diffId).sort(), [...new Set([...diffIds[0]!, ...diffIds[2]!, ...diffIds[6]!])].filter((d) => !r.removedLayers.some((l) => l.diffId === d)).sort());
  assert.match(r.keptLayers.find((l) => onlyIn(6).includes(l.diffId))!.reasons.join(), /image fixture:1\.0\.7/);
  assert.deepEqual((await readdir(join(store.root, "layers"))).filter((n) => !n.includes(".")).sort(), r.keptLayers.map((l) => l.diffId.slice(7)).sort());
  const layerBytes = r.removedLayers.reduce((n, x) => n + x.bytes, 0);
  assert.ok(layerBytes > 0);
  assert.equal(r.bytesFreed, r.removedBlobs.reduce((n, b) => n + b.size, 0) + layerBytes, "a removed rootfs tree frees only its removed layers' files");

  // Inside the window everything still runs: an image unpacks, a deploy passes the controller's
  // check (its image and the rollback target's are present) and a rollback starts.
  await unpackRootfs(store, images[4]!.digest);
  const db2 = new StateDb(homePaths(home).stateDb);
  t.after(() => db2.close());
  const clock = manualClock();
  const controller = new Controller({
    service: SERVICE, defaultSpec: releaseSpec(), listen: "127.0.0.1:0", db: db2, provider: new FakeProvider(clock),
    router: new FakeRouter({ now: clock.now, pid: 1, listen: "127.0.0.1:0" }), probe: async () => ({ ok: true, answered: true }), clock,
    imageExists: (d) => store.hasBlob(d),
  });
  await controller.checkDeployable({ ref: images[4]!.ref, version: images[4]!.version, digest: images[4]!.digest, configHash: "sha256:0", spec: releaseSpec() });
  const back = controller.rollback();
  assert.equal(back.release.id, "r6");
  // …and outside it, the controller refuses, as it should
  await assert.rejects(
    controller.checkDeployable({ ref: images[0]!.ref, version: images[0]!.version, digest: images[0]!.digest, configHash: "sha256:0", spec: releaseSpec() }),
    (e) => e instanceof KilnError && e.code === "KILN_E_NOT_FOUND",
  );
});

test("--dry-run changes nothing, and reports exactly what the real run then removes", async (t) => {
  const { home, store, images } = await bakeVersions(t, 4);
  recordReleases(home, images).close();
  await unpackRootfs(store, images[0]!.digest);
  const before = await hashTree(home);
  const dry = await gcHome({ home, keep: 2, pruneTags: true, dryRun: true, graceMs: 0 });
  assert.equal(await hashTree(home), before, "store byte-for-byte unchanged");
  assert.ok(dry.removedBlobs.length > 0 && dry.removedTags.length === 2 && dry.removedRootfs.length === 1);
  const real = await gcHome({ home, keep: 2, pruneTags: true, graceMs: 0 });
  assert.deepEqual(real.removedBlobs, dry.removedBlobs);
  assert.deepEqual(real.removedTags, dry.removedTags);
  assert.equal(real.bytesFreed, dry.bytesFreed);
  assert.notEqual(await hashTree(home), before);
});

test("without --prune-tags every tag is a root: only unreferenced blobs and unpinned rootfs trees go", async (t) => {
  const { home, store, images } = await bakeVersions(t, 3);
  recordReleases(home, images.slice(2)).close(); // only v3 was ever deployed
  const stray = await store.putBlob(Buffer.from("left behind by an interrupted import"));
  const untagged = await store.putBlob(canonicalBytes({ schemaVersion: 2, mediaType: MEDIA_TYPE.manifest, config: { mediaType: MEDIA_TYPE.config, digest: stray.digest, size: stray.size }, layers: [] }));
  await unpackRootfs(store, images[0]!.digest);

  const r = await gcHome({ home, keep: 5, graceMs: 0 });
  assert.equal((await store.listTags()).length, 3 + 0, "every fixture tag kept");
  for (const img of images) assert.deepEqual(await imageCompleteness(store, img.digest), []);
  const removed = r.removedBlobs.map((b) => b.digest);
  assert.ok(removed.includes(stray.digest) && removed.includes(untagged.digest), "the stray blob and the untagged manifest go");
  // the rest is what importing the base left: its own manifest and config, which no baked image names
  assert.ok(r.removedBlobs.every((b) => b.digest === stray.digest || b.kind === "manifest" || b.kind === "config"), JSON.stringify(r.removedBlobs));
  assert.deepEqual(r.removedTags, []);
  assert.deepEqual(r.removedRootfs.map((x) => x.digest), [images[0]!.digest], "a rootfs is a cache: a tag alone does not keep it");
  assert.match(r.kept.find((k) => k.digest === images[0]!.digest)!.reasons.join(), /tagged fixture:1.0.1/);
});

test("blobs written in the grace period are kept: a bake in progress has not tagged them yet", async (t) => {
  const { home, store } = await bakeVersions(t, 1);
  const fresh = await store.putBlob(Buffer.from("a layer a bake just wrote"));
  const r = await gcHome({ home, keep: 5 });
  assert.ok(r.recentBlobs.includes(fresh.digest));
  assert.deepEqual(r.removedBlobs, [], "everything unreferenced is recent");
  assert.equal(await store.hasBlob(fresh.digest), true);
});

test("a tag naming a blob gc removed is refused cleanly (the bake-vs-gc race), and a re-bake heals", async (t) => {
  const { home, store, images } = await bakeVersions(t, 1);
  // Everything unpinned and untagged goes: the layers the layer cache points at included.
  const r = await gcHome({ home, keep: 5, pruneTags: true, graceMs: 0 });
  assert.equal(await store.hasBlob(images[0]!.digest), false);
  assert.ok(r.removedCacheEntries > 0, "cache entries for removed layers dropped");
  // A bake that found its layer in the cache just before gc ran, and tags after it:
  const layer = await store.putBlob(Buffer.from("layer"));
  const config = await store.putBlob(Buffer.from("{}"));
  const manifest = await store.putBlob(canonicalBytes({ schemaVersion: 2, config: { mediaType: MEDIA_TYPE.config, ...config }, layers: [{ mediaType: MEDIA_TYPE.layerGzip, digest: "sha256:" + "0".repeat(64), size: 1 }, { mediaType: MEDIA_TYPE.layerGzip, ...layer }] }));
  await assert.rejects(store.tag("race:1", { mediaType: MEDIA_TYPE.manifest, ...manifest }), (e) => e instanceof KilnError && e.code === "KILN_E_IMAGE" && /gc/.test(e.message));
  assert.equal(await store.lookupTag("race:1"), undefined);
  // the next bake of the same inputs rebuilds what is missing and gets the same digest
  const again = await bakeVersions(t, 1);
  assert.equal(again.images[0]!.digest, images[0]!.digest);
});

test("the kept logs of terminated instances go with their release once it leaves the window; live, in-window and unknown ones stay", async (t) => {
  const { home, images } = await bakeVersions(t, 4);
  const db = recordReleases(home, images);
  const instance = (id: string, release: string, state: "terminated" | "running") =>
    db.insertInstance({ id, service: SERVICE, release, digest: images[Number(release.slice(1)) - 1]!.digest, state, routing: "none", launchedAt: 1, terminatedAt: state === "terminated" ? 2 : undefined });
  instance(`${SERVICE}-old`, "r1", "terminated"); // outside keep 2: r3 (its previous) and r4 (live) are in
  instance(`${SERVICE}-recent`, "r4", "terminated");
  db.close();
  const dirs = [`${SERVICE}-old`, `${SERVICE}-recent`, `${SERVICE}-unknown`];
  for (const d of dirs) {
    await mkdir(join(home, "instances", d), { recursive: true });
    await writeFile(join(home, "instances", d, "log"), "x".repeat(1000));
  }
  const dry = await gcHome({ home, keep: 2, graceMs: 0, dryRun: true });
  assert.deepEqual(dry.removedInstanceLogs, [{ instance: `${SERVICE}-old`, release: "r1", bytes: 1000 }]);
  assert.deepEqual((await readdir(join(home, "instances"))).sort(), dirs.sort(), "a dry run removes nothing");
  const real = await gcHome({ home, keep: 2, graceMs: 0 });
  assert.deepEqual(real.removedInstanceLogs, dry.removedInstanceLogs);
  assert.deepEqual((await readdir(join(home, "instances"))).sort(), [`${SERVICE}-recent`, `${SERVICE}-unknown`]);
});

test("gc refuses when it cannot know what releases need, or is asked to keep none", async (t) => {
  const { home, store, images } = await bakeVersions(t, 2);
  await assert.rejects(gcHome({ home, keep: 0 }), (e) => e instanceof KilnError && e.code === "KILN_E_USAGE" && /roll back/.test(e.hint ?? ""));
  await mkdir(join(home, "run"), { recursive: true });
  await writeFile(homePaths(home).stateDb, "this is not a database, but it was the release history");
  const before = await hashTree(home);
  await assert.rejects(gcHome({ home, keep: 5, pruneTags: true, graceMs: 0 }), (e) => e instanceof KilnError && e.code === "KILN_E_STATE" && /gc refused/.test(e.message));
  assert.equal(await hashTree(home), before);
  for (const img of images) assert.equal(await store.hasBlob(img.digest), true);
});

test("a corrupt manifest of a kept image stops gc before anything is removed", async (t) => {
  const { home, store, images } = await bakeVersions(t, 2);
  recordReleases(home, images).close();
  const stray = await store.putBlob(Buffer.from("stray"));
  await writeFile(store.blobPath(images[1]!.digest), "{}");
  await assert.rejects(gcHome({ home, keep: 5, graceMs: 0 }), (e) => e instanceof KilnError && /corrupt/.test(e.message));
  assert.equal(await store.hasBlob(stray.digest), true, "nothing swept");
});

test("gc racing bakes never leaves a tag that names a missing blob: the bake lands first or fails cleanly", async (t) => {
  const { home, store, ctx, base } = await bakeVersions(t, 1);
  const outcomes: string[] = [];
  for (let i = 0; i < 4; i++) {
    await writeFile(join(ctx, "config", "app.json"), JSON.stringify({ race: i }));
    // graceMs 0 on purpose: the bake's fresh blobs get no protection but the lock and the tag check
    const [b, g] = await Promise.allSettled([
      bake(recipe(ctx, base, { version: `2.0.${i}` }), { store, sourceDateEpoch: 1_700_000_100 + i }),
      gcHome({ home, keep: 5, pruneTags: i % 2 === 1, graceMs: 0 }),
    ]);
    assert.equal(g.status, "fulfilled", g.status === "rejected" ? String(g.reason) : "");
    if (b.status === "rejected") {
      assert.ok(b.reason instanceof KilnError && b.reason.code === "KILN_E_IMAGE", String(b.reason));
      outcomes.push(`bake refused (${b.reason.message.slice(0, 90)})`);
    } else outcomes.push("bake landed");
    for (const tag of await store.listTags()) {
      assert.deepEqual(await imageCompleteness(store, tag.descriptor.digest), [], `${tag.ref} is whole`);
    }
  }
  console.log(`# outcomes: ${outcomes.join(", ")}`);
});

test("gcHome with environments: every environment's state pins images in the shared store", async (t) => {
  const { home, store, images } = await bakeVersions(t, 4);
  // staging runs v1; production ran v2, v3 and runs v4 (each environment its own state under env/NAME/)
  const record = (env: string, service: string, imgs: Baked[]) => {
    const db = new StateDb(homePaths(home, env).stateDb);
    let prev: string | undefined;
    for (const [i, img] of imgs.entries()) {
      const last = i === imgs.length - 1;
      prev = db.createRelease({
        service, ref: img.ref, version: img.version, digest: img.digest, configHash: "sha256:0", env: {}, spec: releaseSpec(),
        strategy: "rolling", status: last ? "live" : "superseded", createdAt: 1000 + i, previous: prev,
      }).id;
    }
    db.setFact(service, "live", prev!);
    db.close();
  };
  record("staging", `${SERVICE}-staging`, [images[0]!]);
  record("production", `${SERVICE}-production`, images.slice(1));

  const r = await gcHome({ home, keep: 1, pruneTags: true, graceMs: 0 });
  // production keeps its live v4 and its rollback target v3; staging's live v1 stays although production forgot it
  assert.deepEqual(new Set(r.kept.map((k) => k.digest)), new Set([images[0], images[2], images[3]].map((i) => i!.digest)));
  assert.equal(await store.hasBlob(images[1]!.digest), false, "v2 (no environment needs it) removed");
  assert.match(r.kept.find((k) => k.digest === images[0]!.digest)!.reasons.join("; "), /of fixture-staging/);
  assert.deepEqual(r.services, ["fixture-production", "fixture-staging"]);
});

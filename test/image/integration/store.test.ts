import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { KilnError } from "../../../src/errors.js";
import { sha256Digest } from "../../../src/image/digest.js";
import { withLock } from "../../../src/image/lock.js";
import { openStore } from "../../../src/image/store.js";
import { ANNOTATION, MEDIA_TYPE, type OciIndex } from "../../../src/image/types.js";
import { execFileP, FIXTURES, need, tempDir } from "../helpers.js";

function code(e: unknown): string | undefined {
  return e instanceof KilnError ? e.code : undefined;
}

test("a store is an OCI image layout, created on first use", async (t) => {
  const root = join(await tempDir(t), "store");
  const store = openStore(root);
  await assert.rejects(readFile(join(root, "oci-layout")), "opening is lazy and cheap");
  await Promise.all([store.readIndex(), openStore(root).readIndex(), openStore(root).listTags()]);
  assert.deepEqual(JSON.parse(await readFile(join(root, "oci-layout"), "utf8")), { imageLayoutVersion: "1.0.0" });
  const index = JSON.parse(await readFile(join(root, "index.json"), "utf8")) as OciIndex;
  assert.equal(index.schemaVersion, 2);
  assert.deepEqual(index.manifests, []);
});

test("blobs are content-addressed, deduplicated and verified on read", async (t) => {
  const store = openStore(join(await tempDir(t), "store"));
  const a = await store.putBlob(Buffer.from("hello"));
  const b = await store.putBlob(Buffer.from("hello"));
  assert.deepEqual(a, b);
  assert.equal(a.digest, sha256Digest("hello"));
  assert.deepEqual(await readdir(join(store.root, "blobs/sha256")), [a.digest.slice(7)]);
  assert.deepEqual(await readdir(join(store.root, "tmp")), [], "no temp files left behind");
  assert.equal((await store.readBlob(a.digest)).toString(), "hello");

  await writeFile(store.blobPath(a.digest), "HELLO");
  await assert.rejects(store.readBlob(a.digest), (e) => code(e) === "KILN_E_UNSAFE");
  const chunks: Buffer[] = [];
  await assert.rejects(
    (async () => {
      for await (const c of store.openBlob(a.digest)) chunks.push(c as Buffer);
    })(),
    (e) => code(e) === "KILN_E_UNSAFE",
  );
  await assert.rejects(store.readBlob(sha256Digest("absent")), (e) => code(e) === "KILN_E_IMAGE");
  await assert.rejects(store.readBlob("sha256:../../etc/passwd"), (e) => code(e) === "KILN_E_IMAGE");

  // Writing the same content again heals the corrupted copy.
  await store.putBlob(Buffer.from("hello"));
  assert.equal((await store.readBlob(a.digest)).toString(), "hello");
});

test("a blob writer refuses content that does not match the expected digest", async (t) => {
  const store = openStore(join(await tempDir(t), "store"));
  const w = await store.createBlobWriter();
  await w.write(Buffer.from("evil"));
  await assert.rejects(w.commit({ digest: sha256Digest("good") }), (e) => code(e) === "KILN_E_UNSAFE");
  assert.equal(await store.hasBlob(sha256Digest("evil")), false);
  assert.deepEqual(await readdir(join(store.root, "tmp")), []);
});

test("tags are immutable: same digest is a no-op, another digest is refused", async (t) => {
  const store = openStore(join(await tempDir(t), "store"));
  const m1 = { mediaType: MEDIA_TYPE.manifest, ...(await store.putBlob(Buffer.from('{"a":1}'))) };
  const m2 = { mediaType: MEDIA_TYPE.manifest, ...(await store.putBlob(Buffer.from('{"a":2}'))) };
  assert.equal(await store.tag("shop:1.0.0", m1), "created");
  assert.equal(await store.tag("shop:1.0.0", m1), "exists");
  const before = await readFile(join(store.root, "index.json"), "utf8");
  await assert.rejects(store.tag("shop:1.0.0", m2), (e) => {
    assert.ok(e instanceof KilnError);
    assert.equal(e.code, "KILN_E_TAG_IMMUTABLE");
    assert.match(e.hint ?? "", /version/);
    return true;
  });
  assert.equal(await readFile(join(store.root, "index.json"), "utf8"), before, "index untouched");
  assert.equal(await store.tag("shop:1.0.1", m2), "created");
  assert.equal((await store.lookupTag("shop:1.0.0"))?.digest, m1.digest);
  const index = await store.readIndex();
  assert.deepEqual(index.manifests.map((d) => d.annotations?.[ANNOTATION.refName]), ["shop:1.0.0", "shop:1.0.1"]);
  await assert.rejects(store.tag("ghost:1", { mediaType: MEDIA_TYPE.manifest, digest: sha256Digest("nope"), size: 4 }), (e) => code(e) === "KILN_E_IMAGE");
});

test("concurrent kiln processes tagging one store lose no update", async (t) => {
  const store = openStore(join(await tempDir(t), "store"));
  const workers = 4;
  const each = 15;
  await Promise.all(
    Array.from({ length: workers }, (_, w) =>
      new Promise<void>((resolve, reject) => {
        const p = spawn(process.execPath, [join(FIXTURES, "tag-worker.mjs"), store.root, `w${w}`, String(each)], { stdio: ["ignore", "inherit", "inherit"] });
        p.on("error", reject);
        p.on("exit", (c) => (c === 0 ? resolve() : reject(new Error(`worker ${w} exited ${c}`))));
      }),
    ),
  );
  // and a few in-process callers at the same time as each other
  await Promise.all(
    Array.from({ length: 10 }, async (_, i) => {
      const b = await store.putBlob(Buffer.from(`{"local":${i}}`));
      await store.tag(`local-${i}:1`, { mediaType: MEDIA_TYPE.manifest, ...b });
    }),
  );
  const tags = await store.listTags();
  assert.equal(tags.length, workers * each + 10);
  assert.equal(new Set(tags.map((x) => x.ref)).size, tags.length);
  await assert.rejects(readFile(join(store.root, "index.json.lock")), "lock released");
});

test("a lock left by a dead process is taken over", async (t) => {
  const dir = await tempDir(t);
  const lock = join(dir, "x.lock");
  const { hostname } = await import("node:os");
  // pid 2^22+1 is above the default pid_max, so no such process exists
  await writeFile(lock, `${2 ** 22 + 1}\n${hostname()}\n0\n0.1`);
  const got = await withLock(lock, async () => "ran", { timeoutMs: 2000 });
  assert.equal(got, "ran");
});

test("skopeo reads the store as an OCI layout (oci:ROOT:name:version)", async (t) => {
  if (!need(t, "skopeo")) return;
  const { buildTinyBase } = await import("../helpers.js");
  const root = join(await tempDir(t), "store");
  const { digest } = await buildTinyBase(root);
  const { stdout } = await execFileP("skopeo", ["inspect", `oci:${root}:tiny:1`]);
  assert.equal(JSON.parse(stdout).Digest, digest);
});

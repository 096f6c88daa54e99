import assert from "node:assert/strict";
import { chmod, mkdir, readFile, symlink, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { gunzipSync } from "node:zlib";
import tar from "tar-stream";
import { KilnError } from "../../src/errors.js";
import { sha256Digest } from "../../src/image/digest.js";
import { collectFiles, headerFor, layerCacheKey, normalizeFileMode, planLayer, writeLayer, type LayerEntry } from "../../src/image/layer.js";
import { GZIP_BLOCK, gzipMember, loadGzipEncoder } from "../../src/image/parallel-gzip.js";
import { openStore } from "../../src/image/store.js";
import { tempDir } from "./helpers.js";

function file(path: string, text: string, mode = 0o644): LayerEntry {
  const data = Buffer.from(text);
  return { path, kind: "file", mode, file: { size: data.length, sha256: sha256Digest(data).slice(7), data } };
}

function code(e: unknown): string | undefined {
  return e instanceof KilnError ? e.code : undefined;
}

async function readTar(buf: Buffer): Promise<tar.Header[]> {
  const ex = tar.extract();
  const headers: tar.Header[] = [];
  const done = (async () => {
    for await (const entry of ex) {
      headers.push(entry.header);
      entry.resume();
    }
  })();
  ex.end(buf);
  await done;
  return headers;
}

describe("planLayer", () => {
  test("adds parent directories and sorts byte-wise", () => {
    const planned = planLayer([file("app/z.js", "z"), file("app-b", "b"), file("app/a/b.js", "ab")]);
    assert.deepEqual(
      planned.map((e) => `${e.kind}:${e.path}`),
      ["dir:app", "file:app-b", "dir:app/a", "file:app/a/b.js", "file:app/z.js"],
    );
    assert.equal(planned.find((e) => e.path === "app")!.mode, 0o755);
  });

  test("an identical duplicate is dropped, a conflicting one refused", () => {
    assert.equal(planLayer([file("a", "1"), file("a", "1")]).length, 1);
    assert.throws(() => planLayer([file("a", "1"), file("a", "2")]), (e) => code(e) === "KILN_E_IMAGE");
  });

  test("nothing may live below a file or a symlink", () => {
    assert.throws(() => planLayer([file("a", "1"), file("a/b", "2")]), (e) => code(e) === "KILN_E_IMAGE");
    assert.throws(
      () => planLayer([{ path: "lib", kind: "symlink", mode: 0o777, linkTarget: "usr/lib" }, file("lib/x", "2")]),
      (e) => code(e) === "KILN_E_IMAGE",
    );
  });

  test("symlinks that climb above the root are refused; absolute and inner ones kept", () => {
    assert.throws(() => planLayer([{ path: "app/x", kind: "symlink", mode: 0o777, linkTarget: "../../etc/passwd" }]), (e) => code(e) === "KILN_E_UNSAFE");
    const ok = planLayer([
      { path: "app/x", kind: "symlink", mode: 0o777, linkTarget: "../etc/passwd" },
      { path: "lib", kind: "symlink", mode: 0o777, linkTarget: "/usr/lib" },
    ]);
    assert.equal(ok.length, 3);
  });

  test("invalid paths are refused", () => {
    for (const p of ["/abs", "a/../b", "", "a//b", "./a"]) {
      assert.throws(() => planLayer([file(p, "x")]), (e) => code(e) === "KILN_E_IMAGE", p);
    }
  });
});

test("normalizeFileMode", () => {
  const cases: [number, string | undefined, number][] = [
    [0o100644, undefined, 0o644],
    [0o100600, undefined, 0o644],
    [0o100664, undefined, 0o644],
    [0o100700, undefined, 0o755],
    [0o100775, undefined, 0o755],
    [0o100744, undefined, 0o755],
    [0o100644, "0600", 0o600],
    [0o100644, "755", 0o755],
  ];
  for (const [host, override, want] of cases) assert.equal(normalizeFileMode(host, override), want, `${host.toString(8)} ${override}`);
  assert.throws(() => normalizeFileMode(0o644, "rwx"), (e) => code(e) === "KILN_E_IMAGE");
  assert.throws(() => normalizeFileMode(0o644, "04755"), (e) => code(e) === "KILN_E_IMAGE");
});

test("layerCacheKey changes with content, mode, mtime and role", () => {
  const base = planLayer([file("a", "1")]);
  const k = layerCacheKey("app", base, 10);
  assert.equal(layerCacheKey("app", planLayer([file("a", "1")]), 10), k);
  assert.notEqual(layerCacheKey("app", planLayer([file("a", "2")]), 10), k);
  assert.notEqual(layerCacheKey("app", planLayer([file("a", "1", 0o755)]), 10), k);
  assert.notEqual(layerCacheKey("app", base, 11), k);
  assert.notEqual(layerCacheKey("config", base, 10), k);
  assert.equal(layerCacheKey("app", base, 10, "gzip"), k, "gzip is the default");
  assert.notEqual(layerCacheKey("app", base, 10, "none"), k, "an uncompressed layer is another blob");
});

test("writeLayer: same entries, two stores → same bytes; headers carry no host metadata", async (t) => {
  const dir = await tempDir(t);
  const entries = planLayer([file("app/server.js", "console.log(1)\n"), file("app/bin/run", "#!/bin/sh\n", 0o755), { path: "app/link", kind: "symlink", mode: 0o777, linkTarget: "server.js" }, { path: "tmp", kind: "dir", mode: 0o1777 }]);
  const s1 = openStore(join(dir, "s1"));
  const s2 = openStore(join(dir, "s2"));
  const r1 = await writeLayer(s1, entries, 1_700_000_000);
  const r2 = await writeLayer(s2, entries, 1_700_000_000);
  assert.deepEqual(r1, r2);
  assert.equal(r1.descriptor.mediaType, "application/vnd.oci.image.layer.v1.tar+gzip");
  const gz = await readFile(s1.blobPath(r1.descriptor.digest));
  assert.equal(sha256Digest(gz), r1.descriptor.digest);
  const raw = gunzipSync(gz);
  assert.equal(sha256Digest(raw), r1.diffId);
  const headers = await readTar(raw);
  assert.deepEqual(
    headers.map((h) => [h.name, h.type, h.mode.toString(8), h.uid, h.gid, h.uname, h.gname, h.mtime.getTime() / 1000]),
    [
      ["app/", "directory", "755", 0, 0, "", "", 1_700_000_000],
      ["app/bin/", "directory", "755", 0, 0, "", "", 1_700_000_000],
      ["app/bin/run", "file", "755", 0, 0, "", "", 1_700_000_000],
      ["app/link", "symlink", "777", 0, 0, "", "", 1_700_000_000],
      ["app/server.js", "file", "644", 0, 0, "", "", 1_700_000_000],
      ["tmp/", "directory", "1777", 0, 0, "", "", 1_700_000_000],
    ],
  );
  assert.ok(headers.every((h) => !h.pax));
  const other = await writeLayer(s1, entries, 1_700_000_001);
  assert.notEqual(other.diffId, r1.diffId);
});

test("writeLayer: the thread count never changes the bytes; a layer over one block is several gzip members", async (t) => {
  const dir = await tempDir(t);
  // 2.5 blocks of tar: a file Node's gunzip must read across member boundaries.
  const big = Buffer.alloc(Math.floor(GZIP_BLOCK * 2.5));
  for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 27;
  const entries = planLayer([{ path: "data/big.bin", kind: "file", mode: 0o644, file: { size: big.length, sha256: sha256Digest(big).slice(7), data: big } }, file("data/small", "x")]);
  const records = [];
  for (const threads of [1, 2, 4]) records.push(await writeLayer(openStore(join(dir, `s${threads}`)), entries, 1_700_000_000, { threads }));
  assert.deepEqual(records[1], records[0]);
  assert.deepEqual(records[2], records[0]);
  const gz = await readFile(openStore(join(dir, "s2")).blobPath(records[0]!.descriptor.digest));
  const raw = gunzipSync(gz);
  assert.equal(sha256Digest(raw), records[0]!.diffId);
  // The blob is the blocks' members one after the other.
  const members = [];
  await loadGzipEncoder();
  for (let off = 0; off < raw.length; off += GZIP_BLOCK) members.push(gzipMember(raw.subarray(off, off + GZIP_BLOCK)));
  assert.equal(members.length, 3);
  assert.ok(gz.equals(Buffer.concat(members)));
});

test("writeLayer with compression none: the tar itself, digest = diff_id, media type …tar", async (t) => {
  const dir = await tempDir(t);
  const store = openStore(join(dir, "s"));
  const entries = planLayer([file("app/server.js", "console.log(1)\n")]);
  const r = await writeLayer(store, entries, 1_700_000_000, { compression: "none", threads: 2 });
  assert.equal(r.descriptor.mediaType, "application/vnd.oci.image.layer.v1.tar");
  assert.equal(r.descriptor.digest, r.diffId);
  const blob = await readFile(store.blobPath(r.descriptor.digest));
  assert.equal(blob.length, r.descriptor.size);
  assert.deepEqual((await readTar(blob)).map((h) => h.name), ["app/", "app/server.js"]);
  const gz = await writeLayer(store, entries, 1_700_000_000);
  assert.equal(gz.diffId, r.diffId, "same tar either way");
  assert.ok(gunzipSync(await readFile(store.blobPath(gz.descriptor.digest))).equals(blob));
});

test("collectFiles: recursive copy, symlink policy, .git left out, modes normalized", async (t) => {
  const ctx = await tempDir(t);
  await mkdir(join(ctx, "app/sub/.git"), { recursive: true });
  await writeFile(join(ctx, "app/a.js"), "a");
  await writeFile(join(ctx, "app/sub/run.sh"), "#!/bin/sh\n");
  await chmod(join(ctx, "app/sub/run.sh"), 0o700);
  await writeFile(join(ctx, "app/sub/.git/HEAD"), "ref");
  await symlink("../a.js", join(ctx, "app/sub/inner"));
  await symlink("../../../../outside", join(ctx, "app/sub/escape"));
  await symlink("../../sibling", join(ctx, "app/sub/sibling"));
  await symlink("/etc/passwd", join(ctx, "app/abs"));
  await writeFile(join(ctx, "single.txt"), "s");
  await utimes(join(ctx, "single.txt"), 1, 1);

  const { entries, skipped } = await collectFiles(ctx, [{ src: "app", dest: "/srv/app" }, { src: "single.txt", dest: "/etc/" }], "files");
  const byPath = new Map(entries.map((e) => [e.path, e]));
  assert.equal(byPath.get("srv/app/a.js")?.mode, 0o644);
  assert.equal(byPath.get("srv/app/sub/run.sh")?.mode, 0o755);
  assert.equal(byPath.get("srv/app/sub/inner")?.linkTarget, "../a.js");
  assert.equal(byPath.get("etc/single.txt")?.file?.sha256, sha256Digest("s").slice(7));
  assert.ok(!byPath.has("srv/app/sub/escape"));
  assert.equal(byPath.get("srv/app/sub/sibling")?.linkTarget, "../../sibling", "relative links inside the image are kept");
  assert.ok(!byPath.has("srv/app/abs"));
  assert.ok(![...byPath.keys()].some((p) => p.includes(".git")));
  assert.deepEqual(skipped.map((s) => s.path).sort(), ["/srv/app/abs", "/srv/app/sub/.git", "/srv/app/sub/escape"]);

  await assert.rejects(collectFiles(ctx, [{ src: "missing", dest: "/x" }], "files"), (e) => code(e) === "KILN_E_IMAGE");
  await assert.rejects(collectFiles(ctx, [{ src: "single.txt", dest: "relative" }], "files"), (e) => code(e) === "KILN_E_IMAGE");
  await assert.rejects(collectFiles(ctx, [{ src: "single.txt", dest: "/a/../../x" }], "files"), (e) => code(e) === "KILN_E_IMAGE");
});

test("writeLayer refuses a file that changed after it was hashed", async (t) => {
  const dir = await tempDir(t);
  const store = openStore(join(dir, "s"));
  await writeFile(join(dir, "f"), "before");
  const { entries } = await collectFiles(dir, [{ src: "f", dest: "/f" }], "files");
  await writeFile(join(dir, "f"), "after!");
  await assert.rejects(writeLayer(store, planLayer(entries), 0), (e) => code(e) === "KILN_E_IMAGE" && /changed/.test((e as Error).message));
});

test("long and non-ASCII paths survive (pax headers, still deterministic)", async (t) => {
  const dir = await tempDir(t);
  const long = `app/${"d".repeat(120)}/${"f".repeat(90)}.js`;
  const entries = planLayer([file(long, "x"), file("app/héllo.js", "y")]);
  const s1 = openStore(join(dir, "s1"));
  const r1 = await writeLayer(s1, entries, 0);
  const r2 = await writeLayer(openStore(join(dir, "s2")), entries, 0);
  assert.deepEqual(r1, r2);
  const headers = await readTar(gunzipSync(await readFile(s1.blobPath(r1.descriptor.digest))));
  assert.deepEqual(headers.map((h) => h.name), ["app/", `app/${"d".repeat(120)}/`, long, "app/héllo.js"]);
});

describe("layer tar bytes", () => {
  // What tar-stream's pack() wrote for the same headers (kiln serialized layers through it before
  // writing them itself): the layer's uncompressed blob must be exactly these bytes.
  async function packedByTarStream(planned: readonly LayerEntry[], mtime: number): Promise<Buffer> {
    const pack = tar.pack();
    const chunks: Buffer[] = [];
    const read = (async () => {
      for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
    })();
    for (const e of planned) {
      const header = headerFor(e, mtime);
      const body = e.kind === "file" ? (e.file!.data ? Buffer.from(e.file!.data) : await readFile(e.file!.hostPath!)) : undefined;
      await new Promise<void>((res, rej) => (body ? pack.entry(header, body, (err) => (err ? rej(err) : res())) : pack.entry(header, (err) => (err ? rej(err) : res()))));
    }
    pack.finalize();
    await read;
    return Buffer.concat(chunks);
  }

  test("same bytes as tar-stream's pack: long names (ustar prefix and PAX), long link targets, mode 0, empty, host and in-memory files", async (t) => {
    const dir = await tempDir(t);
    const big = Buffer.alloc(3 * 1024 * 1024 + 777);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 11)) & 0xff;
    await writeFile(join(dir, "big.bin"), big);
    await writeFile(join(dir, "odd.txt"), "x".repeat(513));
    const hosted = async (path: string, host: string, mode = 0o644): Promise<LayerEntry> => {
      const data = await readFile(join(dir, host));
      return { path, kind: "file", mode, file: { size: data.length, sha256: sha256Digest(data).slice(7), hostPath: join(dir, host) } };
    };
    const long = `${"d".repeat(60)}/${"e".repeat(60)}/${"f".repeat(90)}.js`; // > 100: ustar prefix
    const longer = `${"g".repeat(120)}/${"h".repeat(120)}.js`; // no prefix split fits: PAX
    const planned = planLayer([
      await hosted("opt/big.bin", "big.bin", 0o755),
      await hosted("opt/odd.txt", "odd.txt"),
      file(long, "long"),
      file(longer, "longer"),
      file("etc/empty", ""),
      file("etc/zero-mode", "z", 0),
      { path: "opt/link", kind: "symlink", mode: 0o777, linkTarget: "big.bin" },
      { path: "opt/far", kind: "symlink", mode: 0o777, linkTarget: `${"../opt/".repeat(20)}odd.txt` }, // > 100: PAX
      { path: "tmp", kind: "dir", mode: 0o1777 },
    ]);
    const store = openStore(join(dir, "store"));
    const want = await packedByTarStream(planned, 1_700_000_000);
    const rec = await writeLayer(store, planned, 1_700_000_000, { compression: "none" });
    const got = await readFile(store.blobPath(rec.descriptor.digest));
    assert.equal(got.length, want.length);
    assert.ok(got.equals(want), "tar bytes differ from tar-stream's");
    assert.equal(rec.diffId, sha256Digest(want));
    const gz = await writeLayer(store, planned, 1_700_000_000, { compression: "gzip", threads: 2 });
    assert.equal(gz.diffId, rec.diffId);
    assert.ok(gunzipSync(await readFile(store.blobPath(gz.descriptor.digest))).equals(want));
  });
});

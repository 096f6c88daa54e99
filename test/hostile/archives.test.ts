// Hostile base images: every one must be refused when it is imported (what
// `kiln bake` does with `base: oci:…` or `docker-archive:…`), with a KilnError
// and nothing written outside the store — not later, when unpacked.

import assert from "node:assert/strict";
import { lstat, mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { openStore, readImage, unpackRootfs } from "../../src/image/index.js";
import { resolveBase } from "../../src/image/base.js";
import { checkImageLayers, LayerTree, type LayerLimits } from "../../src/image/layer-check.js";
import type { Store } from "../../src/image/store.js";
import { tempDir } from "../image/helpers.js";
import { craftImage } from "../image/helpers.js";
import { dockerArchiveFiles, gzipBomb, kilnError, layerOf, ociLayoutFiles, sha256, snapshot, tarOf, writeTree, type HostileEntry, type LayoutLayer } from "./support.js";

const ctx = (store: Store, dir: string) => ({ store, contextDir: dir, onProgress: () => undefined });

type Form = "oci-dir" | "oci-archive" | "docker-archive";

/** Write the image in `form` under dir/src and return the base spec. */
async function materialize(dir: string, form: Form, layers: LayoutLayer[]): Promise<string> {
  if (form === "oci-dir") {
    await writeTree(join(dir, "src"), ociLayoutFiles(layers));
    return `oci:${join(dir, "src")}:1`;
  }
  await mkdir(join(dir, "src"));
  if (form === "oci-archive") {
    await writeFile(join(dir, "src", "image.tar"), await tarOf(ociLayoutFiles(layers)));
    return `oci:${join(dir, "src", "image.tar")}:1`;
  }
  // docker save stores layers uncompressed
  const plain = await Promise.all(layers.map(async (l) => (l.gzip ? { ...l, blob: (await import("node:zlib")).gunzipSync(l.blob), gzip: false } : l)));
  await writeFile(join(dir, "src", "image.tar"), await tarOf(dockerArchiveFiles(plain)));
  return `docker-archive:${join(dir, "src", "image.tar")}`;
}

/** Each case: layers (entries), the text the error must name. */
const hostile: { name: string; layers: HostileEntry[][]; mentions: string }[] = [
  { name: "a .. component", layers: [[{ name: "app/../../../outside/pwned", body: "x" }]], mentions: "..\" component" },
  { name: "an absolute path", layers: [[{ name: "/tmp/kiln-hostile-pwned", body: "x" }]], mentions: "absolute path" },
  { name: "a symlink climbing out", layers: [[{ name: "up", type: "symlink", linkname: "../../../.." }]], mentions: "escapes the root" },
  {
    name: "a symlink climbing out in a second layer, with a write through it",
    layers: [[{ name: "a/b/", type: "directory" }], [{ name: "a/b/l", type: "symlink", linkname: "../../.." }, { name: "a/b/l/x", body: "x" }]],
    mentions: "escapes the root",
  },
  { name: "a hard link to a host path", layers: [[{ name: "passwd", type: "link", linkname: "/etc/passwd" }]], mentions: "absolute path" },
  { name: "a hard link climbing out", layers: [[{ name: "passwd", type: "link", linkname: "../../etc/passwd" }]], mentions: "..\" component" },
  { name: "a hard link to a missing entry", layers: [[{ name: "h", type: "link", linkname: "nowhere" }]], mentions: "does not exist" },
  {
    name: "a hard link to a symlink (moves a relative link where it escapes)",
    layers: [[{ name: "d/e/", type: "directory" }, { name: "d/e/l", type: "symlink", linkname: "../../x" }, { name: "top", type: "link", linkname: "d/e/l" }]],
    mentions: "hard link to the symlink",
  },
  { name: "a malformed whiteout", layers: [[{ name: "app/.wh..", body: "" }]], mentions: "" },
];

describe("import refuses hostile layers (bake would refuse what unpack refuses)", () => {
  for (const form of ["oci-dir", "oci-archive", "docker-archive"] as Form[]) {
    for (const c of hostile) {
      if (form === "docker-archive" && c.name === "a malformed whiteout") continue; // tar-stream normalizes the name; covered by the other forms
      test(`${form}: ${c.name}`, async (t) => {
        const dir = await tempDir(t, "kiln-hostile-");
        const layers = await Promise.all(c.layers.map((entries) => layerOf(entries)));
        const base = await materialize(dir, form, layers);
        const before = await snapshot(dir, [join(dir, "store")]);
        const store = openStore(join(dir, "store"));
        await assert.rejects(resolveBase(base, ctx(store, dir)), kilnError("KILN_E_UNSAFE", c.mentions));
        assert.deepEqual(await snapshot(dir, [join(dir, "store")]), before, "nothing outside the store changed");
        assert.equal(await lstat("/tmp/kiln-hostile-pwned").catch(() => undefined), undefined);
        assert.deepEqual(await readdir(join(store.root, "tmp")), [], "no temporary files left");
      });
    }
  }

  test("a layer whose content does not match its diff_id (oci layout)", async (t) => {
    const dir = await tempDir(t, "kiln-hostile-");
    const good = await layerOf([{ name: "etc/motd", body: "hi" }]);
    const base = await materialize(dir, "oci-dir", [{ ...good, diffId: sha256("something else") }]);
    const store = openStore(join(dir, "store"));
    await assert.rejects(resolveBase(base, ctx(store, dir)), kilnError("KILN_E_UNSAFE", "diff_id"));
  });

  test("a gzip bomb (100 MiB of zeros in ~100 KiB) is refused while streaming", async (t) => {
    const dir = await tempDir(t, "kiln-hostile-");
    const bomb = await gzipBomb(100 * 1024 * 1024);
    assert.ok(bomb.gz.length < 1024 * 1024, `bomb is small: ${bomb.gz.length}`);
    const base = await materialize(dir, "oci-dir", [{ blob: bomb.gz, diffId: bomb.tarDigest, gzip: true }]);
    const store = openStore(join(dir, "store"));
    await assert.rejects(resolveBase(base, ctx(store, dir)), kilnError("KILN_E_UNSAFE", "decompression bomb"));
  });

  test("a gzipped oci-archive that is itself a gzip bomb is refused while extracting", async (t) => {
    const dir = await tempDir(t, "kiln-hostile-");
    const bomb = await gzipBomb(100 * 1024 * 1024); // a tar holding 100 MiB of zeros, gzipped
    await mkdir(join(dir, "src"));
    await writeFile(join(dir, "src", "image.tar.gz"), bomb.gz);
    const store = openStore(join(dir, "store"));
    await assert.rejects(resolveBase(`oci:${join(dir, "src", "image.tar.gz")}`, ctx(store, dir)), kilnError("KILN_E_UNSAFE", "decompression bomb"));
    assert.deepEqual(await readdir(join(store.root, "tmp")), [], "the extracted part was removed");
  });

  test("FIFOs and devices in a base are never created by unpack, and the base imports", async (t) => {
    const dir = await tempDir(t, "kiln-hostile-");
    const layers = [await layerOf([{ name: "dev/evil", type: "character-device" }, { name: "run/fifo", type: "fifo" }, { name: "etc/motd", body: "hi" }])];
    const base = await materialize(dir, "oci-dir", layers);
    const store = openStore(join(dir, "store"));
    const imported = await resolveBase(base, ctx(store, dir));
    const digest = imported.digest;
    const rootfs = await unpackRootfs(store, digest);
    assert.equal(await lstat(join(rootfs, "dev/evil")).catch(() => undefined), undefined);
    assert.equal(await lstat(join(rootfs, "run/fifo")).catch(() => undefined), undefined);
    assert.ok((await lstat(join(rootfs, "etc/motd"))).isFile());
  });

  test("a docker-archive whose manifest has no Layers is a clean error, not a TypeError", async (t) => {
    const dir = await tempDir(t, "kiln-hostile-");
    await mkdir(join(dir, "src"));
    const files = dockerArchiveFiles([], [{ Config: "x.json", RepoTags: ["a:1"] }]);
    files.set("x.json", Buffer.from(JSON.stringify({ rootfs: { type: "layers", diff_ids: [] } })));
    await writeFile(join(dir, "src", "image.tar"), await tarOf(files));
    const store = openStore(join(dir, "store"));
    await assert.rejects(resolveBase(`docker-archive:${join(dir, "src", "image.tar")}`, ctx(store, dir)), kilnError("KILN_E_IMAGE", "Layers"));
  });

  test("a docker-archive whose Config is not a string, or whose config is not JSON, is a clean error", async (t) => {
    const dir = await tempDir(t, "kiln-hostile-");
    await mkdir(join(dir, "src"));
    for (const [i, [mf, config]] of ([
      [[{ Config: 42, Layers: [] }], "{}"],
      [[{ Config: "x.json", Layers: [] }], "not json"],
      [[{ Config: "x.json", Layers: [7] }], '{"rootfs":{"diff_ids":["sha256:00"]}}'],
    ] as const).entries()) {
      const files = new Map<string, Buffer>([["manifest.json", Buffer.from(JSON.stringify(mf))], ["x.json", Buffer.from(config)]]);
      await writeFile(join(dir, "src", `image${i}.tar`), await tarOf(files));
      const store = openStore(join(dir, "store"));
      await assert.rejects(resolveBase(`docker-archive:${join(dir, "src", `image${i}.tar`)}`, ctx(store, dir)), kilnError("KILN_E_IMAGE"));
    }
  });
});

describe("unpack refuses a hard link to a symlink", () => {
  test("the relative link would resolve outside the root from its new directory", async (t) => {
    const dir = await tempDir(t, "kiln-hostile-");
    const store = openStore(join(dir, "store"));
    const digest = await craftImage(store, [[{ name: "d/e/", type: "directory" }, { name: "d/e/l", type: "symlink", linkname: "../../x" }, { name: "top", type: "link", linkname: "d/e/l" }]]);
    await readImage(store, digest);
    await assert.rejects(unpackRootfs(store, digest), kilnError("KILN_E_UNSAFE", "hard link to the symlink"));
    assert.deepEqual(await readdir(store.rootfsRoot()), []);
  });
});

describe("layer caps", () => {
  const small: LayerLimits = { layerBytes: 1024 * 1024, layerEntries: 50, ratio: 200, ratioFloor: 64 * 1024 ** 2 };

  test("more entries than the cap is refused (at import and at unpack)", async (t) => {
    const dir = await tempDir(t, "kiln-hostile-");
    const store = openStore(join(dir, "store"));
    const entries = Array.from({ length: 60 }, (_, i) => ({ name: `f${i}`, body: "x" }));
    const digest = await craftImage(store, [entries]);
    const { manifest, config } = await readImage(store, digest);
    const layers = manifest.layers.map((d, i) => ({ descriptor: d, diffId: config.rootfs.diff_ids[i]! }));
    await assert.rejects(checkImageLayers(store, layers, "test", small), kilnError("KILN_E_UNSAFE", "entries"));
    await assert.rejects(unpackRootfs(store, digest, small), kilnError("KILN_E_UNSAFE", "entries"));
  });

  test("more decompressed bytes than the cap is refused (at import and at unpack)", async (t) => {
    const dir = await tempDir(t, "kiln-hostile-");
    const store = openStore(join(dir, "store"));
    const digest = await craftImage(store, [[{ name: "big", body: "y".repeat(2 * 1024 * 1024) }]]);
    const { manifest, config } = await readImage(store, digest);
    const layers = manifest.layers.map((d, i) => ({ descriptor: d, diffId: config.rootfs.diff_ids[i]! }));
    await assert.rejects(checkImageLayers(store, layers, "test", small), kilnError("KILN_E_UNSAFE", "more than"));
    await assert.rejects(unpackRootfs(store, digest, small), kilnError("KILN_E_UNSAFE", "more than"));
    assert.deepEqual(await readdir(store.rootfsRoot()), []);
  });
});

describe("LayerTree (the rules unpack applies, on a virtual tree)", () => {
  const rows: { name: string; entries: HostileEntry[]; error?: string }[] = [
    { name: "absolute symlink, then a write through it stays inside", entries: [{ name: "a", type: "symlink", linkname: "/etc" }, { name: "a/passwd", type: "file" }] },
    { name: "relative link inside the root", entries: [{ name: "x/y/l", type: "symlink", linkname: "../../z" }] },
    { name: "relative link climbing out", entries: [{ name: "x/y/l", type: "symlink", linkname: "../../../z" }], error: "escapes the root" },
    { name: "hard link to a file", entries: [{ name: "f", type: "file" }, { name: "g", type: "link", linkname: "f" }] },
    { name: "hard link through a symlinked directory to a symlink", entries: [{ name: "real/l", type: "symlink", linkname: "../f" }, { name: "via", type: "symlink", linkname: "real" }, { name: "h", type: "link", linkname: "via/l" }], error: "hard link to the symlink" },
    { name: "hard link to a directory", entries: [{ name: "d/", type: "directory" }, { name: "h", type: "link", linkname: "d" }], error: "hard link to directory" },
    { name: "a file below a file", entries: [{ name: "f", type: "file" }, { name: "f/g", type: "file" }], error: "is not a directory" },
    { name: "whited-out file is gone for a later hard link", entries: [{ name: "f", type: "file" }, { name: ".wh.f", type: "file" }, { name: "h", type: "link", linkname: "f" }], error: "does not exist" },
    { name: "a symlink loop", entries: [{ name: "a", type: "symlink", linkname: "b" }, { name: "b", type: "symlink", linkname: "a" }, { name: "a/x", type: "file" }], error: "too many levels" },
  ];
  for (const r of rows) {
    test(r.name, () => {
      const tree = new LayerTree();
      tree.startLayer();
      const run = () => {
        for (const e of r.entries) tree.apply("L", { name: e.name, type: e.type ?? "file", linkname: e.linkname });
      };
      if (r.error === undefined) run();
      else assert.throws(run, (e: Error) => e.message.includes(r.error!));
    });
  }
});

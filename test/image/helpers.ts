// Shared helpers for the image tests: temp dirs, the fixture app, a tiny base
// image (so most bakes avoid the ~100 MB node base), hand-crafted layers, and
// the "skip with a reason unless KILN_REQUIRE_ALL=1" rule for system tools.

import { execFile, spawnSync } from "node:child_process";
import { cp, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import type { TestContext } from "node:test";
import tar from "tar-stream";
import { canonicalBytes, sha256Digest } from "../../src/image/digest.js";
import { planLayer, writeLayer, type LayerEntry } from "../../src/image/layer.js";
import { openStore, type Store } from "../../src/image/store.js";
import { MEDIA_TYPE, type BakeRecipe, type OciImageConfig, type OciManifest } from "../../src/image/types.js";

export const execFileP = promisify(execFile);

/** test/fixtures/image (this file runs as dist/test/image/helpers.js) */
export const FIXTURES = fileURLToPath(new URL("../../../test/fixtures/image/", import.meta.url));

export async function tempDir(t: { after(fn: () => Promise<void> | void): void }, prefix = "kiln-image-"): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Copy the fixture app into `dest` (symlinks kept as symlinks). */
export async function copyFixtureApp(dest: string): Promise<void> {
  await cp(join(FIXTURES, "app"), dest, { recursive: true, verbatimSymlinks: true });
}

export function recipe(contextDir: string, base: string, overrides: Partial<BakeRecipe> = {}): BakeRecipe {
  return {
    name: "fixture",
    version: "1.0.0",
    contextDir,
    base,
    dependencies: [{ src: "deps", dest: "/app/node_modules" }],
    files: [
      { src: "server.js", dest: "/app/server.js" },
      { src: "package.json", dest: "/app/" },
      { src: "bin", dest: "/app/bin" },
      { src: "lib", dest: "/app/lib" },
    ],
    config: [{ src: "config/app.json", dest: "/etc/app/app.json", mode: "0640" }],
    workdir: "/app",
    env: { NODE_ENV: "production", GREETING: "hi" },
    entrypoint: ["/usr/local/bin/node"],
    cmd: ["/app/server.js"],
    user: "1000:1000",
    port: 8080,
    labels: { team: "platform" },
    ...overrides,
  };
}

function inline(path: string, text: string, mode = 0o644): LayerEntry {
  const data = Buffer.from(text);
  return { path, kind: "file", mode, file: { size: data.length, sha256: sha256Digest(data).slice(7), data } };
}

/**
 * A two-layer base image tagged "tiny:1" in an OCI layout at `root` (a kiln
 * store: the store is a plain OCI layout). Returns the `oci:` base spec.
 */
export async function buildTinyBase(root: string): Promise<{ spec: string; digest: string; store: Store }> {
  const store = openStore(root);
  const l1 = await writeLayer(store, planLayer([inline("etc/passwd", "root:x:0:0::/root:/bin/sh\n"), inline("bin/hello", "#!/bin/sh\necho hi\n", 0o755)]), 1_000_000);
  const l2 = await writeLayer(store, planLayer([inline("etc/motd", "tiny\n"), { path: "tmp", kind: "dir", mode: 0o1777 }]), 1_000_000);
  const config: OciImageConfig = {
    created: "1970-01-12T13:46:40Z",
    architecture: "amd64",
    os: "linux",
    config: { Env: ["PATH=/bin:/usr/bin", "BASE_VAR=1", "GREETING=base"], Cmd: ["/bin/hello"], Labels: { "base.label": "x" } },
    rootfs: { type: "layers", diff_ids: [l1.diffId, l2.diffId] },
    history: [{ created: "1970-01-12T13:46:40Z", created_by: "tiny 1" }, { created: "1970-01-12T13:46:40Z", created_by: "tiny 2" }],
  };
  const c = await store.putBlob(canonicalBytes(config));
  const manifest: OciManifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE.manifest,
    config: { mediaType: MEDIA_TYPE.config, ...c },
    layers: [l1.descriptor, l2.descriptor],
  };
  const m = await store.putBlob(canonicalBytes(manifest));
  await store.tag("tiny:1", { mediaType: MEDIA_TYPE.manifest, ...m });
  return { spec: `oci:${root}:tiny:1`, digest: m.digest, store };
}

export interface RawEntry {
  name: string;
  type?: "file" | "directory" | "symlink" | "link";
  body?: string;
  linkname?: string;
  mode?: number;
}

/** A raw tar (any names, no checks), as a malicious or unusual image would carry. */
export async function rawTar(entries: RawEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
  })();
  for (const e of entries) {
    const type = e.type ?? "file";
    const header = { name: e.name, type, mode: e.mode ?? (type === "directory" ? 0o755 : 0o644), mtime: new Date(0), ...(e.linkname !== undefined ? { linkname: e.linkname } : {}) };
    await new Promise<void>((res, rej) => {
      if (type === "file") pack.entry(header, e.body ?? "", (err) => (err ? rej(err) : res()));
      else pack.entry(header, (err) => (err ? rej(err) : res()));
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** Store an image whose layers are the given raw tars (gzipped); returns the manifest digest. */
export async function craftImage(store: Store, layers: RawEntry[][]): Promise<string> {
  const descs = [];
  const diffIds = [];
  for (const entries of layers) {
    const t = await rawTar(entries);
    diffIds.push(sha256Digest(t));
    const b = await store.putBlob(gzipSync(t));
    descs.push({ mediaType: MEDIA_TYPE.layerGzip, ...b });
  }
  const config: OciImageConfig = { architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: diffIds } };
  const c = await store.putBlob(canonicalBytes(config));
  const m = await store.putBlob(canonicalBytes({ schemaVersion: 2, mediaType: MEDIA_TYPE.manifest, config: { mediaType: MEDIA_TYPE.config, ...c }, layers: descs }));
  return m.digest;
}

export function hasCommand(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

/**
 * True when `cmd` is available. Otherwise skips the test with a printed reason,
 * or fails it when KILN_REQUIRE_ALL=1 (CI).
 */
export function need(t: TestContext, cmd: string): boolean {
  if (hasCommand(cmd)) return true;
  const reason = `${cmd} is not installed`;
  if (process.env.KILN_REQUIRE_ALL === "1") throw new Error(`${reason} (KILN_REQUIRE_ALL=1)`);
  console.log(`# skipped: ${reason}`);
  t.skip(reason);
  return false;
}

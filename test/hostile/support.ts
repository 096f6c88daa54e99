// Building hostile inputs in the test itself: raw tars with any entry type
// (FIFOs, devices, links anywhere), OCI layouts, oci-archives and
// docker-archives around them, gzip bombs streamed without holding them in
// memory, and a snapshot of a directory to prove nothing outside the store changed.

import { createHash } from "node:crypto";
import { lstat, mkdir, readdir, readlink, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { Readable } from "node:stream";
import { gzipSync, createGzip } from "node:zlib";
import tar from "tar-stream";
import { KilnError } from "../../src/errors.js";

export interface HostileEntry {
  name: string;
  type?: "file" | "directory" | "symlink" | "link" | "fifo" | "character-device" | "block-device";
  body?: string | Buffer;
  linkname?: string;
  mode?: number;
}

/** A tar with exactly these entries: no checks, any names. */
export async function hostileTar(entries: HostileEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
  })();
  for (const e of entries) {
    const type = e.type ?? "file";
    const header = {
      name: e.name,
      type,
      mode: e.mode ?? (type === "directory" ? 0o755 : 0o644),
      mtime: new Date(0),
      ...(e.linkname !== undefined ? { linkname: e.linkname } : {}),
      ...(type === "character-device" || type === "block-device" ? { devmajor: 1, devminor: 3 } : {}),
    };
    await new Promise<void>((res, rej) => {
      if (type === "file") pack.entry(header, e.body ?? "", (err) => (err ? rej(err) : res()));
      else pack.entry(header, (err) => (err ? rej(err) : res()));
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** A gzipped tar holding one file of `size` zero bytes, built as a stream (a decompression bomb). */
export async function gzipBomb(size: number): Promise<{ gz: Buffer; tarDigest: string }> {
  const pack = tar.pack();
  const gzip = createGzip({ level: 9 });
  const hash = createHash("sha256");
  const out: Buffer[] = [];
  const collected = (async () => {
    for await (const c of pack.pipe(gzip) as AsyncIterable<Buffer>) out.push(c);
  })();
  pack.on("data", (c: unknown) => void hash.update(c as Buffer));
  const zeros = Buffer.alloc(1024 * 1024);
  await new Promise<void>((res, rej) => {
    const sink = pack.entry({ name: "zeros", size, mode: 0o644, mtime: new Date(0) }, (err) => (err ? rej(err) : res()));
    Readable.from(
      (function* () {
        for (let left = size; left > 0; left -= zeros.length) yield left >= zeros.length ? zeros : zeros.subarray(0, left);
      })(),
    ).pipe(sink);
  });
  pack.finalize();
  await collected;
  return { gz: Buffer.concat(out), tarDigest: "sha256:" + hash.digest("hex") };
}

export function sha256(data: Buffer | string): string {
  return "sha256:" + createHash("sha256").update(data).digest("hex");
}

export interface LayoutLayer {
  /** the layer as stored (gzipped unless `gzip: false`) */
  blob: Buffer;
  diffId: string;
  gzip: boolean;
}

export async function layerOf(entries: HostileEntry[], opts: { gzip?: boolean; diffId?: string } = {}): Promise<LayoutLayer> {
  const t = await hostileTar(entries);
  const gzip = opts.gzip ?? true;
  return { blob: gzip ? gzipSync(t) : t, diffId: opts.diffId ?? sha256(t), gzip };
}

/** Files of an OCI image layout (path → bytes) holding one image tagged `tag`. */
export function ociLayoutFiles(layers: LayoutLayer[], tag = "1"): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  const blob = (b: Buffer) => {
    const d = sha256(b);
    files.set(`blobs/sha256/${d.slice(7)}`, b);
    return { digest: d, size: b.length };
  };
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", config: { User: "1000:1000" }, rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) } }));
  const c = blob(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", ...c },
      layers: layers.map((l) => ({ mediaType: l.gzip ? "application/vnd.oci.image.layer.v1.tar+gzip" : "application/vnd.oci.image.layer.v1.tar", ...blob(l.blob) })),
    }),
  );
  const m = blob(manifest);
  files.set("oci-layout", Buffer.from('{"imageLayoutVersion":"1.0.0"}'));
  files.set("index.json", Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", ...m, annotations: { "org.opencontainers.image.ref.name": tag } }] })));
  return files;
}

/** docker save's layout: manifest.json, the config, one uncompressed tar per layer. */
export function dockerArchiveFiles(layers: LayoutLayer[], manifestOverride?: unknown): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", config: { User: "1000:1000" }, rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) } }));
  const configName = `${sha256(config).slice(7)}.json`;
  files.set(configName, config);
  const names = layers.map((l, i) => {
    const name = `layer${i}/layer.tar`;
    files.set(name, l.blob);
    return name;
  });
  files.set("manifest.json", Buffer.from(JSON.stringify(manifestOverride ?? [{ Config: configName, RepoTags: ["hostile:1"], Layers: names }])));
  return files;
}

export async function writeTree(dir: string, files: Map<string, Buffer>): Promise<void> {
  for (const [name, data] of files) {
    await mkdir(join(dir, name, ".."), { recursive: true });
    await writeFile(join(dir, name), data);
  }
}

export async function tarOf(files: Map<string, Buffer>): Promise<Buffer> {
  return hostileTar([...files].map(([name, body]) => ({ name, body })));
}

/**
 * Every path under `dir` with its kind, size and link target, skipping `skip`
 * (the store): compared before and after, it proves nothing else changed.
 */
export async function snapshot(dir: string, skip: string[] = []): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const name of (await readdir(d)).sort()) {
      const p = join(d, name);
      if (skip.includes(p)) continue;
      const st = await lstat(p);
      const rel = relative(dir, p);
      if (st.isDirectory()) {
        out.push(`${rel}/`);
        await walk(p);
      } else if (st.isSymbolicLink()) out.push(`${rel} -> ${await readlink(p)}`);
      else out.push(`${rel} ${st.size} ${st.mode.toString(8)}`);
    }
  };
  await walk(dir);
  return out;
}

/** assert.rejects predicate: a KilnError with this code, and no other exception. */
export function kilnError(code: string, ...mentions: string[]): (e: unknown) => boolean {
  return (e) => {
    if (!(e instanceof KilnError)) throw new Error(`expected a KilnError ${code}, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    if (e.code !== code) throw new Error(`expected ${code}, got ${e.code}: ${e.message}`);
    for (const m of mentions) if (!e.message.includes(m)) throw new Error(`message does not mention ${m}: ${e.message}`);
    return true;
  };
}

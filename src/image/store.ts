// The content-addressed image store: a plain OCI image layout at $KILN_HOME
// (oci-layout, index.json, blobs/sha256/<hex>), so `skopeo inspect
// oci:$KILN_HOME:name:version` and `umoci` read it directly. Next to the
// layout, kiln keeps its own directories: cache/ (layer and base cache
// entries), rootfs/ (unpacked images), tmp/ (staging for atomic writes).
//
// Invariants:
// - a blob file only ever appears by rename() of a fully written, hashed and
//   fsynced temp file, so a reader never sees a partial blob;
// - every read verifies the content against the digest (KILN_E_UNSAFE);
// - index.json is only rewritten under the lock, via temp file + rename;
// - a tag (org.opencontainers.image.ref.name = "name:version") never moves.

import { createHash, randomBytes, type Hash } from "node:crypto";
import { constants, createReadStream } from "node:fs";
import { lstat, mkdir, open, readdir, readFile, rename, rm, stat, type FileHandle } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Transform, type Readable } from "node:stream";
import { KilnError } from "../errors.js";
import { canonicalJson, digestHex, isDigest } from "./digest.js";
import { withLock } from "./lock.js";
import { splitRef } from "./ref.js";
import { ANNOTATION, MEDIA_TYPE, type Descriptor, type OciIndex } from "./types.js";

export interface BlobWriter {
  write(chunk: Uint8Array): Promise<void>;
  /** Hash check (when expected is given), fsync, then rename into blobs/. */
  commit(expected?: { digest?: string; size?: number }): Promise<{ digest: string; size: number }>;
  abort(): Promise<void>;
}

export interface TaggedManifest {
  ref: string;
  name: string;
  version: string;
  descriptor: Descriptor;
}

export interface Store {
  readonly root: string;
  blobPath(digest: string): string;
  hasBlob(digest: string): Promise<boolean>;
  putBlob(data: Uint8Array): Promise<{ digest: string; size: number }>;
  createBlobWriter(): Promise<BlobWriter>;
  /** Whole blob in memory, verified. Missing → KILN_E_IMAGE, mismatch → KILN_E_UNSAFE. */
  readBlob(digest: string): Promise<Buffer>;
  readJsonBlob<T>(digest: string): Promise<T>;
  /** Stream of the blob that fails with KILN_E_UNSAFE at its end if the content does not match. */
  openBlob(digest: string): Readable;
  /** Re-hash a stored blob: resolves if intact, KILN_E_UNSAFE if not, KILN_E_IMAGE if missing. */
  verifyBlob(digest: string): Promise<void>;
  readIndex(): Promise<OciIndex>;
  listTags(): Promise<TaggedManifest[]>;
  lookupTag(ref: string): Promise<Descriptor | undefined>;
  /**
   * Point `ref` ("name:version") at a manifest. Same digest again is a no-op
   * ("exists"); another digest throws KILN_E_TAG_IMMUTABLE and leaves the index alone.
   */
  tag(ref: string, manifest: Descriptor): Promise<"created" | "exists">;
  cacheGet<T>(namespace: string, key: string): Promise<T | undefined>;
  cachePut(namespace: string, key: string, value: unknown): Promise<void>;
  /** A fresh path under <root>/tmp (same filesystem as blobs/, so rename is atomic). */
  tmpPath(label: string): string;
  /** <root>/rootfs */
  rootfsRoot(): string;
}

/**
 * The refusal of a tag that would move. `proposed` is the new manifest's digest, or a
 * sentence when the refusal comes before the image exists (bake's early check).
 */
export function tagImmutableError(ref: string, existing: string, proposed: string): KilnError {
  const parts = splitRef(ref);
  const other = proposed.startsWith("sha256:") ? `not ${proposed}` : proposed;
  return new KilnError("KILN_E_TAG_IMMUTABLE", `tag ${ref} already points to ${existing}, ${other}`, {
    hint: `tags never move: bump the version (e.g. ${parts ? `${parts.name}:<next version>` : "a new version"}) and bake again`,
    details: [{ where: ref, message: `existing ${existing}, new ${proposed.startsWith("sha256:") ? proposed : "(not baked)"}` }],
  });
}

const OCI_LAYOUT = '{"imageLayoutVersion":"1.0.0"}';

/**
 * A handle on the store at `root`. Synchronous and cheap: the layout is
 * created (or checked) on first use, by whichever method needs it.
 */
export function openStore(root: string): Store {
  return new OciStore(root);
}

class OciStore implements Store {
  readonly root: string;
  private initializing: Promise<void> | undefined;
  constructor(root: string) {
    this.root = root;
  }

  /** Create the layout once per handle; a failed attempt is retried by the next caller. */
  private ready(): Promise<void> {
    this.initializing ??= this.init().catch((e: unknown) => {
      this.initializing = undefined;
      throw new KilnError("KILN_E_IMAGE", `cannot open the image store at ${this.root}: ${(e as Error).message}`, { cause: e });
    });
    return this.initializing;
  }

  private async init(): Promise<void> {
    await mkdir(join(this.root, "blobs", "sha256"), { recursive: true });
    await mkdir(join(this.root, "tmp"), { recursive: true });
    await mkdir(join(this.root, "cache"), { recursive: true });
    await mkdir(join(this.root, "rootfs"), { recursive: true });
    await this.sweepTmp();
    const layoutPath = join(this.root, "oci-layout");
    const indexPath = join(this.root, "index.json");
    if (!(await exists(layoutPath))) await this.writeAtomic(layoutPath, OCI_LAYOUT);
    if (!(await exists(indexPath))) {
      await this.withIndexLock(async () => {
        if (!(await exists(indexPath))) await this.writeIndex({ schemaVersion: 2, mediaType: MEDIA_TYPE.index, manifests: [] });
      });
    }
  }

  /** Remove staging files a crashed process left behind (a day old: no live writer holds them). */
  private async sweepTmp(): Promise<void> {
    const dir = join(this.root, "tmp");
    const cutoff = Date.now() - 24 * 3600 * 1000;
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      const st = await lstat(join(dir, name)).catch(() => undefined);
      if (st && st.mtimeMs < cutoff) await rm(join(dir, name), { recursive: true, force: true });
    }
  }

  blobPath(digest: string): string {
    return join(this.root, "blobs", "sha256", digestHex(digest));
  }

  async hasBlob(digest: string): Promise<boolean> {
    return exists(this.blobPath(digest));
  }

  tmpPath(label: string): string {
    return join(this.root, "tmp", `${label}-${process.pid}-${randomBytes(6).toString("hex")}`);
  }

  rootfsRoot(): string {
    return join(this.root, "rootfs");
  }

  async putBlob(data: Uint8Array): Promise<{ digest: string; size: number }> {
    const w = await this.createBlobWriter();
    try {
      await w.write(data);
    } catch (e) {
      await w.abort();
      throw e;
    }
    return w.commit();
  }

  async createBlobWriter(): Promise<BlobWriter> {
    await this.ready();
    const tmp = this.tmpPath("blob");
    const fh = await open(tmp, "wx", 0o644);
    return new FileBlobWriter(this, tmp, fh);
  }

  async readBlob(digest: string): Promise<Buffer> {
    const path = this.blobPath(digest);
    let data: Buffer;
    try {
      data = await readFile(path);
    } catch (e) {
      throw missingBlob(digest, e);
    }
    const actual = "sha256:" + createHash("sha256").update(data).digest("hex");
    if (actual !== digest) throw corruptBlob(digest, actual, path);
    return data;
  }

  async readJsonBlob<T>(digest: string): Promise<T> {
    const data = await this.readBlob(digest);
    try {
      return JSON.parse(data.toString("utf8")) as T;
    } catch (e) {
      throw new KilnError("KILN_E_IMAGE", `blob ${digest} is not valid JSON`, { cause: e });
    }
  }

  openBlob(digest: string): Readable {
    const path = this.blobPath(digest);
    const hash = createHash("sha256");
    const verify = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        cb(null, chunk);
      },
      flush(cb) {
        const actual = "sha256:" + hash.digest("hex");
        cb(actual === digest ? null : corruptBlob(digest, actual, path));
      },
    });
    // 1 MiB reads: a layer blob is read in a few hundred chunks, not thousands.
    const source = createReadStream(path, { highWaterMark: 1024 * 1024 });
    source.on("error", (e) => verify.destroy(missingBlob(digest, e)));
    return source.pipe(verify);
  }

  async verifyBlob(digest: string): Promise<void> {
    for await (const _ of this.openBlob(digest)) {
      // drain: the stream itself checks the digest at its end
    }
  }

  async readIndex(): Promise<OciIndex> {
    await this.ready();
    const path = join(this.root, "index.json");
    let parsed: OciIndex;
    try {
      parsed = JSON.parse(await readFile(path, "utf8")) as OciIndex;
    } catch (e) {
      throw new KilnError("KILN_E_IMAGE", `cannot read the store index ${path}`, { cause: e });
    }
    if (!parsed || !Array.isArray(parsed.manifests)) {
      throw new KilnError("KILN_E_IMAGE", `the store index ${path} has no manifests list`);
    }
    return parsed;
  }

  async listTags(): Promise<TaggedManifest[]> {
    const index = await this.readIndex();
    const out: TaggedManifest[] = [];
    for (const d of index.manifests) {
      const ref = d.annotations?.[ANNOTATION.refName];
      const parts = ref === undefined ? undefined : splitRef(ref);
      if (ref !== undefined && parts) out.push({ ref, ...parts, descriptor: d });
    }
    return out;
  }

  async lookupTag(ref: string): Promise<Descriptor | undefined> {
    const index = await this.readIndex();
    return index.manifests.find((d) => d.annotations?.[ANNOTATION.refName] === ref);
  }

  async tag(ref: string, manifest: Descriptor): Promise<"created" | "exists"> {
    if (!isDigest(manifest.digest)) digestHex(manifest.digest); // throws
    await this.ready();
    if (!(await this.hasBlob(manifest.digest))) {
      throw new KilnError("KILN_E_IMAGE", `cannot tag ${ref}: manifest ${manifest.digest} is not in the store`);
    }
    return this.withIndexLock(async () => {
      await this.checkComplete(ref, manifest.digest);
      const index = await this.readIndex();
      const current = index.manifests.find((d) => d.annotations?.[ANNOTATION.refName] === ref);
      if (current) {
        if (current.digest === manifest.digest) return "exists";
        throw tagImmutableError(ref, current.digest, manifest.digest);
      }
      const entry: Descriptor = {
        mediaType: manifest.mediaType,
        digest: manifest.digest,
        size: manifest.size,
        annotations: { ...manifest.annotations, [ANNOTATION.refName]: ref },
      };
      if (manifest.platform) entry.platform = manifest.platform;
      index.manifests.push(entry);
      index.manifests.sort((a, b) => {
        const ra = a.annotations?.[ANNOTATION.refName] ?? "";
        const rb = b.annotations?.[ANNOTATION.refName] ?? "";
        return ra < rb ? -1 : ra > rb ? 1 : a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0;
      });
      await this.writeIndex(index);
      return "created";
    });
  }

  /**
   * Under the index lock: every blob the manifest names is present. `kiln gc` sweeps under
   * the same lock, so a bake that reused a cached layer gc has just removed fails here,
   * cleanly, instead of tagging an incomplete image (bake again: the layer is rebuilt).
   */
  private async checkComplete(ref: string, digest: string): Promise<void> {
    if (!(await this.hasBlob(digest))) {
      throw new KilnError("KILN_E_IMAGE", `cannot tag ${ref}: manifest ${digest} is not in the store (removed by a concurrent \`kiln gc\`?)`, { hint: "bake again" });
    }
    const doc = await this.readJsonBlob<{ config?: Descriptor; layers?: Descriptor[] }>(digest).catch(() => undefined);
    const needed = [doc?.config, ...(Array.isArray(doc?.layers) ? doc.layers : [])].filter((d): d is Descriptor => typeof d?.digest === "string" && isDigest(d.digest));
    for (const d of needed) {
      if (!(await this.hasBlob(d.digest))) {
        throw new KilnError("KILN_E_IMAGE", `cannot tag ${ref}: blob ${d.digest} it needs is not in the store (removed by a concurrent \`kiln gc\`?)`, {
          hint: "bake again: missing layers are rebuilt",
          details: [{ where: d.digest, message: "missing" }],
        });
      }
    }
  }

  async cacheGet<T>(namespace: string, key: string): Promise<T | undefined> {
    try {
      return JSON.parse(await readFile(this.cachePath(namespace, key), "utf8")) as T;
    } catch {
      return undefined; // missing or torn entry: a cache miss
    }
  }

  async cachePut(namespace: string, key: string, value: unknown): Promise<void> {
    await this.ready();
    const path = this.cachePath(namespace, key);
    await mkdir(join(this.root, "cache", namespace), { recursive: true });
    await this.writeAtomic(path, canonicalJson(value));
  }

  private cachePath(namespace: string, key: string): string {
    if (!/^[a-z0-9-]+$/.test(namespace) || !/^[0-9a-f]{16,128}$/.test(key)) {
      throw new KilnError("KILN_E_INTERNAL", `bad cache key ${namespace}/${key}`);
    }
    return join(this.root, "cache", namespace, `${key}.json`);
  }

  private withIndexLock<T>(fn: () => Promise<T>): Promise<T> {
    return withLock(join(this.root, "index.json.lock"), fn);
  }

  private async writeIndex(index: OciIndex): Promise<void> {
    await this.writeAtomic(join(this.root, "index.json"), JSON.stringify(index, null, 2) + "\n");
  }

  private async writeAtomic(path: string, content: string): Promise<void> {
    const tmp = this.tmpPath("write");
    const fh = await open(tmp, "wx", 0o644);
    try {
      await fh.writeFile(content);
      await fh.datasync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    await fsyncDir(dirname(path));
  }
}

/**
 * fsync a directory, so a rename or create in it survives a crash (the file's
 * own fsync does not cover its directory entry).
 */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

class FileBlobWriter implements BlobWriter {
  private readonly hash: Hash = createHash("sha256");
  private size = 0;
  private done = false;
  constructor(
    private readonly store: OciStore,
    private readonly tmp: string,
    private readonly fh: FileHandle,
  ) {}

  async write(chunk: Uint8Array): Promise<void> {
    this.hash.update(chunk);
    this.size += chunk.length;
    let off = 0;
    while (off < chunk.length) {
      const { bytesWritten } = await this.fh.write(chunk, off, chunk.length - off);
      off += bytesWritten;
    }
  }

  async commit(expected: { digest?: string; size?: number } = {}): Promise<{ digest: string; size: number }> {
    const digest = "sha256:" + this.hash.digest("hex");
    this.done = true;
    try {
      await this.fh.datasync();
    } finally {
      await this.fh.close();
    }
    if ((expected.digest !== undefined && expected.digest !== digest) || (expected.size !== undefined && expected.size !== this.size)) {
      await rm(this.tmp, { force: true });
      throw new KilnError("KILN_E_UNSAFE", `content does not match its digest: expected ${expected.digest ?? "?"} (${expected.size ?? "?"} bytes), got ${digest} (${this.size} bytes)`, {
        hint: "the source image is corrupt or was modified; re-export it from a trusted copy",
        details: [{ where: expected.digest ?? digest, message: "digest mismatch" }],
      });
    }
    // Same digest, same path: a blob that already exists is replaced by an
    // identical, freshly verified copy (this also heals a corrupted one).
    const path = this.store.blobPath(digest);
    await rename(this.tmp, path);
    await fsyncDir(dirname(path));
    return { digest, size: this.size };
  }

  async abort(): Promise<void> {
    if (!this.done) {
      this.done = true;
      await this.fh.close().catch(() => undefined);
    }
    await rm(this.tmp, { force: true });
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

function missingBlob(digest: string, cause: unknown): KilnError {
  return new KilnError("KILN_E_IMAGE", `blob ${digest} is missing from the store`, {
    cause,
    hint: "the store is incomplete; bake or import the image again",
  });
}

function corruptBlob(digest: string, actual: string, path: string): KilnError {
  return new KilnError("KILN_E_UNSAFE", `blob ${digest} does not match its content (got ${actual})`, {
    hint: `the store file ${path} was modified or corrupted; delete it and bake or import the image again`,
    details: [{ where: digest, message: `content hashes to ${actual}` }],
  });
}

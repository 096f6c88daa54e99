// Drift of an unpacked root filesystem (what the local provider's instances
// run from, read-only) against the image it was unpacked from: the layers are
// read again from the store (each blob verified by its digest as it streams)
// into the tree they describe, and the directory on disk is compared with it —
// file contents by sha256, link targets, entry types; modes are not compared
// (unpack normalizes them). compareTrees is pure.

import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { lstat, readdir, readlink } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import tar from "tar-stream";
import { digestHex } from "./digest.js";
import { readImage } from "./images.js";
import { entryComponents } from "./paths.js";
import type { Store } from "./store.js";
import { MEDIA_TYPE } from "./types.js";

export type TreeNode = { type: "file"; sha256: string } | { type: "dir" } | { type: "symlink"; target: string };

export interface DriftFinding {
  path: string;
  kind: "modified" | "missing" | "added" | "type-changed" | "link-changed";
  detail?: string;
}

/** Directories the unpacker adds as sandbox mount points; their content is never the image's. */
const MOUNT_POINTS = new Set(["dev", "proc", "sys", "tmp"]);

/**
 * What differs between the tree the image describes and the one on disk,
 * sorted by path. Paths under a mount point (dev, proc, sys, tmp) are ignored.
 *
 *   expected {a: file h1}, actual {a: file h2}           → [a modified]
 *   expected {a: file h1}, actual {}                     → [a missing]
 *   expected {},           actual {x: file h}            → [x added]
 *   expected {a: dir},     actual {a: file h}            → [a type-changed "dir → file"]
 *   expected {l → /x},     actual {l → /y}               → [l link-changed "/x → /y"]
 *   expected {tmp: dir},   actual {tmp: dir, tmp/s: file} → []
 */
export function compareTrees(expected: ReadonlyMap<string, TreeNode>, actual: ReadonlyMap<string, TreeNode>): DriftFinding[] {
  const out: DriftFinding[] = [];
  const ignored = (p: string) => MOUNT_POINTS.has(p.split("/")[0]!) && p.includes("/");
  for (const [path, want] of expected) {
    if (ignored(path)) continue;
    const got = actual.get(path);
    if (!got) out.push({ path, kind: "missing" });
    else if (got.type !== want.type) out.push({ path, kind: "type-changed", detail: `${want.type} → ${got.type}` });
    else if (want.type === "file" && got.type === "file" && want.sha256 !== got.sha256) out.push({ path, kind: "modified", detail: `sha256 ${want.sha256.slice(0, 12)}… → ${got.sha256.slice(0, 12)}…` });
    else if (want.type === "symlink" && got.type === "symlink" && want.target !== got.target) out.push({ path, kind: "link-changed", detail: `${want.target} → ${got.target}` });
  }
  for (const path of actual.keys()) if (!expected.has(path) && !ignored(path) && !MOUNT_POINTS.has(path)) out.push({ path, kind: "added" });
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** The tree an image's layers describe, whiteouts applied. */
export async function imageTree(store: Store, digest: string): Promise<Map<string, TreeNode>> {
  const { manifest } = await readImage(store, digest);
  const tree = new Map<string, TreeNode>();
  const removeUnder = (prefix: string) => {
    for (const k of [...tree.keys()]) if (k === prefix || k.startsWith(`${prefix}/`)) tree.delete(k);
  };
  for (const layer of manifest.layers) {
    const gz = layer.mediaType === MEDIA_TYPE.layerGzip || layer.mediaType === MEDIA_TYPE.dockerLayerGzip;
    const extract = tar.extract();
    const hardlinks: { path: string; target: string }[] = [];
    const consume = (async () => {
      for await (const entry of extract) {
        const parts = entryComponents(entry.header.name);
        const path = parts.join("/");
        const base = parts[parts.length - 1] ?? "";
        if (base === ".wh..wh..opq") {
          const dir = parts.slice(0, -1).join("/");
          for (const k of [...tree.keys()]) if (k.startsWith(`${dir}/`)) tree.delete(k);
          entry.resume();
          continue;
        }
        if (base.startsWith(".wh.")) {
          removeUnder([...parts.slice(0, -1), base.slice(4)].join("/"));
          entry.resume();
          continue;
        }
        if (path === "") {
          entry.resume();
          continue;
        }
        for (let i = 1; i < parts.length; i++) if (!tree.has(parts.slice(0, i).join("/"))) tree.set(parts.slice(0, i).join("/"), { type: "dir" });
        const t = entry.header.type;
        if (t === "file" || t === "contiguous-file") {
          const h = createHash("sha256");
          for await (const chunk of entry) h.update(chunk as Buffer);
          removeUnder(path);
          tree.set(path, { type: "file", sha256: h.digest("hex") });
          continue;
        }
        entry.resume();
        if (t === "directory") {
          if (tree.get(path)?.type !== "dir") removeUnder(path);
          tree.set(path, { type: "dir" });
        } else if (t === "symlink") {
          removeUnder(path);
          tree.set(path, { type: "symlink", target: entry.header.linkname ?? "" });
        } else if (t === "link") hardlinks.push({ path, target: entryComponents(entry.header.linkname ?? "").join("/") });
      }
    })();
    const source = store.openBlob(layer.digest);
    await Promise.all([gz ? pipeline(source, createGunzip(), extract) : pipeline(source, extract), consume]);
    for (const l of hardlinks) {
      const target = tree.get(l.target);
      if (target) tree.set(l.path, target);
    }
  }
  return tree;
}

/** The tree on disk under `root` (not following symlinks). */
export async function diskTree(root: string): Promise<Map<string, TreeNode>> {
  const tree = new Map<string, TreeNode>();
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const d of await readdir(dir, { withFileTypes: true })) {
      const p = rel === "" ? d.name : `${rel}/${d.name}`;
      const abs = join(dir, d.name);
      if (d.isDirectory()) {
        tree.set(p, { type: "dir" });
        if (!(MOUNT_POINTS.has(p))) await walk(abs, p);
      } else if (d.isSymbolicLink()) tree.set(p, { type: "symlink", target: await readlink(abs) });
      else if (d.isFile()) {
        const h = createHash("sha256");
        for await (const chunk of createReadStream(abs)) h.update(chunk as Buffer);
        tree.set(p, { type: "file", sha256: h.digest("hex") });
      } else tree.set(p, { type: "file", sha256: `not a regular file (${(await lstat(abs)).mode.toString(8)})` });
    }
  };
  await walk(root, "");
  return tree;
}

export interface RootfsDrift {
  digest: string;
  root: string;
  checked: number;
  findings: DriftFinding[];
}

/** Re-hash an unpacked root against its image. */
export async function verifyRootfs(store: Store, digest: string): Promise<RootfsDrift> {
  const root = join(store.rootfsRoot(), digestHex(digest));
  const expected = await imageTree(store, digest);
  const actual = await diskTree(root);
  return { digest, root, checked: expected.size, findings: compareTrees(expected, actual) };
}

/** The digests whose root is unpacked in the store (marker present). */
export async function unpackedDigests(store: Store): Promise<string[]> {
  const names = await readdir(store.rootfsRoot()).catch(() => [] as string[]);
  return names.filter((n) => /^[0-9a-f]{64}\.complete$/.test(n)).map((n) => `sha256:${n.slice(0, 64)}`).sort();
}

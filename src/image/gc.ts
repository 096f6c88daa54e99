// Garbage collection of the image store: mark from roots, sweep the rest.
//
// Roots are the caller's pins (digests with the reasons they must stay: the
// state's release window, live instances, rollback targets — computed outside
// image/, which knows nothing of releases), plus every tag unless pruneTags,
// plus index entries that carry no tag (an OCI index's entries are roots).
// Mark walks manifest → config + layers (and index → manifests); sweep
// removes unmarked blobs, the tags of unpinned images (pruneTags), cache
// entries naming removed blobs, unpacked rootfs trees of unpinned digests, and
// unpacked layer directories (layers/<diffid-hex>) that no kept image lists in
// its config's diff_ids. A rootfs tree is a hard-link farm over layer
// directories, so what a removal frees is counted per inode: a file still
// linked from a kept tree frees nothing.
//
// Safety against a concurrent bake:
// - the whole mark + sweep runs under the store's index lock (lock.ts), and
//   store.tag() checks, under the same lock, that everything the manifest
//   names is present; so a tag never names a blob this sweep removed;
// - an unmarked blob or rootfs written less than graceMs ago is kept: it may
//   belong to a bake (or an unpack) that has not tagged (or renamed) it yet.
// A crash mid-sweep leaves the index consistent (it is rewritten first,
// atomically) and at worst some unreachable blobs, removed by the next run.

import { lstat, open, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { KilnError, isKilnError } from "../errors.js";
import { isDigest } from "./digest.js";
import { withLock } from "./lock.js";
import { listReferrers } from "./referrers.js";
import type { Store } from "./store.js";
import { ANNOTATION, type Descriptor, type OciIndex } from "./types.js";
import { layerMarker, layersRoot, rootfsMarker } from "./unpack.js";

export interface GcPin {
  digest: string;
  /** why it must stay, e.g. "release r7 (live)", "instance web-r7-1a2b3c runs it" */
  reasons: string[];
}

export interface GcOptions {
  pins: GcPin[];
  /** remove tags whose image is not pinned (default: every tag is a root) */
  pruneTags?: boolean;
  /**
   * Images the sweep must leave whole (the state's keep window). Already pinned, so this is
   * a last check: a plan that would remove any of them is refused before anything is written.
   */
  protect?: GcPin[];
  /** plan only: nothing is written, no lock is taken */
  dryRun?: boolean;
  /** unreachable blobs and rootfs trees younger than this are kept (default 15 min) */
  graceMs?: number;
  /** epoch ms (default Date.now()) */
  now?: number;
}

export interface GcKeptImage {
  digest: string;
  refs: string[];
  reasons: string[];
}

export interface GcRemovedBlob {
  digest: string;
  size: number;
  /** "manifest" | "config" | "layer" | "blob" (unreachable, kind unknown) */
  kind: string;
}

export interface GcResult {
  schemaVersion: 1;
  dryRun: boolean;
  pruneTags: boolean;
  kept: GcKeptImage[];
  /** pinned digests that are not in the store (nothing gc can do: see `kiln doctor`) */
  missing: GcPin[];
  removedTags: { ref: string; digest: string }[];
  removedBlobs: GcRemovedBlob[];
  /** unreachable, but too recent to remove (a bake may be writing them) */
  recentBlobs: string[];
  removedRootfs: { digest: string; bytes: number }[];
  keptRootfs: { digest: string; reasons: string[] }[];
  /** unpacked layer directories removed (bytes: the files in it, each inode once) */
  removedLayers: { diffId: string; bytes: number }[];
  /** layer directories kept: the kept images using them, or "unpacked recently" */
  keptLayers: { diffId: string; reasons: string[] }[];
  removedCacheEntries: number;
  blobsBefore: { count: number; bytes: number };
  /** removed blobs + the files no longer linked from anywhere once the removed trees and layer directories are gone */
  bytesFreed: number;
}

const DEFAULT_GRACE_MS = 15 * 60 * 1000;
const HEX = /^[0-9a-f]{64}$/;

/** The lock store.tag() takes to rewrite index.json (see store.ts). */
export function storeLockPath(store: Store): string {
  return join(store.root, "index.json.lock");
}

export async function collectGarbage(store: Store, opts: GcOptions): Promise<GcResult> {
  await store.readIndex(); // creates the layout (under the lock) before we take the lock ourselves
  if (opts.dryRun) return run(store, opts);
  return withLock(storeLockPath(store), () => run(store, opts), { timeoutMs: 60_000 });
}

interface BlobFile {
  size: number;
  mtimeMs: number;
}

async function run(store: Store, opts: GcOptions): Promise<GcResult> {
  const now = opts.now ?? Date.now();
  const graceMs = opts.graceMs ?? DEFAULT_GRACE_MS;
  const pruneTags = opts.pruneTags ?? false;
  const dryRun = opts.dryRun ?? false;

  for (const p of opts.pins) {
    if (!isDigest(p.digest)) throw new KilnError("KILN_E_INTERNAL", `gc pin ${JSON.stringify(p.digest)} is not a digest`);
  }
  const pinned = new Map<string, string[]>();
  for (const p of opts.pins) pinned.set(p.digest, [...(pinned.get(p.digest) ?? []), ...p.reasons]);

  const index = await store.readIndex();
  const blobs = await listBlobs(store);

  // ---- roots
  const refsOf = new Map<string, string[]>();
  const keepEntries: Descriptor[] = [];
  const removedTags: GcResult["removedTags"] = [];
  for (const d of index.manifests) {
    const ref = d.annotations?.[ANNOTATION.refName];
    if (ref !== undefined) refsOf.set(d.digest, [...(refsOf.get(d.digest) ?? []), ref]);
    if (ref !== undefined && pruneTags && !pinned.has(d.digest)) removedTags.push({ ref, digest: d.digest });
    else keepEntries.push(d);
  }
  const roots = new Map<string, string[]>();
  for (const [digest, reasons] of pinned) roots.set(digest, [...reasons]);
  for (const d of keepEntries) {
    const ref = d.annotations?.[ANNOTATION.refName];
    roots.set(d.digest, [...(roots.get(d.digest) ?? []), ref !== undefined ? `tagged ${ref}` : "untagged index entry"]);
  }

  // ---- mark
  const marked = new Map<string, string>(); // digest → kind
  const configOf = new Map<string, string>(); // manifest → its config
  const missing: GcPin[] = [];
  for (const [digest, reasons] of roots) {
    if (!blobs.has(digest)) {
      missing.push({ digest, reasons });
      continue;
    }
    await mark(store, digest, "manifest", marked, blobs, configOf);
  }

  // ---- plan the sweep
  const removedBlobs: GcRemovedBlob[] = [];
  const recentBlobs: string[] = [];
  for (const [digest, f] of blobs) {
    if (marked.has(digest)) continue;
    if (now - f.mtimeMs < graceMs) recentBlobs.push(digest);
    else removedBlobs.push({ digest, size: f.size, kind: await guessKind(store, digest) });
  }
  const { remove: rootfsRemove, keep: keptRootfs } = await planRootfs(store, pinned, now, graceMs);
  const { remove: layerRemove, keep: keptLayers } = await planLayers(store, await layerUsers(store, configOf, refsOf), now, graceMs);
  const treeFreed = await freedBytes([...rootfsRemove.map((r) => join(store.rootfsRoot(), r.hex)), ...layerRemove.map((l) => join(layersRoot(store), l.hex))]);

  const kept: GcKeptImage[] = [...roots]
    .filter(([digest]) => blobs.has(digest))
    .map(([digest, reasons]) => ({ digest, refs: refsOf.get(digest) ?? [], reasons }))
    .sort((a, b) => (a.digest < b.digest ? -1 : 1));

  const doomedTags = new Set(removedTags.map((t) => t.digest));
  for (const p of opts.protect ?? []) {
    if (blobs.has(p.digest) && (!marked.has(p.digest) || doomedTags.has(p.digest))) {
      throw new KilnError("KILN_E_IMAGE", `gc refused: it would remove image ${p.digest}, which ${p.reasons.join("; ")} needs`, {
        hint: "this is a kiln bug (the image should have been pinned); nothing was removed",
        details: [{ where: p.digest, message: p.reasons.join("; ") }],
      });
    }
  }

  let removedCacheEntries = 0;
  const removedRootfs: GcResult["removedRootfs"] = [];
  const removedLayers: GcResult["removedLayers"] = [];
  if (!dryRun) {
    // Index first: once a tag is gone nothing can resolve to the blobs being removed.
    if (removedTags.length > 0) await writeIndex(store, { ...index, manifests: keepEntries });
    for (const b of removedBlobs) await rm(store.blobPath(b.digest), { force: true });
    removedCacheEntries = await sweepCache(store, new Set(removedBlobs.map((b) => b.digest)));
    for (const r of rootfsRemove) {
      // Renamed aside first: unpackRootfs treats an existing directory as complete, so a
      // half-deleted tree must never sit under rootfs/<hex>.
      const aside = store.tmpPath(`gc-rootfs-${r.hex.slice(0, 12)}`);
      // The marker goes first: a tree without it is never used, whatever happens next.
      await rm(rootfsMarker(store, r.hex), { force: true });
      try {
        await rename(join(store.rootfsRoot(), r.hex), aside);
      } catch {
        continue; // gone already
      }
      await rm(aside, { recursive: true, force: true });
      removedRootfs.push({ digest: `sha256:${r.hex}`, bytes: r.bytes });
    }
    for (const l of layerRemove) {
      // As for a rootfs: marker first, then out of the way, then deleted. A compose that
      // was reading the directory fails and removes its own temporary tree.
      const aside = store.tmpPath(`gc-layer-${l.hex.slice(0, 12)}`);
      await rm(layerMarker(store, l.hex), { force: true });
      try {
        await rename(join(layersRoot(store), l.hex), aside);
      } catch {
        continue;
      }
      await rm(aside, { recursive: true, force: true });
      removedLayers.push({ diffId: `sha256:${l.hex}`, bytes: l.bytes });
    }
  } else {
    for (const r of rootfsRemove) removedRootfs.push({ digest: `sha256:${r.hex}`, bytes: r.bytes });
    for (const l of layerRemove) removedLayers.push({ diffId: `sha256:${l.hex}`, bytes: l.bytes });
  }

  const blobBytes = [...blobs.values()].reduce((n, f) => n + f.size, 0);
  return {
    schemaVersion: 1,
    dryRun,
    pruneTags,
    kept,
    missing,
    removedTags,
    removedBlobs: removedBlobs.sort((a, b) => (a.digest < b.digest ? -1 : 1)),
    recentBlobs: recentBlobs.sort(),
    removedRootfs,
    keptRootfs,
    removedLayers,
    keptLayers,
    removedCacheEntries,
    blobsBefore: { count: blobs.size, bytes: blobBytes },
    bytesFreed: removedBlobs.reduce((n, b) => n + b.size, 0) + treeFreed,
  };
}

async function listBlobs(store: Store): Promise<Map<string, BlobFile>> {
  const dir = join(store.root, "blobs", "sha256");
  const out = new Map<string, BlobFile>();
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!HEX.test(name)) continue; // not a blob kiln wrote; never touched
    const st = await lstat(join(dir, name)).catch(() => undefined);
    if (st?.isFile()) out.set(`sha256:${name}`, { size: st.size, mtimeMs: st.mtimeMs });
  }
  return out;
}

/**
 * Mark a blob and what it references. Manifests and indexes are read verified: a corrupt
 * one would hide which layers it needs, so gc refuses rather than guess.
 */
async function mark(store: Store, digest: string, kind: string, marked: Map<string, string>, blobs: Map<string, BlobFile>, configOf: Map<string, string>): Promise<void> {
  if (marked.has(digest)) return;
  marked.set(digest, kind);
  if (kind !== "manifest" || !blobs.has(digest)) return;
  let doc: { config?: Descriptor; layers?: Descriptor[]; manifests?: Descriptor[] };
  try {
    doc = await store.readJsonBlob(digest);
  } catch (e) {
    if (isKilnError(e) && e.code === "KILN_E_UNSAFE") {
      throw new KilnError("KILN_E_IMAGE", `gc refused: the kept image ${digest} is corrupt, so the blobs it needs cannot be known`, {
        cause: e,
        hint: `${e.hint ?? "delete the corrupt blob and bake or import the image again"}; then run gc again`,
        details: [{ where: digest, message: "does not match its digest" }],
      });
    }
    return; // not JSON: a root that is not a manifest (nothing else to mark)
  }
  if (!doc || typeof doc !== "object") return;
  if (doc.config && typeof doc.config.digest === "string" && isDigest(doc.config.digest)) {
    marked.set(doc.config.digest, "config");
    configOf.set(digest, doc.config.digest);
  }
  for (const l of Array.isArray(doc.layers) ? doc.layers : []) {
    if (typeof l?.digest === "string" && isDigest(l.digest) && !marked.has(l.digest)) marked.set(l.digest, "layer");
  }
  for (const m of Array.isArray(doc.manifests) ? doc.manifests : []) {
    if (typeof m?.digest === "string" && isDigest(m.digest)) await mark(store, m.digest, "manifest", marked, blobs, configOf);
  }
  // Artifacts referring to a kept image (its SBOM) are kept with it (referrers.ts).
  for (const r of await listReferrers(store, digest)) await mark(store, r.digest, "manifest", marked, blobs, configOf);
}

/** For the report only: small JSON blobs are manifests or configs, the rest layers. */
async function guessKind(store: Store, digest: string): Promise<string> {
  const st = await stat(store.blobPath(digest)).catch(() => undefined);
  if (!st || st.size > 64 * 1024) return "layer";
  try {
    const doc = JSON.parse(await readFile(store.blobPath(digest), "utf8")) as Record<string, unknown>;
    if (doc.layers || doc.manifests) return "manifest";
    if (doc.rootfs) return "config";
    return "blob";
  } catch {
    return "layer";
  }
}

async function planRootfs(
  store: Store,
  pinned: Map<string, string[]>,
  now: number,
  graceMs: number,
): Promise<{ remove: { hex: string; bytes: number }[]; keep: { digest: string; reasons: string[] }[] }> {
  const remove: { hex: string; bytes: number }[] = [];
  const keep: { digest: string; reasons: string[] }[] = [];
  for (const name of (await readdir(store.rootfsRoot()).catch(() => [] as string[])).sort()) {
    if (!HEX.test(name)) continue;
    const path = join(store.rootfsRoot(), name);
    const st = await lstat(path).catch(() => undefined);
    if (!st?.isDirectory()) continue;
    const digest = `sha256:${name}`;
    const reasons = pinned.get(digest);
    // rename() (how an unpack publishes its tree) updates ctime, not mtime.
    if (reasons) keep.push({ digest, reasons });
    else if (now - Math.max(st.mtimeMs, st.ctimeMs) < graceMs) keep.push({ digest, reasons: ["unpacked recently"] });
    else remove.push({ hex: name, bytes: await treeBytes(path) });
  }
  return { remove, keep };
}

/**
 * The layer directories each kept image needs (diff_id hex → "image <ref or digest>"), or
 * undefined when a kept image's config cannot be read: then which layers it needs is
 * unknown and no layer directory is removed.
 */
async function layerUsers(store: Store, configOf: Map<string, string>, refsOf: Map<string, string[]>): Promise<Map<string, string[]> | undefined> {
  const users = new Map<string, string[]>();
  for (const [manifest, config] of [...configOf].sort(([a], [b]) => (a < b ? -1 : 1))) {
    let doc: { rootfs?: { diff_ids?: unknown } };
    try {
      doc = await store.readJsonBlob(config);
    } catch {
      return undefined;
    }
    const ids = Array.isArray(doc?.rootfs?.diff_ids) ? doc.rootfs.diff_ids : [];
    const who = `image ${(refsOf.get(manifest) ?? [manifest]).join(", ")}`;
    for (const id of ids) {
      if (typeof id !== "string" || !isDigest(id)) continue;
      const hex = id.slice(7);
      if (!(users.get(hex) ?? []).includes(who)) users.set(hex, [...(users.get(hex) ?? []), who]);
    }
  }
  return users;
}

async function planLayers(
  store: Store,
  users: Map<string, string[]> | undefined,
  now: number,
  graceMs: number,
): Promise<{ remove: { hex: string; bytes: number }[]; keep: { diffId: string; reasons: string[] }[] }> {
  const remove: { hex: string; bytes: number }[] = [];
  const keep: { diffId: string; reasons: string[] }[] = [];
  for (const name of (await readdir(layersRoot(store)).catch(() => [] as string[])).sort()) {
    if (!HEX.test(name)) continue;
    const path = join(layersRoot(store), name);
    const st = await lstat(path).catch(() => undefined);
    if (!st?.isDirectory()) continue;
    const diffId = `sha256:${name}`;
    const reasons = users === undefined ? ["a kept image's config is unreadable: the layers it needs are unknown"] : users.get(name);
    // A reused layer's marker is touched (unpack.ts): recent use counts as recent.
    const markerMs = (await lstat(layerMarker(store, name)).catch(() => undefined))?.mtimeMs ?? 0;
    if (reasons) keep.push({ diffId, reasons });
    else if (now - Math.max(st.mtimeMs, st.ctimeMs, markerMs) < graceMs) keep.push({ diffId, reasons: ["unpacked recently"] });
    else remove.push({ hex: name, bytes: await treeBytes(path) });
  }
  return { remove, keep };
}

/**
 * Bytes removing all of `dirs` gives back: a regular file counts when every one of its
 * links is inside them (a file of a removed layer directory still linked from a kept
 * rootfs tree frees nothing), each inode once.
 */
export async function freedBytes(dirs: string[]): Promise<number> {
  const inodes = new Map<string, { size: number; nlink: number; names: number }>();
  const stack = [...dirs];
  while (stack.length > 0) {
    const d = stack.pop()!;
    for (const n of await readdir(d).catch(() => [] as string[])) {
      const p = join(d, n);
      const st = await lstat(p).catch(() => undefined);
      if (!st) continue;
      if (st.isDirectory()) stack.push(p);
      else if (st.isFile()) {
        const key = `${st.dev}:${st.ino}`;
        const seen = inodes.get(key);
        if (seen) seen.names++;
        else inodes.set(key, { size: st.size, nlink: st.nlink, names: 1 });
      }
    }
  }
  let total = 0;
  for (const f of inodes.values()) if (f.names >= f.nlink) total += f.size;
  return total;
}

/** Bytes of the regular files under `dir`, each inode counted once (hard links). */
export async function treeBytes(dir: string): Promise<number> {
  const seen = new Set<string>();
  let total = 0;
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop()!;
    const names = await readdir(d).catch(() => [] as string[]);
    for (const n of names) {
      const p = join(d, n);
      const st = await lstat(p).catch(() => undefined);
      if (!st) continue;
      if (st.isDirectory()) stack.push(p);
      else if (st.isFile()) {
        const key = `${st.dev}:${st.ino}`;
        if (seen.has(key)) continue;
        seen.add(key);
        total += st.size;
      }
    }
  }
  return total;
}

/** Drop cache entries (layers, imported layers) whose blob this run removed. */
async function sweepCache(store: Store, removed: Set<string>): Promise<number> {
  if (removed.size === 0) return 0;
  const root = join(store.root, "cache");
  let n = 0;
  for (const ns of await readdir(root).catch(() => [] as string[])) {
    for (const name of await readdir(join(root, ns)).catch(() => [] as string[])) {
      if (!name.endsWith(".json")) continue;
      const path = join(root, ns, name);
      let entry: { descriptor?: { digest?: unknown } };
      try {
        entry = JSON.parse(await readFile(path, "utf8")) as typeof entry;
      } catch {
        continue;
      }
      const d = entry?.descriptor?.digest;
      if (typeof d === "string" && removed.has(d)) {
        await rm(path, { force: true });
        n++;
      }
    }
  }
  return n;
}

/** index.json via temp file + fsync + rename, as store.ts does it (the caller holds the lock). */
async function writeIndex(store: Store, index: OciIndex): Promise<void> {
  const tmp = store.tmpPath("gc-index");
  const fh = await open(tmp, "wx", 0o644);
  try {
    await fh.writeFile(JSON.stringify(index, null, 2) + "\n");
    await fh.datasync();
  } finally {
    await fh.close();
  }
  await rename(tmp, join(store.root, "index.json"));
}

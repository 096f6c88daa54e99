// Unpack an image for providers that run an instance on a read-only root
// (bubblewrap), in two steps:
// 1. each layer, keyed by its DiffID, is unpacked once into
//    <store>/layers/<diffid-hex>/ (marker <hex>.complete beside it). A layer's
//    whiteouts are kept in its directory as empty files with their tar names
//    (".wh.x", ".wh..wh..opq"): they mean something only against lower layers;
// 2. an image's root <store>/rootfs/<hex> is composed from its layer
//    directories, lowest first, as a hard-link farm: directories and symlinks
//    are made afresh, regular files are hard links to the layer's files (no
//    data copied), and each layer's whiteouts are applied before its entries.
// A deploy whose image changed only its app layer unpacks that layer alone
// and links the rest (overlayfs was the other choice: see docs/architecture.md).
//
// Safety: layers come from the store but may have been imported from anywhere,
// so every entry is checked before anything is written:
// - absolute names and ".." components are refused (KILN_E_UNSAFE, naming the
//   layer and the entry), as are symlinks whose target climbs above the root
//   and hard links that name a path outside it;
// - parent directories are resolved physically inside the layer directory
//   (symlinks followed with it as "/"), so a symlink planted earlier cannot
//   redirect a later write to the host;
// - an existing path is removed before a file is created with O_EXCL, so a
//   write never follows a symlink;
// - blob digests and diff_ids are verified while streaming; on any failure
//   the temporary tree is deleted and nothing is renamed into place.
// Composing follows no symlink at all: every directory of a layer directory is
// made a real directory in the root (a lower symlink in its place is replaced,
// as overlayfs hides it), and names are created only after whatever held them
// is removed; link() and symlink() never follow their new name.
//
// Files in layer directories are owned by root (when run as root), 0755 or
// 0644, and are shared by every root linked from them: an instance (user 1000,
// read-only root) can read them and write none. Directories are 0755.
// Empty /dev, /proc, /sys and /tmp are added when the image lacks them, as
// mount points for the sandbox.

import { constants as fsConstants } from "node:fs";
import { chmod, copyFile, link, lstat, mkdir, open, readdir, readlink, rename, rm, stat, symlink, utimes } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import tar from "tar-stream";
import { KilnError } from "../errors.js";
import { digestHex, isDigest } from "./digest.js";
import { readImage } from "./images.js";
import { withLock } from "./lock.js";
import { countingTap, LAYER_LIMITS, LayerMeter, settleTar, unsafeEntry, type LayerLimits } from "./layer-check.js";
import { compareBytes, entryComponents, resolveLinkTarget, unsafeEntryName } from "./paths.js";
import { fsyncDir, type Store } from "./store.js";
import { MEDIA_TYPE, type Descriptor } from "./types.js";

const MOUNT_POINTS = ["dev", "proc", "sys", "tmp"];
const WHITEOUT = ".wh.";
const OPAQUE = ".wh..wh..opq";
/**
 * Left in a layer directory's subdirectory that the layer's tar never named (it was made
 * only to hold a child). Such a directory follows a lower layer's symlink when composed,
 * as unpacking the tars in one tree did; a named one replaces the symlink. The ".wh..wh."
 * prefix is reserved for metadata, so no tar entry can carry this name.
 */
const IMPLICIT = ".wh..wh..kiln-implicit";

/** The marker beside rootfs/<hex> that says the tree is whole (written, fsynced, renamed into place). */
export function rootfsMarker(store: Store, hex: string): string {
  return join(store.rootfsRoot(), `${hex}.complete`);
}

/** <store>/layers: one directory per unpacked layer, named by its DiffID's hex. */
export function layersRoot(store: Store): string {
  return join(store.root, "layers");
}

/** The marker beside layers/<diffid-hex>, as for a rootfs. */
export function layerMarker(store: Store, hex: string): string {
  return join(layersRoot(store), `${hex}.complete`);
}

export async function unpackRootfs(store: Store, digest: string, limits: LayerLimits = LAYER_LIMITS): Promise<string> {
  const hex = digestHex(digest);
  const final = join(store.rootfsRoot(), hex);
  const marker = rootfsMarker(store, hex);
  if ((await isFile(marker)) && (await isDir(final))) return final;
  // One composer per digest: other processes wait on the lock file and then find the marker;
  // other launches in this process wait on the same promise (a lock file's poll backs off to
  // 100 ms, which a batch of launches of a new release would each pay).
  const key = `${final}\0${digest}`;
  let flight = composing.get(key);
  if (!flight) {
    flight = (async () => {
      await mkdir(store.rootfsRoot(), { recursive: true, mode: 0o755 });
      return withLock(join(store.rootfsRoot(), `${hex}.lock`), () => composeLocked(store, digest, hex, final, marker, limits), { timeoutMs: 30 * 60_000 });
    })().finally(() => composing.delete(key));
    composing.set(key, flight);
  }
  return flight;
}

/** Compositions under way in this process, by root directory and digest. */
const composing = new Map<string, Promise<string>>();

async function composeLocked(store: Store, digest: string, hex: string, final: string, marker: string, limits: LayerLimits): Promise<string> {
  if ((await isFile(marker)) && (await isDir(final))) return final;
  if ((await lstat(final).catch(() => undefined)) !== undefined) {
    // A tree without its marker was cut short (a crash between rename and marker, or a
    // partial copy): never used. Moved aside, not deleted at once — an instance started
    // by an older kiln may still run from it; the store's tmp sweep removes it later.
    await rename(final, store.tmpPath(`rootfs-incomplete-${hex.slice(0, 12)}`));
  }

  const { manifest, config } = await readImage(store, digest);
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== manifest.layers.length) {
    throw new KilnError("KILN_E_IMAGE", `${digest}: ${manifest.layers.length} layers but ${diffIds.length} diff_ids`);
  }
  const layerDirs: { dir: string; layer: string }[] = [];
  for (const [i, layer] of manifest.layers.entries()) layerDirs.push({ dir: await unpackLayer(store, layer, diffIds[i]!, limits), layer: layer.digest });

  const tmp = store.tmpPath(`rootfs-${hex.slice(0, 12)}`);
  await mkdir(tmp, { recursive: true, mode: 0o755 });
  try {
    for (const l of layerDirs) await composeLayer(tmp, l.dir, l.layer, [], [], new Set());
    // Mount points for a sandbox (bwrap --proc /proc --dev /dev --tmpfs /tmp)
    // must exist in a read-only root; images from elsewhere may lack them.
    for (const dir of MOUNT_POINTS) {
      if ((await lstat(join(tmp, dir)).catch(() => undefined)) === undefined) await mkdir(join(tmp, dir), { mode: 0o755 });
    }
    await chmod(tmp, 0o755);
    // The linked files were fsynced when their layer was unpacked; the new directory entries now.
    await syncDirs(tmp);
    await rename(tmp, final);
    await fsyncDir(store.rootfsRoot());
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  await writeMarker(marker, digest);
  await fsyncDir(store.rootfsRoot());
  return final;
}

/**
 * Unpack one layer into <store>/layers/<diffid-hex>, once: a later call (any process)
 * finds the marker. Returns the layer directory.
 */
export async function unpackLayer(store: Store, layer: Descriptor, diffId: string, limits: LayerLimits = LAYER_LIMITS): Promise<string> {
  if (!isDigest(diffId)) throw new KilnError("KILN_E_IMAGE", `layer ${layer.digest} has a malformed diff_id ${JSON.stringify(diffId)}`);
  const hex = digestHex(diffId);
  const final = join(layersRoot(store), hex);
  const marker = layerMarker(store, hex);
  if ((await isFile(marker)) && (await isDir(final))) return touched(final, marker);
  await mkdir(layersRoot(store), { recursive: true, mode: 0o755 });
  return withLock(
    join(layersRoot(store), `${hex}.lock`),
    async () => {
      if ((await isFile(marker)) && (await isDir(final))) return touched(final, marker);
      // Cut short (see composeLocked): never used, moved aside for the tmp sweep.
      if ((await lstat(final).catch(() => undefined)) !== undefined) await rename(final, store.tmpPath(`layer-incomplete-${hex.slice(0, 12)}`));
      const tmp = store.tmpPath(`layer-${hex.slice(0, 12)}`);
      await mkdir(tmp, { recursive: true, mode: 0o755 });
      try {
        await applyLayer(store, tmp, layer, diffId, limits);
        await chmod(tmp, 0o755);
        // Files were fsynced as they were written; their directory entries now, before the marker.
        await syncDirs(tmp);
        await rename(tmp, final);
        await fsyncDir(layersRoot(store));
      } catch (e) {
        await rm(tmp, { recursive: true, force: true });
        throw e;
      }
      await writeMarker(marker, diffId);
      await fsyncDir(layersRoot(store));
      return final;
    },
    { timeoutMs: 30 * 60_000 },
  );
}

/** A reused layer's marker gets a fresh mtime: gc's grace period then covers a compose in progress. */
async function touched(dir: string, marker: string): Promise<string> {
  const now = new Date();
  await utimes(marker, now, now).catch(() => undefined);
  return dir;
}

async function writeMarker(path: string, content: string): Promise<void> {
  const fh = await open(path, "w", 0o644);
  try {
    await fh.writeFile(`${content}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Link the layer directory's subtree `rel` into `root` at `at` (its physical path in
 * the root: `rel` itself unless an implicit directory followed a lower symlink). The
 * caller has made root/at a real directory. Whiteouts first (they hide lower layers'
 * entries, never this layer's: `created` holds what this layer made, for an opaque
 * directory reached twice through a symlink), then the entries in byte order.
 */
async function composeLayer(root: string, layerDir: string, layer: string, rel: string[], at: string[], created: Set<string>): Promise<void> {
  const here = join(layerDir, ...rel);
  const target = join(root, ...at);
  const dirents = (await readdir(here, { withFileTypes: true })).sort((x, y) => compareBytes(x.name, y.name));
  for (const d of dirents) {
    if (!d.name.startsWith(WHITEOUT) || d.name === IMPLICIT) continue;
    if (d.name === OPAQUE) {
      for (const child of await readdir(target)) {
        if (!created.has([...at, child].join("/"))) await rm(join(target, child), { recursive: true, force: true });
      }
    } else {
      await rm(join(target, d.name.slice(WHITEOUT.length)), { recursive: true, force: true });
    }
  }
  for (const d of dirents) {
    if (d.name.startsWith(WHITEOUT)) continue;
    const src = join(here, d.name);
    const abs = join(target, d.name);
    const entry = [...rel, d.name].join("/");
    if (d.isDirectory()) {
      let sub = [...at, d.name];
      const st = await lstat(abs).catch(() => undefined);
      if (st?.isSymbolicLink() && (await isFile(join(src, IMPLICIT)))) {
        // Resolved inside the root (symlinks followed with it as "/"), never on the host.
        sub = await resolveDir(root, sub, true, layer, entry);
      } else {
        if (st !== undefined && !st.isDirectory()) await removeExisting(abs);
        if (st === undefined || !st.isDirectory()) await mkdir(abs, { mode: 0o755 });
      }
      created.add(sub.join("/"));
      await composeLayer(root, layerDir, layer, [...rel, d.name], sub, created);
    } else if (d.isFile()) {
      await removeExisting(abs);
      await linkOrCopy(src, abs);
      created.add([...at, d.name].join("/"));
    } else if (d.isSymbolicLink()) {
      const linkTarget = await readlink(src);
      // Checked against the link's physical directory in the root, which may differ from
      // the one in the layer directory (see `at`).
      if (resolveLinkTarget(at, linkTarget) === undefined) throw unsafe(layer, entry, `symlink to ${linkTarget} escapes the root`);
      await removeExisting(abs);
      await symlink(linkTarget, abs);
      created.add([...at, d.name].join("/"));
    }
    // Nothing else is ever written to a layer directory.
  }
}

async function isFile(path: string): Promise<boolean> {
  return (await lstat(path).catch(() => undefined))?.isFile() === true;
}

/** fsync every directory of a tree (not following symlinks). */
async function syncDirs(root: string): Promise<void> {
  const stack = [root];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    for (const d of await readdir(dir, { withFileTypes: true })) if (d.isDirectory()) stack.push(join(dir, d.name));
    await fsyncDir(dir);
  }
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

const unsafe = unsafeEntry;

async function applyLayer(store: Store, root: string, layer: Descriptor, diffId: string, limits: LayerLimits): Promise<void> {
  let gz: boolean;
  if (layer.mediaType === MEDIA_TYPE.layerGzip || layer.mediaType === MEDIA_TYPE.dockerLayerGzip) gz = true;
  else if (layer.mediaType === MEDIA_TYPE.layerTar || layer.mediaType === MEDIA_TYPE.dockerLayerTar) gz = false;
  else throw new KilnError("KILN_E_IMAGE", `layer ${layer.digest} has unsupported media type ${layer.mediaType}`);

  let read = 0;
  const counter = countingTap((n) => (read += n));
  const meter = new LayerMeter(layer.digest, limits, () => (gz ? read : 0));
  const extract = tar.extract();
  const source = store.openBlob(layer.digest);
  const feed = gz ? pipeline(source, counter, createGunzip(), meter, extract) : pipeline(source, meter, extract);
  let entries = 0;
  const apply = async () => {
    for await (const entry of extract) {
      if (++entries > limits.layerEntries) {
        entry.resume();
        throw unsafe(layer.digest, entry.header.name, `more than ${limits.layerEntries} entries in one layer`);
      }
      await applyEntry(root, layer.digest, entry);
    }
  };
  const failed = await settleTar(feed, apply, extract, source);
  if (failed.length > 0) {
    // A corrupt blob usually breaks gunzip before its digest can be checked:
    // say "corrupt" (KILN_E_UNSAFE) rather than "bad gzip" when that is the cause.
    await store.verifyBlob(layer.digest);
    throw new KilnError("KILN_E_IMAGE", `cannot unpack layer ${layer.digest}: ${(failed[0] as Error).message}`, { cause: failed[0] });
  }
  const actual = "sha256:" + meter.hash.digest("hex");
  if (actual !== diffId) {
    throw new KilnError("KILN_E_UNSAFE", `layer ${layer.digest} does not match its diff_id ${diffId} (got ${actual})`, {
      hint: "the image is corrupt or was modified",
      details: [{ where: layer.digest, message: "diff_id mismatch" }],
    });
  }
}

/**
 * Resolve a directory path inside the root, following symlinks with the root
 * as "/", creating missing directories when `create`. Returns the physical
 * path as components relative to the root.
 */
async function resolveDir(root: string, parts: string[], create: boolean, layer: string, entry: string, onCreate?: (abs: string) => Promise<void>): Promise<string[]> {
  const cur: string[] = [];
  const queue = [...parts];
  let hops = 0;
  while (queue.length > 0) {
    const p = queue.shift()!;
    if (p === "" || p === ".") continue;
    if (p === "..") {
      if (cur.length === 0) throw unsafe(layer, entry, "path resolves above the root");
      cur.pop();
      continue;
    }
    const abs = join(root, ...cur, p);
    const st = await lstat(abs).catch(() => undefined);
    if (st === undefined) {
      if (!create) throw unsafe(layer, entry, `/${[...cur, p].join("/")} does not exist`);
      await mkdir(abs, { mode: 0o755 });
      await chmod(abs, 0o755);
      await onCreate?.(abs);
      cur.push(p);
    } else if (st.isSymbolicLink()) {
      if (++hops > 40) throw unsafe(layer, entry, "too many levels of symbolic links");
      const target = await readlink(abs);
      if (target.startsWith("/")) cur.length = 0;
      queue.unshift(...target.split("/"));
    } else if (st.isDirectory()) {
      cur.push(p);
    } else {
      throw new KilnError("KILN_E_IMAGE", `layer ${layer} entry ${JSON.stringify(entry)}: /${[...cur, p].join("/")} is not a directory`);
    }
  }
  return cur;
}

/**
 * A hard link; a copy (same mode) where the filesystem refuses one: rootfs/ moved to
 * another filesystem (EXDEV), or a file already at its link limit (EMLINK, ~65,000 on ext4).
 */
async function linkOrCopy(src: string, dest: string): Promise<void> {
  try {
    await link(src, dest);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== "EXDEV" && code !== "EMLINK") throw e;
    await copyFile(src, dest, fsConstants.COPYFILE_EXCL);
    await chmod(dest, (await stat(src)).mode & 0o777);
    const fh = await open(dest, "r");
    try {
      await fh.datasync();
    } finally {
      await fh.close();
    }
  }
}

async function markImplicit(dir: string): Promise<void> {
  const fh = await open(join(dir, IMPLICIT), "wx", 0o644);
  await fh.close();
}

async function removeExisting(abs: string): Promise<void> {
  const st = await lstat(abs).catch(() => undefined);
  if (st === undefined) return;
  // rm never follows symlinks: a link is removed, not its target.
  await rm(abs, { recursive: st.isDirectory(), force: true });
}

type TarEntry = AsyncIterable<unknown> & { header: tar.Header; resume(): unknown };

async function applyEntry(root: string, layer: string, entry: TarEntry): Promise<void> {
  const h = entry.header;
  const bad = unsafeEntryName(h.name);
  if (bad) {
    entry.resume();
    throw unsafe(layer, h.name, bad);
  }
  const parts = entryComponents(h.name);
  if (parts.length === 0) {
    entry.resume(); // the root itself ("./")
    return;
  }
  const leaf = parts[parts.length - 1]!;
  const parent = await resolveDir(root, parts.slice(0, -1), true, layer, h.name, markImplicit);
  const parentAbs = join(root, ...parent);

  if (leaf.startsWith(`${WHITEOUT}${WHITEOUT}`) && leaf !== OPAQUE) {
    entry.resume(); // metadata of other tools (aufs's .wh..wh.plnk), meaningless here
    return;
  }
  if (leaf.startsWith(WHITEOUT)) {
    // Kept as an empty file under its own name: it hides lower layers' entries when a
    // root is composed (composeLayer), and nothing of this layer.
    entry.resume();
    const victim = leaf.slice(WHITEOUT.length);
    if (leaf !== OPAQUE && (victim === "" || victim === "." || victim === "..")) throw unsafe(layer, h.name, "malformed whiteout");
    const abs = join(parentAbs, leaf);
    await removeExisting(abs);
    const fh = await open(abs, "wx", 0o644);
    await fh.close();
    return;
  }

  const abs = join(parentAbs, leaf);
  switch (h.type) {
    case "directory": {
      entry.resume();
      const st = await lstat(abs).catch(() => undefined);
      if (st !== undefined && !st.isDirectory()) await removeExisting(abs);
      if (st === undefined || !st.isDirectory()) await mkdir(abs, { mode: 0o755 });
      await chmod(abs, 0o755);
      await rm(join(abs, IMPLICIT), { force: true }); // named by the tar after all
      break;
    }
    case "file":
    case "contiguous-file": {
      await removeExisting(abs);
      const mode = (h.mode ?? 0) & 0o111 ? 0o755 : 0o644;
      const fh = await open(abs, "wx", mode);
      try {
        for await (const chunk of entry) await fh.write(chunk as Buffer);
        await fh.chmod(mode);
        await fh.datasync();
      } finally {
        await fh.close();
      }
      break;
    }
    case "symlink": {
      entry.resume();
      const target = h.linkname ?? "";
      if (target === "" || target.includes("\0")) throw unsafe(layer, h.name, "empty symlink target");
      if (resolveLinkTarget(parent, target) === undefined) throw unsafe(layer, h.name, `symlink to ${target} escapes the root`);
      await removeExisting(abs);
      await symlink(target, abs);
      break;
    }
    case "link": {
      entry.resume();
      const target = h.linkname ?? "";
      const badTarget = target === "" ? "empty link target" : unsafeEntryName(target);
      if (badTarget) throw unsafe(layer, h.name, `hard link to ${target}: ${badTarget}`);
      const tparts = entryComponents(target);
      if (tparts.length === 0) throw unsafe(layer, h.name, "hard link to the root");
      const tparent = await resolveDir(root, tparts.slice(0, -1), false, layer, h.name);
      const tabs = join(root, ...tparent, tparts[tparts.length - 1]!);
      const tst = await lstat(tabs).catch(() => undefined);
      if (tst === undefined) throw unsafe(layer, h.name, `hard link target ${target} does not exist`);
      if (tst.isDirectory()) throw unsafe(layer, h.name, `hard link to directory ${target}`);
      // A hard link to a symlink is a copy of the link in another directory: a relative
      // target that stayed inside the root from there may climb out of it from here.
      if (tst.isSymbolicLink()) throw unsafe(layer, h.name, `hard link to the symlink ${target}`);
      if (tabs === abs) break;
      await removeExisting(abs);
      await link(tabs, abs);
      break;
    }
    default:
      // Devices, fifos and the like have no place in an app image: skip them.
      entry.resume();
      return;
  }
}

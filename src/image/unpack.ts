// Unpack an image into <store>/rootfs/<hex>, once per digest, for providers
// that run an instance on a read-only root (bubblewrap).
//
// Safety: layers come from the store but may have been imported from anywhere,
// so every entry is checked before anything is written:
// - absolute names and ".." components are refused (KILN_E_UNSAFE, naming the
//   layer and the entry), as are symlinks whose target climbs above the root
//   and hard links that name a path outside it;
// - parent directories are resolved physically inside the root (symlinks
//   followed with the root as "/"), so a symlink planted by an earlier layer
//   cannot redirect a later write to the host;
// - an existing path is removed before a file is created with O_EXCL, so a
//   write never follows a symlink;
// - blob digests and diff_ids are verified while streaming; on any failure
//   the temporary tree is deleted and nothing is renamed into place.
//
// The result is owned by root (when run as root), directories 0755, files
// 0755 or 0644: readable by the instance's user (1000), writable by nobody else.
// Empty /dev, /proc, /sys and /tmp are added when the image lacks them, as
// mount points for the sandbox.

import { chmod, link, lstat, mkdir, open, readdir, readlink, rename, rm, stat, symlink } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import tar from "tar-stream";
import { KilnError } from "../errors.js";
import { digestHex } from "./digest.js";
import { readImage } from "./images.js";
import { withLock } from "./lock.js";
import { countingTap, LAYER_LIMITS, LayerMeter, settleTar, unsafeEntry, type LayerLimits } from "./layer-check.js";
import { entryComponents, resolveLinkTarget, unsafeEntryName } from "./paths.js";
import { fsyncDir, type Store } from "./store.js";
import { MEDIA_TYPE, type Descriptor } from "./types.js";

const MOUNT_POINTS = ["dev", "proc", "sys", "tmp"];

/** The marker beside rootfs/<hex> that says the tree is whole (written, fsynced, renamed into place). */
export function rootfsMarker(store: Store, hex: string): string {
  return join(store.rootfsRoot(), `${hex}.complete`);
}

export async function unpackRootfs(store: Store, digest: string, limits: LayerLimits = LAYER_LIMITS): Promise<string> {
  const hex = digestHex(digest);
  const final = join(store.rootfsRoot(), hex);
  const marker = rootfsMarker(store, hex);
  if ((await isFile(marker)) && (await isDir(final))) return final;
  await mkdir(store.rootfsRoot(), { recursive: true, mode: 0o755 });
  // One unpacker per digest: the others wait and then find the marker.
  return withLock(join(store.rootfsRoot(), `${hex}.lock`), () => unpackLocked(store, digest, hex, final, marker, limits), { timeoutMs: 30 * 60_000 });
}

async function unpackLocked(store: Store, digest: string, hex: string, final: string, marker: string, limits: LayerLimits): Promise<string> {
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
  const tmp = store.tmpPath(`rootfs-${hex.slice(0, 12)}`);
  await mkdir(tmp, { recursive: true, mode: 0o755 });
  try {
    for (const [i, layer] of manifest.layers.entries()) {
      await applyLayer(store, tmp, layer, diffIds[i]!, limits);
    }
    // Mount points for a sandbox (bwrap --proc /proc --dev /dev --tmpfs /tmp)
    // must exist in a read-only root; images from elsewhere may lack them.
    for (const dir of MOUNT_POINTS) {
      if ((await lstat(join(tmp, dir)).catch(() => undefined)) === undefined) await mkdir(join(tmp, dir), { mode: 0o755 });
    }
    await chmod(tmp, 0o755);
    // Files were fsynced as they were written; their directory entries now, before the marker.
    await syncDirs(tmp);
    await rename(tmp, final);
    await fsyncDir(store.rootfsRoot());
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  const fh = await open(marker, "w", 0o644);
  try {
    await fh.writeFile(`${digest}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fsyncDir(store.rootfsRoot());
  return final;
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
  const created = new Set<string>();
  let entries = 0;
  const apply = async () => {
    for await (const entry of extract) {
      if (++entries > limits.layerEntries) {
        entry.resume();
        throw unsafe(layer.digest, entry.header.name, `more than ${limits.layerEntries} entries in one layer`);
      }
      await applyEntry(root, layer.digest, entry, created);
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
async function resolveDir(root: string, parts: string[], create: boolean, layer: string, entry: string): Promise<string[]> {
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

async function removeExisting(abs: string): Promise<void> {
  const st = await lstat(abs).catch(() => undefined);
  if (st === undefined) return;
  // rm never follows symlinks: a link is removed, not its target.
  await rm(abs, { recursive: st.isDirectory(), force: true });
}

type TarEntry = AsyncIterable<unknown> & { header: tar.Header; resume(): unknown };

async function applyEntry(root: string, layer: string, entry: TarEntry, created: Set<string>): Promise<void> {
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
  const parent = await resolveDir(root, parts.slice(0, -1), true, layer, h.name);
  const parentAbs = join(root, ...parent);

  if (leaf.startsWith(".wh.")) {
    entry.resume();
    if (leaf === ".wh..wh..opq") {
      // Opaque directory: hide everything lower layers put here.
      for (const child of await readdir(parentAbs)) {
        if (!created.has([...parent, child].join("/"))) await rm(join(parentAbs, child), { recursive: true, force: true });
      }
    } else {
      const victim = leaf.slice(4);
      if (victim === "" || victim === "." || victim === "..") throw unsafe(layer, h.name, "malformed whiteout");
      await rm(join(parentAbs, victim), { recursive: true, force: true });
    }
    return;
  }

  const rel = [...parent, leaf];
  const abs = join(parentAbs, leaf);
  switch (h.type) {
    case "directory": {
      entry.resume();
      const st = await lstat(abs).catch(() => undefined);
      if (st !== undefined && !st.isDirectory()) await removeExisting(abs);
      if (st === undefined || !st.isDirectory()) await mkdir(abs, { mode: 0o755 });
      await chmod(abs, 0o755);
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
  created.add(rel.join("/"));
}

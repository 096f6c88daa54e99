// What an instance sees as its filesystem, as data. Pure: the image is read
// through the small `ImageTree` interface, so tests use a literal tree.
//
// Why not simply `--ro-bind ROOTFS /`? A read-only root cannot grow the
// mount points the sandbox needs (/proc, /dev, /tmp, every declared volume
// path), and an image baked from a few files usually has none of them. So the
// instance root is a fresh tmpfs, made read-only at the end, holding one
// read-only bind per entry of the image root (and a symlink per symlink).
// A directory on the way to a mount point (/var for a volume at
// /var/lib/app) is "synthesized" the same way: an empty directory on the
// tmpfs plus one bind per entry of the image's /var. The image directory
// itself is never written to.
//
// Example: image root {app/, etc/, lib -> usr/lib, usr/}, volume data at /data:
//   image /app → /app, image /etc → /etc, symlink usr/lib → /lib,
//   image /usr → /usr, proc /proc, dev /dev, tmp /tmp, volume data → /data
// Example: same image, volume cache at /var/cache/app, image /var = {log/}:
//   …, dir /var, image /var/log → /var/log, dir /var/cache, …, volume cache → /var/cache/app

import { posix } from "node:path";
import type { VolumeMount } from "../provider.js";

export type EntryKind = "dir" | "file" | "symlink" | "other";

export interface TreeEntry {
  name: string;
  kind: EntryKind;
  /** for symlinks: what the link says (not resolved) */
  linkTarget?: string;
}

export interface ImageTree {
  /** entries of a directory inside the image ("/", "/var"); undefined when it is not a directory */
  list(dir: string): TreeEntry[] | undefined;
  /** what the path is inside the image, without following a final symlink */
  kind(path: string): EntryKind | "missing";
}

export type PlannedMount =
  /** an empty directory created on the (tmpfs) instance root */
  | { kind: "dir"; target: string }
  /** read-only bind of the image's own entry at the same path */
  | { kind: "image"; target: string; isDir: boolean }
  | { kind: "symlink"; target: string; linkTarget: string }
  | { kind: "proc"; target: "/proc" }
  | { kind: "dev"; target: "/dev" }
  | { kind: "tmp"; target: "/tmp" }
  /** read-write bind of the declared volume's host directory */
  | { kind: "volume"; target: string; name: string };

export type MountPlan =
  | { ok: true; mounts: PlannedMount[] }
  | { ok: false; reason: string; hint: string };

const SYSTEM_TARGETS = ["/proc", "/dev", "/tmp"] as const;

/** Checks one declared volume path; returns a reason when it cannot be mounted. */
export function checkVolumePath(path: string): string | undefined {
  if (!path.startsWith("/")) return `volume path "${path}" is not absolute`;
  if (posix.normalize(path) !== path || (path.length > 1 && path.endsWith("/")))
    return `volume path "${path}" is not normalized (expected "${posix.normalize(path).replace(/\/$/, "") || "/"}")`;
  if (path === "/") return `a volume cannot be mounted at "/"`;
  for (const sys of SYSTEM_TARGETS) {
    if (path === sys || path.startsWith(sys + "/"))
      return `volume path "${path}" is inside ${sys}, which the sandbox provides itself`;
  }
  return undefined;
}

export function planMounts(tree: ImageTree, volumes: readonly VolumeMount[]): MountPlan {
  const seen = new Set<string>();
  for (const v of volumes) {
    const bad = checkVolumePath(v.path);
    if (bad) return { ok: false, reason: bad, hint: `fix volumes[name=${v.name}].path in kiln.yaml` };
    if (seen.has(v.path))
      return { ok: false, reason: `two volumes are mounted at ${v.path}`, hint: "give every volume its own path" };
    seen.add(v.path);
  }
  for (const a of volumes) {
    for (const b of volumes) {
      if (a !== b && b.path.startsWith(a.path + "/"))
        return {
          ok: false,
          reason: `volume ${b.name} (${b.path}) is nested inside volume ${a.name} (${a.path})`,
          hint: "mount volumes at sibling paths",
        };
    }
  }

  const targets = new Set<string>([...SYSTEM_TARGETS, ...volumes.map((v) => v.path)]);
  // Every proper ancestor of a mount target is synthesized (see the header).
  const synth = new Set<string>(["/"]);
  for (const t of targets) {
    for (let d = posix.dirname(t); d !== "/"; d = posix.dirname(d)) synth.add(d);
  }
  for (const d of synth) {
    if (d === "/") continue;
    const k = tree.kind(d);
    if (k !== "dir" && k !== "missing")
      return {
        ok: false,
        reason: `a volume path crosses ${d}, which is a ${k} in the image`,
        hint: `choose a volume path whose parent directories are real directories in the image`,
      };
  }

  const mounts: PlannedMount[] = [];
  const walk = (dir: string): void => {
    const entries = [...(tree.list(dir) ?? [])].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const p = posix.join(dir, e.name);
      if (synth.has(p) || targets.has(p)) continue; // replaced below
      if (e.kind === "dir" || e.kind === "file") mounts.push({ kind: "image", target: p, isDir: e.kind === "dir" });
      else if (e.kind === "symlink" && e.linkTarget !== undefined)
        mounts.push({ kind: "symlink", target: p, linkTarget: e.linkTarget });
      // sockets, fifos and device nodes in an image are not carried over
    }
    const children = [...synth].filter((d) => d !== "/" && posix.dirname(d) === dir).sort();
    for (const c of children) {
      mounts.push({ kind: "dir", target: c });
      walk(c);
    }
  };
  walk("/");

  mounts.push({ kind: "proc", target: "/proc" }, { kind: "dev", target: "/dev" }, { kind: "tmp", target: "/tmp" });
  const byDepth = [...volumes].sort((a, b) => a.path.split("/").length - b.path.split("/").length || (a.path < b.path ? -1 : 1));
  for (const v of byDepth) mounts.push({ kind: "volume", target: v.path, name: v.name });
  return { ok: true, mounts };
}

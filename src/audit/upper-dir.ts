// An overlayfs upper directory read as a list of changes against its lower (the
// pristine image root): the same facts `docker diff` reports for a container.
//   a character device 0/0 (a "whiteout")     → deleted
//   an entry the lower does not have          → created (a directory: its entries follow)
//   an entry the lower has                    → modified (copied up to be written)
// Known gap: an opaque directory (deleted, then created again) hides its lower
// entries without whiteouts; those deletions are not listed, the directory is.
//
// Also the cheap "was this state needed after the restart?" probe: before the
// restart, the atime of each written file is set an hour behind its mtime; with
// relatime (or strictatime) the first read after that moves it, and writes never do.

import { lstat, readdir, stat, utimes } from "node:fs/promises";
import { join } from "node:path";
import type { PathChange } from "./types.js";

const MAX_ENTRIES = 200_000;

export async function upperDirChanges(upper: string, lower: string): Promise<PathChange[]> {
  const out: PathChange[] = [];
  const walk = async (dir: string): Promise<void> => {
    let names: string[];
    try {
      names = (await readdir(join(upper, dir))).sort();
    } catch {
      return;
    }
    for (const name of names) {
      if (out.length >= MAX_ENTRIES) return;
      const path = dir === "/" ? `/${name}` : `${dir}/${name}`;
      const st = await lstat(join(upper, path)).catch(() => undefined);
      if (!st) continue;
      const below = await lstat(join(lower, path)).catch(() => undefined);
      if (st.isCharacterDevice() && st.rdev === 0) {
        out.push({ path, change: "deleted", isDir: below?.isDirectory() ?? false });
        continue;
      }
      out.push({ path, change: below ? "modified" : "created", isDir: st.isDirectory() });
      if (st.isDirectory()) await walk(path);
    }
  };
  await walk("/");
  return out;
}

const HOUR_MS = 3600_000;

/** Marks files (host paths) so that a later read shows; returns the atime set on each. */
export async function markUnread(files: readonly string[]): Promise<Map<string, number>> {
  const marks = new Map<string, number>();
  for (const f of files) {
    try {
      const st = await stat(f);
      if (!st.isFile()) continue;
      const atimeMs = Math.floor(st.mtimeMs) - HOUR_MS;
      await utimes(f, atimeMs / 1000, st.mtime);
      marks.set(f, (await stat(f)).atimeMs);
    } catch {
      // gone: nothing to mark
    }
  }
  return marks;
}

/** The marked files whose atime moved since `markUnread`: they were read. */
export async function readSinceMark(marks: ReadonlyMap<string, number>): Promise<string[]> {
  const out: string[] = [];
  for (const [f, atimeMs] of marks) {
    const st = await stat(f).catch(() => undefined);
    if (st && Math.abs(st.atimeMs - atimeMs) > 1) out.push(f);
  }
  return out;
}

// `ImageTree` over an unpacked image directory on the host. Paths are image
// paths ("/var/lib"); every component is lstat'ed, so a symlink in the image
// is reported as a symlink and never followed out onto the host.

import { lstatSync, readdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import type { EntryKind, ImageTree, TreeEntry } from "./mount-plan.js";

function kindOf(st: { isDirectory(): boolean; isFile(): boolean; isSymbolicLink(): boolean }): EntryKind {
  if (st.isSymbolicLink()) return "symlink";
  if (st.isDirectory()) return "dir";
  if (st.isFile()) return "file";
  return "other";
}

export function fsImageTree(rootfs: string): ImageTree {
  const kind = (path: string): EntryKind | "missing" => {
    const parts = path.split("/").filter(Boolean);
    let host = rootfs;
    for (let i = 0; i < parts.length; i++) {
      host = join(host, parts[i] as string);
      let k: EntryKind;
      try {
        k = kindOf(lstatSync(host));
      } catch {
        return "missing";
      }
      if (i === parts.length - 1) return k;
      if (k !== "dir") return k; // an ancestor that is not a real directory decides
    }
    return "dir"; // "/"
  };
  return {
    kind,
    list(dir: string): TreeEntry[] | undefined {
      if (kind(dir) !== "dir") return undefined;
      const host = join(rootfs, dir);
      return readdirSync(host, { withFileTypes: true }).map((d) => {
        const k = kindOf(d);
        return k === "symlink" ? { name: d.name, kind: k, linkTarget: readlinkSync(join(host, d.name)) } : { name: d.name, kind: k };
      });
    },
  };
}

// Reading a file of the image (the user database) goes through the image module's
// confined reader, shared with `kiln audit`.
export { readImageFile } from "../../image/rootfs-file.js";

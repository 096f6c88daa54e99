// Host-side reads of files inside an unpacked image, confined to its rootfs.

import { closeSync, constants, fstatSync, lstatSync, openSync, readlinkSync, readSync } from "node:fs";
import { join } from "node:path";
import { KilnError } from "../errors.js";

/** /etc/passwd and friends are a few KiB; more than this is not a database kiln will parse. */
export const IMAGE_FILE_MAX_BYTES = 4 * 1024 * 1024;

/**
 * Read a small file of an unpacked image from the host side, confined to the
 * rootfs: symlinks are resolved with the rootfs as "/" (so "/tmp/fifo" or
 * "../../../etc/shadow" name paths inside the image, never the host's), the
 * result must be a regular file no larger than `maxBytes`, and it is opened
 * with O_NOFOLLOW|O_NONBLOCK so a FIFO swapped in cannot block the caller.
 * Returns undefined when the file does not exist; throws KILN_E_UNSAFE when
 * it is something other than a small regular file.
 */
export function readImageFile(rootfs: string, imagePath: string, maxBytes = IMAGE_FILE_MAX_BYTES): string | undefined {
  const refuse = (why: string) =>
    new KilnError("KILN_E_UNSAFE", `the image's ${imagePath} ${why}`, {
      hint: "the image is malformed or hostile; re-bake it from a trusted base",
      details: [{ where: imagePath, message: why }],
    });
  const cur: string[] = [];
  const queue = imagePath.split("/");
  let hops = 0;
  while (queue.length > 0) {
    const p = queue.shift()!;
    if (p === "" || p === ".") continue;
    if (p === "..") {
      cur.pop(); // ".." at the root stays at the root, as in a chroot
      continue;
    }
    let st;
    try {
      st = lstatSync(join(rootfs, ...cur, p));
    } catch {
      return undefined;
    }
    if (st.isSymbolicLink()) {
      if (++hops > 40) throw refuse("is a symlink loop");
      const target = readlinkSync(join(rootfs, ...cur, p));
      if (target.startsWith("/")) cur.length = 0;
      queue.unshift(...target.split("/"));
      continue;
    }
    if (queue.some((q) => q !== "" && q !== ".") && !st.isDirectory()) return undefined;
    cur.push(p);
  }
  const host = join(rootfs, ...cur);
  let fd: number;
  try {
    fd = openSync(host, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw refuse(`cannot be opened (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw refuse("is not a regular file");
    if (st.size > maxBytes) throw refuse(`is ${st.size} bytes, more than ${maxBytes}`);
    const buf = Buffer.alloc(st.size + 1);
    let n = 0;
    for (;;) {
      const r = readSync(fd, buf, n, buf.length - n, null);
      if (r === 0) break;
      n += r;
      if (n > st.size) throw refuse(`grew past ${st.size} bytes while it was read`);
    }
    return buf.subarray(0, n).toString("utf8");
  } finally {
    closeSync(fd);
  }
}

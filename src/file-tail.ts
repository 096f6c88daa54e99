// The end of a log file, for error messages: read from its last bytes only (an instance's log
// may be 32 MiB), never the whole file.

import { closeSync, fstatSync, openSync, readSync } from "node:fs";

/** The last `n` lines of `file` (trailing blank lines dropped), from its last `maxBytes`; [] when it cannot be read. */
export function tailLines(file: string, n: number, maxBytes = 64 * 1024): string[] {
  let fd: number | undefined;
  try {
    fd = openSync(file, "r");
    const size = fstatSync(fd).size;
    const len = Math.min(size, maxBytes);
    const buf = Buffer.alloc(len);
    readSync(fd, buf, 0, len, size - len);
    return buf.toString("utf8").trimEnd().split("\n").slice(-n);
  } catch {
    return [];
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

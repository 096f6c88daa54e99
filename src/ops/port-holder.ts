// Who holds a TCP port, when /proc tells: named in the "address already in use" error so the
// user knows what to stop. Linux only, and only processes this user may look into (others'
// fds are unreadable); anything else answers "unknown", never an error.

import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";

export interface PortHolder {
  pid: number;
  /** its command line, spaces between arguments, cut to 120 characters */
  command: string;
}

const LISTEN = "0A";

/**
 * The socket inodes listening on `port` in a /proc/net/tcp or tcp6 table. Examples:
 * - "0: 0100007F:3039 00000000:0000 0A … 4500299 …", port 12345 → ["4500299"] (127.0.0.1:12345, LISTEN)
 * - the same line, port 8080 → [] (another port)
 * - "1: 0100007F:3039 0100007F:9C40 01 … 4500300 …", port 12345 → [] (an established connection, not a listener)
 * - a tcp6 line "00000000000000000000000000000000:3039 … 0A … 77 …", port 12345 → ["77"]
 * - the header line or an empty text → []
 */
export function listeningInodes(table: string, port: number): string[] {
  const out: string[] = [];
  for (const line of table.split("\n")) {
    const f = line.trim().split(/\s+/);
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
    if (f.length < 10 || !/^\d+:$/.test(f[0]!)) continue;
    const localPort = Number.parseInt(f[1]!.split(":")[1] ?? "", 16);
    if (localPort === port && f[3] === LISTEN && f[9] !== "0") out.push(f[9]!);
  }
  return out;
}

/** The first process found with a listening socket on `port`, or undefined when /proc does not say. */
export function findPortHolder(port: number, proc = "/proc"): PortHolder | undefined {
  const inodes = new Set<string>();
  for (const t of ["net/tcp", "net/tcp6"]) {
    try {
      for (const i of listeningInodes(readFileSync(join(proc, t), "utf8"), port)) inodes.add(`socket:[${i}]`);
    } catch {
      // no such table (no IPv6, not Linux)
    }
  }
  if (inodes.size === 0) return undefined;
  let pids: string[];
  try {
    pids = readdirSync(proc).filter((d) => /^\d+$/.test(d));
  } catch {
    return undefined;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(join(proc, pid, "fd"));
    } catch {
      continue; // gone, or another user's
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(join(proc, pid, "fd", fd));
      } catch {
        continue;
      }
      if (!inodes.has(target)) continue;
      let command = "";
      try {
        command = readFileSync(join(proc, pid, "cmdline"), "utf8").split("\0").filter(Boolean).join(" ");
      } catch {
        // exited meanwhile: the pid alone still helps
      }
      return { pid: Number(pid), command: command.length > 120 ? `${command.slice(0, 117)}...` : command };
    }
  }
  return undefined;
}

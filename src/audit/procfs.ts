// What the sandbox's processes are and which TCP ports they listen on, read from the
// host's /proc (both backends: bwrap processes and container processes are host
// processes). A socket is the instance's when one of its processes holds the socket's
// inode, so a host sshd on port 22 is never mistaken for the instance's.

import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import type { SandboxProcess } from "./types.js";

export interface TcpSocket {
  localPort: number;
  /** the kernel's state number: 0x0A is LISTEN */
  state: number;
  inode: number;
}

/** Parses /proc/net/tcp or /proc/net/tcp6 text. Pure. */
export function parseProcNetTcp(text: string): TcpSocket[] {
  const out: TcpSocket[] = [];
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
    if (f.length < 10) continue;
    const port = parseInt(f[1]!.split(":")[1] ?? "", 16);
    const state = parseInt(f[3]!, 16);
    const inode = Number(f[9]);
    if (Number.isInteger(port) && Number.isInteger(state) && Number.isInteger(inode)) out.push({ localPort: port, state, inode });
  }
  return out;
}

export const TCP_LISTEN = 0x0a;

/** Ports in LISTEN state whose sockets one of `inodes` names. Pure. */
export function listeningPorts(sockets: readonly TcpSocket[], inodes: ReadonlySet<number>): number[] {
  const ports = new Set<number>();
  for (const s of sockets) if (s.state === TCP_LISTEN && inodes.has(s.inode)) ports.add(s.localPort);
  return [...ports].sort((a, b) => a - b);
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

export function describeProcess(pid: number): SandboxProcess | undefined {
  const comm = read(`/proc/${pid}/comm`);
  if (comm === undefined) return undefined;
  const exe = (read(`/proc/${pid}/cmdline`) ?? "").split("\0")[0] ?? "";
  return { pid, comm: comm.trim(), exe };
}

function socketInodes(pid: number): number[] {
  const out: number[] = [];
  let fds: string[] = [];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return out;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.push(Number(m[1]));
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

/** TCP ports the processes listen on, seen in their own network namespace. */
export function listeningPortsOf(pids: readonly number[]): number[] {
  const inodes = new Set<number>();
  for (const pid of pids) for (const i of socketInodes(pid)) inodes.add(i);
  if (inodes.size === 0 || pids.length === 0) return [];
  const sockets: TcpSocket[] = [];
  // every process of one instance shares its network namespace: one of them is enough
  for (const pid of pids) {
    const v4 = read(`/proc/${pid}/net/tcp`);
    if (v4 === undefined) continue;
    sockets.push(...parseProcNetTcp(v4), ...parseProcNetTcp(read(`/proc/${pid}/net/tcp6`) ?? ""));
    break;
  }
  return listeningPorts(sockets, inodes);
}

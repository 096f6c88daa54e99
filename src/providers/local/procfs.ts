// Reading /proc: is an instance's process still the one we started, and which
// processes belong to it. Linux only (the local provider is Linux only).

import { readdirSync, readFileSync, readlinkSync } from "node:fs";

export interface ProcStat {
  pid: number;
  /** R, S, D, Z, T, X… */
  state: string;
  ppid: number;
  pgrp: number;
  /** field 22: clock ticks after boot; with the pid it names one process for the life of the machine */
  startTime: number;
}

/** Parses /proc/PID/stat text. The comm field may hold spaces and ")", so split after the last ")". */
export function parseStat(text: string): ProcStat | undefined {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 0 || close < open) return undefined;
  const pid = Number(text.slice(0, open).trim());
  const rest = text.slice(close + 2).trim().split(" ");
  // rest[0] is field 3, so field N is rest[N - 3]
  const state = rest[0] ?? "";
  const ppid = Number(rest[1]);
  const pgrp = Number(rest[2]);
  const startTime = Number(rest[19]);
  if (!Number.isInteger(pid) || !Number.isInteger(startTime)) return undefined;
  return { pid, state, ppid, pgrp, startTime };
}

export function readStat(pid: number): ProcStat | undefined {
  try {
    return parseStat(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return undefined;
  }
}

/** A zombie has finished: it only waits to be reaped. */
export function isLiveStat(s: ProcStat | undefined): s is ProcStat {
  return s !== undefined && s.state !== "Z" && s.state !== "X";
}

/** True iff `pid` is alive and is the process that started at `startTime` (not a reused pid). */
export function isSameProcessAlive(pid: number, startTime: number): boolean {
  const s = readStat(pid);
  return isLiveStat(s) && s.startTime === startTime;
}

function allPids(): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (/^[0-9]+$/.test(name)) out.push(Number(name));
  }
  return out;
}

/** "pid:[4026532182]" → 4026532182 */
export function namespaceOf(pid: number, kind: "pid" | "mnt"): number | undefined {
  try {
    const m = /\[(\d+)\]/.exec(readlinkSync(`/proc/${pid}/ns/${kind}`));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The instance's PID namespace, when it can still be trusted to be the instance's. The kernel
 * reuses a namespace's inode number as soon as the namespace is gone, and the next namespace
 * created anywhere on the host (another instance's, of any workspace) may get it; so the number
 * names this instance only while the namespace's init — bwrap's child, recorded at launch — is
 * still the same live process. Once that init has died the kernel has killed everything in its
 * namespace, and there is nothing of the instance left to find there.
 *
 *   init alive, start time as recorded                 → the namespace
 *   init alive, another start time (its pid reused)    → undefined
 *   init gone                                          → undefined
 *   no recorded start time (an older kiln): init alive and inside that namespace → the namespace
 *   no recorded start time, init alive elsewhere       → undefined
 */
export function trustedPidNamespace(
  status: { childPid?: number; pidNamespace?: number },
  childStartTime: number | undefined,
  read: { stat: (pid: number) => ProcStat | undefined; pidNamespaceOf: (pid: number) => number | undefined } = { stat: readStat, pidNamespaceOf: (pid) => namespaceOf(pid, "pid") },
): number | undefined {
  const { childPid, pidNamespace } = status;
  if (childPid === undefined || pidNamespace === undefined) return undefined;
  const s = read.stat(childPid);
  if (!isLiveStat(s)) return undefined;
  if (childStartTime !== undefined) return s.startTime === childStartTime ? pidNamespace : undefined;
  return read.pidNamespaceOf(childPid) === pidNamespace ? pidNamespace : undefined;
}

/**
 * The processes descended from `pid` (not itself), read from each thread's children list
 * (/proc/PID/task/TID/children): a few reads per process of the tree, not one per process on the
 * host. A process forked while it is read may be missing; one reparented out of the tree (its
 * parent died and it went to the host's init) is. At most `max` of them.
 */
export function descendants(pid: number, max = 4096): number[] {
  const out: number[] = [];
  const queue = [pid];
  const seen = new Set(queue);
  while (queue.length > 0 && out.length < max) {
    const p = queue.shift()!;
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      continue; // gone meanwhile
    }
    for (const t of tasks) {
      let text: string;
      try {
        text = readFileSync(`/proc/${p}/task/${t}/children`, "latin1");
      } catch {
        continue;
      }
      for (const c of text.split(" ")) {
        const child = Number(c);
        if (!c || !Number.isInteger(child) || seen.has(child)) continue;
        seen.add(child);
        out.push(child);
        queue.push(child);
      }
    }
  }
  return out;
}

export interface InstanceIdentity {
  /** its process group (the spawned process's pid); -1 when the number may no longer be ours */
  pgid: number;
  /** bwrap's PID namespace: an app may setsid() away from the group, but it cannot leave this */
  pidNamespace?: number;
  /** the instance's private mount namespace (the fallback has no PID namespace) */
  mountNamespace?: number;
}

/** Live processes that belong to an instance: its group, and everything inside its namespaces. */
export function instanceProcesses(id: InstanceIdentity): number[] {
  const out: number[] = [];
  for (const pid of allPids()) {
    const s = readStat(pid);
    if (!isLiveStat(s)) continue;
    if (
      s.pgrp === id.pgid ||
      (id.pidNamespace !== undefined && namespaceOf(pid, "pid") === id.pidNamespace) ||
      (id.mountNamespace !== undefined && namespaceOf(pid, "mnt") === id.mountNamespace)
    )
      out.push(pid);
  }
  return out;
}

export function readCmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
  } catch {
    return "";
  }
}

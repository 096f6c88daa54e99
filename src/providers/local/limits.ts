// kiln.yaml `resources` on the local provider: how an instance's memory, pids and CPU are
// limited on this host, as data (planLimits, cgroupEntry, rlimitEntry are pure), plus the few
// effectful steps (create the cgroups, read why an instance died, remove them).
//
// Which mechanism (chooseEnforcement):
//   - kiln is root and the host has cgroup v2 with memory, pids and cpu offered → "cgroup-v2";
//   - kiln is root and the v1 hierarchies memory, pids and cpu are mounted → "cgroup-v1"
//     (Debian 10/11-era hosts, and this project's own machine);
//   - otherwise → "rlimit", which is weaker, said in `kiln status`:
//       memory → RLIMIT_DATA: private writable memory (heap, anonymous mmap) per process, not
//                RSS, not page cache, not /dev/shm (that tmpfs is sized on its own); a process
//                over it gets ENOMEM from malloc/mmap rather than being killed, and each
//                process of the instance gets the whole amount;
//       pids   → RLIMIT_NPROC: counted per real uid across the whole host, not per instance:
//                the instance's uid's other processes count too (a uid of its own, see
//                uid-range.ts, makes it per service);
//       cpu    → not enforced: RLIMIT_CPU caps total seconds, not a share; nothing per-process
//                caps a rate.
//
// Cgroups are created under the controller's own cgroup in each hierarchy (what a delegating
// systemd unit or container runtime expects), in a directory per KILN_HOME, so two kiln homes
// (or test runs) never sweep each other's:  <mount><own>/kiln/<home key>/<instance id>.
// The instance is inside them before any of its code runs: the launcher is a tiny shell that
// writes its own pid to each cgroup.procs and then execs the sandbox command (same pid), so
// unshare, the staging shell, setpriv, bwrap and the app all start inside; a fork cannot escape.

import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync, existsSync } from "node:fs";
import { posix } from "node:path";
import { describeLimits, formatMemory, type ResourceLimits } from "../../config/resources.js";
import type { LimitsEnforcement } from "../provider.js";
import type { SpawnCommand } from "./sandbox-command.js";

export type LocalEnforcement = Exclude<LimitsEnforcement, "engine">;
export type CgroupController = "memory" | "pids" | "cpu";
const CONTROLLERS: readonly CgroupController[] = ["memory", "pids", "cpu"];

/** What the host offers, from /proc/self/mountinfo and /proc/self/cgroup (parseCgroupHost). */
export interface CgroupHost {
  /** v1: each controller's hierarchy: where it is mounted and our own cgroup in it */
  v1: Partial<Record<CgroupController, { mount: string; own: string }>>;
  /** v2: the unified hierarchy, our cgroup in it, and the controllers our cgroup offers its children */
  v2?: { mount: string; own: string; controllers: string[] };
}

/**
 * /proc/self/mountinfo + /proc/self/cgroup (+ the v2 cgroup's cgroup.controllers) → CgroupHost.
 *
 *   "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu" and "1:cpu:/"
 *        → v1.cpu = { mount: "/sys/fs/cgroup/cpu", own: "/" }
 *   "… /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct" → v1.cpu on that mount
 *   "… /sys/fs/cgroup rw - cgroup2 cgroup2 rw" and "0::/user.slice", controllers "memory pids"
 *        → v2 = { mount: "/sys/fs/cgroup", own: "/user.slice", controllers: [memory, pids] }
 *   a read-only mount ("… ro - cgroup …") is skipped: nothing can be created in it
 */
export function parseCgroupHost(mountinfo: string, selfCgroup: string, v2Controllers?: string): CgroupHost {
  const own = new Map<string, string>();
  let ownV2: string | undefined;
  for (const line of selfCgroup.split("\n")) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (!m) continue;
    if (m[1] === "0" && m[2] === "") ownV2 = m[3];
    for (const c of m[2]!.split(",")) if (c) own.set(c, m[3]!);
  }
  const host: CgroupHost = { v1: {} };
  for (const line of mountinfo.split("\n")) {
    const [pre, post] = line.split(" - ");
    if (!pre || !post) continue;
    const f = pre.split(" ");
    const mountPoint = f[4];
    const mountOpts = (f[5] ?? "").split(",");
    const [fstype, , superOpts = ""] = post.split(" ");
    if (!mountPoint || mountOpts.includes("ro")) continue;
    if (fstype === "cgroup") {
      for (const c of CONTROLLERS) {
        const o = own.get(c);
        if (superOpts.split(",").includes(c) && o !== undefined && !host.v1[c]) host.v1[c] = { mount: mountPoint, own: o };
      }
    } else if (fstype === "cgroup2" && ownV2 !== undefined && !host.v2) {
      host.v2 = { mount: mountPoint, own: ownV2, controllers: (v2Controllers ?? "").split(/\s+/).filter(Boolean) };
    }
  }
  return host;
}

/**
 * The mechanism, from the host and whether kiln is root (only root may create cgroups here).
 *
 *   root, v2 offering memory pids cpu          → "cgroup-v2"
 *   root, v1 memory + pids + cpu mounted        → "cgroup-v1"   (preferred over a hybrid's empty v2)
 *   root, v1 without pids                       → "rlimit"
 *   not root, any host                          → "rlimit"
 */
export function chooseEnforcement(host: CgroupHost, isRoot: boolean): LocalEnforcement {
  if (!isRoot) return "rlimit";
  if (host.v2 && CONTROLLERS.every((c) => host.v2!.controllers.includes(c))) return "cgroup-v2";
  if (CONTROLLERS.every((c) => host.v1[c])) return "cgroup-v1";
  return "rlimit";
}

/** One cgroup directory and the files written in it, in order. `optional` writes may fail (a kernel without swap accounting). */
export interface CgroupDir {
  dir: string;
  writes: { file: string; value: string; optional?: boolean }[];
}

export interface LimitsPlan {
  enforcement: LocalEnforcement;
  /** cgroups to create, then enter (their cgroup.procs) before the sandbox starts */
  cgroups: CgroupDir[];
  /** rlimit mode: prlimit's options */
  rlimits: { data?: number; nproc?: number };
  /** what cannot be enforced this way, said in the instance's log */
  unenforced: string[];
  /** "memory 64Mi, pids 32" */
  summary: string;
}

/** CFS period: 100 ms, the kernel's default; the quota is the share of it. */
export const CPU_PERIOD_US = 100_000;

/** 12 hex of sha256(home): the directory that keeps one KILN_HOME's cgroups apart from another's. */
export function homeKey(home: string): string {
  return createHash("sha256").update(posix.resolve(home)).digest("hex").slice(0, 12);
}

/** Where one instance's cgroup lives in one hierarchy. */
export function cgroupPath(mount: string, own: string, home: string, instanceId: string): string {
  return posix.join(mount, own, "kiln", homeKey(home), instanceId);
}

/**
 * The limits of one instance → what to create or set.
 *
 *   memory 64Mi, cgroup-v1 → <memory>/…/ID: memory.limit_in_bytes 67108864, then (optional)
 *        memory.memsw.limit_in_bytes 67108864 (swap cannot extend it)
 *   pids 32, cgroup-v1 → <pids>/…/ID: pids.max 32
 *   cpu 0.5, cgroup-v1 → <cpu>/…/ID: cpu.cfs_period_us 100000, cpu.cfs_quota_us 50000
 *   memory 64Mi + cpu 2, cgroup-v2 → one dir: memory.max 67108864, memory.swap.max 0 (optional), cpu.max "200000 100000"
 *   memory 64Mi + pids 32 + cpu 1, rlimit → rlimits { data: 67108864, nproc: 32 }, unenforced [cpu …]
 *   no limits → nothing to do (enforcement still named, for status)
 */
export function planLimits(limits: ResourceLimits | undefined, instanceId: string, home: string, host: CgroupHost, enforcement: LocalEnforcement): LimitsPlan {
  const plan: LimitsPlan = { enforcement, cgroups: [], rlimits: {}, unenforced: [], summary: describeLimits(limits) };
  if (!limits) return plan;
  const quota = limits.cpu === undefined ? undefined : String(Math.max(1000, Math.round(limits.cpu * CPU_PERIOD_US)));
  if (enforcement === "cgroup-v2") {
    const v2 = host.v2!;
    const writes: CgroupDir["writes"] = [];
    if (limits.memoryBytes !== undefined) writes.push({ file: "memory.max", value: String(limits.memoryBytes) }, { file: "memory.swap.max", value: "0", optional: true });
    if (limits.pids !== undefined) writes.push({ file: "pids.max", value: String(limits.pids) });
    if (quota !== undefined) writes.push({ file: "cpu.max", value: `${quota} ${CPU_PERIOD_US}` });
    if (writes.length) plan.cgroups.push({ dir: cgroupPath(v2.mount, v2.own, home, instanceId), writes });
  } else if (enforcement === "cgroup-v1") {
    const at = (c: CgroupController) => cgroupPath(host.v1[c]!.mount, host.v1[c]!.own, home, instanceId);
    if (limits.memoryBytes !== undefined)
      plan.cgroups.push({
        dir: at("memory"),
        writes: [
          { file: "memory.limit_in_bytes", value: String(limits.memoryBytes) },
          // memsw must not be below the memory limit, so it is written second
          { file: "memory.memsw.limit_in_bytes", value: String(limits.memoryBytes), optional: true },
        ],
      });
    if (limits.pids !== undefined) plan.cgroups.push({ dir: at("pids"), writes: [{ file: "pids.max", value: String(limits.pids) }] });
    if (quota !== undefined)
      plan.cgroups.push({ dir: at("cpu"), writes: [{ file: "cpu.cfs_period_us", value: String(CPU_PERIOD_US) }, { file: "cpu.cfs_quota_us", value: quota }] });
  } else {
    if (limits.memoryBytes !== undefined) plan.rlimits.data = limits.memoryBytes;
    if (limits.pids !== undefined) plan.rlimits.nproc = limits.pids;
    if (limits.cpu !== undefined) plan.unenforced.push(`cpu ${limits.cpu} (rlimits cannot cap a share of CPU time)`);
  }
  return plan;
}

// Every path reaches it as an argument, never spliced into the text. `$$` is the shell's own
// pid, and exec keeps it: what runs next is already in every cgroup.
export const ENTER_CGROUP_SCRIPT = `set -eu
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
  echo $$ > "$1"
  shift
done
shift
exec "$@"
`;

/** The sandbox command, started from inside the plan's cgroups. */
export function cgroupEntry(cmd: SpawnCommand, cgroups: readonly CgroupDir[], sh: string): SpawnCommand {
  if (cgroups.length === 0) return cmd;
  const procs = cgroups.map((c) => posix.join(c.dir, "cgroup.procs"));
  return { ...cmd, file: sh, args: ["-c", ENTER_CGROUP_SCRIPT, "kiln-cgroup", ...procs, "--", cmd.file, ...cmd.args] };
}

/** The sandbox command under prlimit(1) (util-linux), which sets the limits on itself and execs it. */
export function rlimitEntry(cmd: SpawnCommand, rlimits: LimitsPlan["rlimits"], prlimit: string): SpawnCommand {
  const opts: string[] = [];
  if (rlimits.data !== undefined) opts.push(`--data=${rlimits.data}:${rlimits.data}`);
  if (rlimits.nproc !== undefined) opts.push(`--nproc=${rlimits.nproc}:${rlimits.nproc}`);
  if (opts.length === 0) return cmd;
  return { ...cmd, file: prlimit, args: [...opts, "--", cmd.file, ...cmd.args] };
}

// ------------------------------------------------------------------ effects

/** The host as this process sees it. */
export function readCgroupHost(): CgroupHost {
  const read = (p: string) => {
    try {
      return readFileSync(p, "utf8");
    } catch {
      return "";
    }
  };
  const mountinfo = read("/proc/self/mountinfo");
  const self = read("/proc/self/cgroup");
  const first = parseCgroupHost(mountinfo, self);
  if (!first.v2) return first;
  return parseCgroupHost(mountinfo, self, read(posix.join(first.v2.mount, first.v2.own, "cgroup.controllers")));
}

/**
 * Creates the plan's cgroups and writes their limits; throws (with the file) on the first
 * failure, after removing what it created. cgroup v2 also needs the controllers enabled on the
 * way down from our own cgroup.
 */
export function createCgroups(plan: LimitsPlan, host: CgroupHost): void {
  const made: string[] = [];
  try {
    for (const c of plan.cgroups) {
      if (plan.enforcement === "cgroup-v2") enableV2Controllers(host, posix.dirname(c.dir));
      mkdirSync(c.dir, { recursive: true });
      made.push(c.dir);
      for (const w of c.writes) {
        try {
          writeFileSync(posix.join(c.dir, w.file), w.value);
        } catch (e) {
          if (!w.optional) throw new Error(`cannot write ${w.value} to ${posix.join(c.dir, w.file)}: ${(e as Error).message}`);
        }
      }
    }
  } catch (e) {
    for (const d of made) tryRmdir(d);
    throw e;
  }
}

function enableV2Controllers(host: CgroupHost, parent: string): void {
  // Every cgroup from ours down to the instance's parent must offer the controllers to its
  // children. Our own cgroup can do so only if it holds no process itself (v2's "no internal
  // processes" rule) or is the root; the error then names the file.
  const v2 = host.v2!;
  let dir = posix.join(v2.mount, v2.own);
  const rest = posix.relative(dir, parent).split("/").filter(Boolean);
  for (let i = 0; ; i++) {
    mkdirSync(dir, { recursive: true });
    const ctl = posix.join(dir, "cgroup.subtree_control");
    const have = readFileSync(ctl, "utf8").split(/\s+/);
    const missing = CONTROLLERS.filter((c) => !have.includes(c));
    if (missing.length) writeFileSync(ctl, missing.map((c) => `+${c}`).join(" "));
    if (i >= rest.length) break;
    dir = posix.join(dir, rest[i]!);
  }
}

function tryRmdir(dir: string): boolean {
  try {
    rmdirSync(dir);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "ENOENT";
  }
}

function counter(file: string, key: string): number {
  try {
    const m = new RegExp(`^${key} (\\d+)$`, "m").exec(readFileSync(file, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** What the kernel did at the limits, read from the instance's cgroups before they go. */
export interface LimitHits {
  /** processes the OOM killer killed at the memory limit */
  oomKills: number;
  /** forks refused at the pids limit */
  pidsRefused: number;
}

export function readLimitHits(dirs: readonly string[]): LimitHits {
  const hits: LimitHits = { oomKills: 0, pidsRefused: 0 };
  for (const d of dirs) {
    // v1: memory.oom_control has "oom_kill N" (Linux 4.13+); v2: memory.events. pids.events: "max N" in both.
    hits.oomKills += existsSync(posix.join(d, "memory.events")) ? counter(posix.join(d, "memory.events"), "oom_kill") : counter(posix.join(d, "memory.oom_control"), "oom_kill");
    hits.pidsRefused += counter(posix.join(d, "pids.events"), "max");
  }
  return hits;
}

/**
 * The log line that says why an instance died or struggled at its limits, or undefined.
 *
 *   { oomKills: 1 }, 64Mi     → "… the kernel killed 1 process at the memory limit (64Mi)"
 *   { pidsRefused: 40 }, 32   → "… 40 forks were refused at the pids limit (32)"
 *   nothing hit               → undefined
 */
export function limitHitsLine(hits: LimitHits, limits: ResourceLimits | undefined): string | undefined {
  const parts: string[] = [];
  if (hits.oomKills > 0)
    parts.push(`the kernel killed ${hits.oomKills} process${hits.oomKills === 1 ? "" : "es"} at the memory limit${limits?.memoryBytes !== undefined ? ` (${formatMemory(limits.memoryBytes)})` : ""}`);
  if (hits.pidsRefused > 0) parts.push(`${hits.pidsRefused} fork${hits.pidsRefused === 1 ? " was" : "s were"} refused at the pids limit${limits?.pids !== undefined ? ` (${limits.pids})` : ""}`);
  return parts.length ? `resources: ${parts.join("; ")}` : undefined;
}

/**
 * Removes the cgroups (they must be empty); true once all are gone. The home's directory goes
 * too once it holds no other instance's (a failed rmdir of a non-empty one is the answer "not yet").
 */
export function removeCgroups(dirs: readonly string[]): boolean {
  let all = true;
  for (const d of dirs) {
    if (!tryRmdir(d)) all = false;
    else tryRmdir(posix.dirname(d));
  }
  return all;
}

/**
 * After a crash: cgroups of this home's instances that no meta.json accounts for (created by a
 * controller that died between creating them and recording the instance). `known` are instance
 * ids with a directory; only those are kept. An rmdir of a cgroup that still holds processes
 * fails (EBUSY) and it is kept.
 */
export function sweepOrphanCgroups(host: CgroupHost, enforcement: LocalEnforcement, home: string, keep: (instanceId: string) => boolean): string[] {
  const parents = new Set<string>();
  if (enforcement === "cgroup-v2" && host.v2) parents.add(posix.join(host.v2.mount, host.v2.own, "kiln", homeKey(home)));
  if (enforcement === "cgroup-v1") for (const c of CONTROLLERS) if (host.v1[c]) parents.add(posix.join(host.v1[c]!.mount, host.v1[c]!.own, "kiln", homeKey(home)));
  const removed: string[] = [];
  for (const p of parents) {
    let names: string[] = [];
    try {
      names = readdirSync(p, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
    } catch {
      continue;
    }
    for (const n of names) if (!keep(n) && tryRmdir(posix.join(p, n))) removed.push(posix.join(p, n));
  }
  return removed;
}

// The local provider: every instance is a process on this machine, run from
// the image's unpacked root filesystem inside bubblewrap (see
// sandbox-command.ts for the exact command lines and why they look so).
//
// Durable facts live on disk, under <home>/instances/<id>/: meta.json (pid,
// its start time, port…), the log (the instance's stdout+stderr, appended
// through file descriptors so the instance never depends on us), and bwrap's
// status lines (its PID namespace, its exit code). Instances are spawned
// detached in their own session and process group and without
// --die-with-parent: a controller may exit or crash, and the next one adopts
// the running instances from these files.

import { spawnSync } from "node:child_process";
import { accessSync, chownSync, lchownSync, closeSync, constants, copyFileSync, lstatSync, mkdirSync, openSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from "node:fs";
import { tailLines } from "../../file-tail.js";
import { join } from "node:path";
import { constants as osConstants } from "node:os";
import { KilnError } from "../../errors.js";
import type { LaunchRequest, LimitsEnforcement, ObservedInstance, Provider } from "../provider.js";
import { LaunchFlights, SAFE_SEGMENT } from "../single-flight.js";
import { findHostTool, HOST_PATH } from "./executable.js";
import { resolveImageUser } from "./image-user.js";
import { fsImageTree, readImageFile } from "./image-tree.js";
import { LOG_FILE, META_FILE, STATUS_FILE, readBwrapStatus, readMeta, writeMeta, type InstanceMeta, type SandboxKind } from "./meta.js";
import { planMounts } from "./mount-plan.js";
import { descendants, instanceProcesses, isLiveStat, isSameProcessAlive, namespaceOf, readStat, trustedPidNamespace } from "./procfs.js";
import { seccompFilterFor } from "./seccomp.js";
import { chrootCommand, RESERVED_ENV_PREFIX, stagedBwrapCommand, userBwrapCommand, type SandboxInput, type SpawnCommand, type Tools } from "./sandbox-command.js";
import { freeLoopbackPort } from "../../net.js";
import { LimitsHook } from "./limits-hook.js";
import { DEFAULT_STARTUP_BOOST, StartupBoost } from "./startup-boost.js";
import { DEFAULT_SPAWN_THREADS, makeSpawner, SpawnFailure, type Spawned, type Spawner } from "./spawner.js";
import { claimUid, formatUidRange, hostRangeConflicts, serviceKey, type UidRange } from "./uid-range.js";
import { describeNetwork, findPasta, isForwarderAlive, planNetwork, readNetRecord, startForwarder, stopForwarder, writeNetRecord, type NetworkPlan } from "./netns.js";

export interface ImageRunConfig {
  /** "K=V" */
  env: string[];
  entrypoint: string[];
  cmd: string[];
  /** "1000:1000" */
  user: string;
  workdir: string;
}

export interface LocalProviderOptions {
  /** $KILN_HOME */
  home: string;
  /** an unpacked, read-only root filesystem directory for the image */
  rootfs: (digest: string) => Promise<string>;
  imageConfig: (digest: string) => Promise<ImageRunConfig>;
  /**
   * "auto" (default) and "bwrap": bubblewrap with `--disable-userns` and the seccomp filter, and
   * refuse to launch without it; "none" (`kiln up --unsafe-no-sandbox`): the unisolated fallback
   * (root only), said loudly.
   */
  sandbox?: "bwrap" | "none" | "auto";
  log?: (line: string) => void;
  /** size of each instance's /tmp tmpfs (default 64 MiB) */
  tmpSizeBytes?: number;
  /** size of each instance's /dev/shm tmpfs (default 64 MiB) */
  shmSizeBytes?: number;
  /** an instance's log is rotated (to log.1, one kept) once it is over this size (default 32 MiB) */
  logMaxBytes?: number;
  /** root-owned host directory the private staging tmpfs is mounted on (default /run/kiln-stage) */
  stageDir?: string;
  /** epoch ms */
  now?: () => number;
  /**
   * uid-range.ts: when kiln is root, each service runs as a host uid of its own from this range
   * (claims kept host-wide in claimsDir). Absent: instances run as the image's user on the host.
   */
  uidRange?: { range: UidRange; claimsDir: string };
  /** the pasta binary for private networks (netns.ts); default: found on PATH; null: none (host network, with a warning) */
  pasta?: string | null;
  /** startup-boost.ts: the nice value a starting instance's session runs at until it answers (default -5; 0: off) */
  startupBoost?: number;
  /** spawner.ts: threads that fork the sandboxes and forwarders (default 3; 0: the event loop's own) */
  spawnThreads?: number;
  /** instead of spawnThreads: the spawner itself (tests) */
  spawner?: Spawner;
}

type Mode = { kind: "staged-bwrap" | "user-bwrap" | "chroot"; tools: Tools };

const STARTUP_WAIT_MS = 5000;
const KILL_WAIT_MS = 5000;
const POLL_MS = 20;
/** how often a running instance's log size is checked against its cap */
const LOG_CHECK_MS = 1000;

const DEFAULT_LOG_MAX_BYTES = 32 * 1024 * 1024;
/** in the instance's directory: the staged bwrap's staging fstab (sandbox-command.ts stagingFstab) */
const STAGE_FSTAB_FILE = "stage.fstab";

/** Whether a log of `size` bytes is rotated: strictly over the cap (a cap of 0 never rotates). */
export function isLogOverCap(size: number, max: number): boolean {
  return max > 0 && size > max;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function providerError(message: string, hint: string, cause?: unknown, where?: string): KilnError {
  return new KilnError("KILN_E_PROVIDER", message, {
    hint,
    cause,
    details: where ? [{ where, message }] : undefined,
  });
}


async function freePort(isTaken: (port: number) => boolean): Promise<number> {
  // Bind port 0, read it, close. Another process may take it before the
  // instance binds; the instance then fails its health check and is replaced.
  // Ports of our own live instances (which may still be starting up, port
  // not yet bound) are skipped, so at least kiln never races itself.
  for (let i = 0; i < 20; i++) {
    const port = await freeLoopbackPort();
    if (!isTaken(port)) return port;
  }
  return freeLoopbackPort();
}

/** What a bwrap lacks of the options kiln's sandbox needs, from its `--help` (bubblewrap 0.8 has them all). */
export function missingBwrapOptions(help: string): string[] {
  return ["--disable-userns", "--seccomp", "--json-status-fd", "--args"].filter((o) => !new RegExp(`^\\s*${o}\\b`, "m").test(help));
}

/** The bwrap on PATH and what it lacks; undefined when none is installed. */
export function probeBwrap(): { path: string; missing: string[] } | undefined {
  const path = findHostTool("bwrap");
  if (!path) return undefined;
  const r = spawnSync(path, ["--help"], { encoding: "utf8", timeout: 5000 });
  return { path, missing: missingBwrapOptions(`${r.stdout ?? ""}\n${r.stderr ?? ""}`) };
}

/**
 * Facts read from an image's unpacked root, by key. A root is content-addressed and never
 * written, so what was read from it holds for every later launch of the same digest; only
 * successes are kept (a failure is reported again, as read again). At most `max` entries,
 * the oldest dropped first.
 */
export class FactCache {
  private readonly entries = new Map<string, unknown>();
  constructor(private readonly max: number) {}

  get<T>(key: string, read: () => T, keep: (value: T) => boolean): T {
    if (this.entries.has(key)) return this.entries.get(key) as T;
    const value = read();
    if (keep(value)) {
      if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value as string);
      this.entries.set(key, value);
    }
    return value;
  }
}

function signalNumber(sig: NodeJS.Signals | null): number | undefined {
  return sig ? (osConstants.signals as Record<string, number>)[sig] : undefined;
}

export class LocalProvider implements Provider {
  readonly name = "local";
  private readonly opts: LocalProviderOptions;
  private readonly log: (line: string) => void;
  private readonly now: () => number;
  private mode: Mode | undefined;
  private warned = false;
  private warnedSeccomp = false;
  private warnedNetwork = false;
  /** adopted instances whose forwarder is being attached again */
  private readonly reattaching = new Set<string>();
  private readonly launches = new LaunchFlights<ObservedInstance>();
  /** ports given to launches in the last minute (a concurrent launch has not written its meta yet) */
  private readonly handedOut = new Map<number, number>();
  /** instances this object spawned: settles once their exit code is in meta.json */
  private readonly exits = new Map<string, Promise<void>>();
  /** kiln.yaml `resources` (limits-hook.ts) */
  private readonly limits: LimitsHook;
  /** uid-range.ts: the range was checked against this host's accounts */
  private uidRangeChecked = false;
  /** what an image's root says (its user, its mount plan per set of volumes): read once per root, not per launch */
  private readonly imageFacts = new FactCache(64);
  /** exited instances whose exit is fully handled, by id: what list() reports of them (see settle) */
  private readonly settled = new Map<string, ObservedInstance>();
  /** forwarder stops of dead instances a listing started, by instance (stopDeadForwarder) */
  private readonly forwarderStops = new Map<string, Promise<void>>();
  /** pasta as last found on PATH (see pasta()) */
  private foundPasta: string | undefined;
  /** startup-boost.ts: starting instances' CPU priority */
  private readonly boost: StartupBoost;
  /** running instances this object has looked at once (an earlier controller's raised priority is undone then) */
  private readonly normalized = new Set<string>();
  /**
   * meta.json of running instances whose launch is over, as read: a listing (several a second)
   * reads /proc for each, not its file. What changes in meta.json after the launch is written
   * once the instance has exited (its exit code, its end), and an exited one is read afresh.
   */
  private readonly runningMeta = new Map<string, InstanceMeta>();
  /** when each running instance's log size was last checked (capLog) */
  private readonly logCheckedAt = new Map<string, number>();
  /** spawner.ts: sandboxes and forwarders start off the event loop */
  private readonly spawner: Spawner;

  constructor(opts: LocalProviderOptions) {
    this.opts = opts;
    this.log = opts.log ?? ((line) => process.stderr.write(line + "\n"));
    this.now = opts.now ?? Date.now;
    this.limits = new LimitsHook({ home: opts.home, now: this.now, findExecutable: findHostTool });
    this.boost = new StartupBoost({ level: opts.startupBoost ?? DEFAULT_STARTUP_BOOST, log: this.log });
    this.spawner = opts.spawner ?? makeSpawner(opts.spawnThreads ?? DEFAULT_SPAWN_THREADS, this.log);
  }

  /** The controller saw the instance answer its first probe: its start is over (startup-boost.ts). */
  started(instanceId: string): void {
    this.boost.end(instanceId);
  }

  /** How `resources` are enforced for instances launched here (cgroups when root, rlimits otherwise). */
  limitsEnforcement(): LimitsEnforcement {
    return this.limits.enforcement();
  }

  logPath(instanceId: string): string | undefined {
    return SAFE_SEGMENT.test(instanceId) ? join(this.instanceDir(instanceId), LOG_FILE) : undefined;
  }

  networkOf(instanceId: string): string | undefined {
    return SAFE_SEGMENT.test(instanceId) ? describeNetwork(readNetRecord(this.instanceDir(instanceId))) : undefined;
  }

  /** How instances are sandboxed here; throws KILN_E_PROVIDER when they cannot be run at all. */
  sandboxKind(): SandboxKind {
    return this.resolveMode().kind === "chroot" ? "chroot" : "bwrap";
  }

  launch(req: LaunchRequest): Promise<ObservedInstance> {
    return this.launches.run(req.instanceId, () => this.launchOnce(req));
  }

  async terminate(instanceId: string, opts: { graceMs: number }): Promise<void> {
    if (!SAFE_SEGMENT.test(instanceId)) return;
    await this.launches.settled(instanceId);
    this.boost.end(instanceId); // stopped before it answered: what stops it runs at the normal priority
    const dir = this.instanceDir(instanceId);
    const meta = readMeta(dir);
    if (!meta) return;

    const status = meta.sandbox === "bwrap" ? readBwrapStatus(dir) : undefined;
    // Asked again on every call: once the namespace's init is gone, its number may name another
    // instance's namespace (see trustedPidNamespace), whose processes must never be signalled.
    const seen = new Map<number, number>();
    const members = () => this.members(meta, status ? trustedPidNamespace(status, meta.childStartTime) : undefined, seen);
    const gone = () => {
      if (isSameProcessAlive(meta.pid, meta.startTime)) return false;
      // Polled while the instance stops, beside a serving fleet: a few stats each time, not a scan
      // of all of /proc. Once the instance is listed (the signals below), nothing new can join
      // it: its namespace's processes end with the namespace's init (the kernel ends them all),
      // and outside the namespace only bwrap's monitor was in its group. The chroot fallback has
      // no PID namespace (a child may leave the group): there, every poll scans.
      if (seen.size === 0 || meta.sandbox !== "bwrap") return members().length === 0;
      if (status && trustedPidNamespace(status, meta.childStartTime) !== undefined) return false;
      for (const [pid, t] of seen) if (isSameProcessAlive(pid, t)) return false;
      return true;
    };

    if (!gone()) {
      // Polite first. Under bwrap the leader is bwrap's monitor: it is spared
      // so it can report the app's exit code, and bwrap's PID 1 ignores
      // SIGTERM from outside its namespace; the app and its children get it.
      // While the monitor runs, everything of the instance descends from it (its namespace's
      // init and what that runs): the tree is read, not all of /proc. What it misses (a process
      // forked meanwhile) ends with the namespace's init, SIGKILLed below if need be.
      const tree = meta.sandbox === "bwrap" && isSameProcessAlive(meta.pid, meta.startTime) ? descendants(meta.pid) : undefined;
      if (tree)
        for (const pid of tree) {
          const t = readStat(pid)?.startTime;
          if (t !== undefined) seen.set(pid, t);
        }
      for (const pid of tree && tree.length > 0 ? tree : members()) {
        if (meta.sandbox === "bwrap" && pid === meta.pid) continue;
        this.signal(pid, "SIGTERM");
      }
      const deadline = Date.now() + Math.max(0, opts.graceMs);
      while (!gone() && Date.now() < deadline) await sleep(POLL_MS);
    }
    if (!gone()) {
      // SIGKILL to bwrap's PID 1 takes the whole namespace with it; the group
      // covers the monitor and anything that forked before the namespace.
      for (const pid of members()) this.signal(pid, "SIGKILL");
      const deadline = Date.now() + KILL_WAIT_MS;
      while (!gone() && Date.now() < deadline) await sleep(POLL_MS);
      if (!gone())
        throw providerError(
          `instance ${instanceId} did not stop: processes ${members().join(", ")} survived SIGKILL`,
          "a process stuck in uninterruptible sleep (D state) cannot be killed; check `ps -o pid,stat,cmd -p …` and the host's storage",
          undefined,
          instanceId,
        );
    }
    await stopForwarder(dir, { search: true }); // netns.ts: the instance is gone, so is what forwarded to it
    // Our own child may be dead but not yet reaped: let its exit event record the real code.
    const exited = this.exits.get(instanceId);
    if (exited) await Promise.race([exited, sleep(1000)]);
    const latest = readMeta(dir) ?? meta;
    writeMeta(dir, {
      ...latest,
      terminatedAt: latest.terminatedAt ?? this.now(),
      exitCode: latest.exitCode ?? this.statusExitCode(latest) ?? null,
      exitedAt: latest.exitedAt ?? this.now(),
    });
    this.limits.finish(dir);
  }

  async list(service: string): Promise<ObservedInstance[]> {
    const root = join(this.opts.home, "instances");
    let names: string[];
    try {
      names = readdirSync(root);
    } catch {
      return [];
    }
    const out: ObservedInstance[] = [];
    this.limits.sweepOnce(root, (id) => this.launches.has(id));
    const present = new Set(names);
    for (const id of this.settled.keys()) if (!present.has(id)) this.settled.delete(id);
    for (const id of this.normalized) if (!present.has(id)) this.normalized.delete(id);
    for (const id of this.runningMeta.keys()) if (!present.has(id)) this.runningMeta.delete(id);
    for (const id of this.logCheckedAt.keys()) if (!present.has(id)) this.logCheckedAt.delete(id);
    for (const name of names.sort()) {
      const done = this.settled.get(name);
      if (done) {
        if (done.service === service) out.push({ ...done });
        continue;
      }
      const cached = this.runningMeta.get(name);
      let meta = cached ?? readMeta(join(root, name));
      if (!meta || meta.service !== service) continue;
      let seen = this.observe(meta);
      if (cached && seen.state === "exited") {
        // What was running when last read: its exit may have been recorded since.
        this.runningMeta.delete(name);
        meta = readMeta(join(root, name));
        if (!meta) continue;
        seen = this.observe(meta);
      }
      if (seen.state === "running" && !cached && !this.launches.has(name)) this.runningMeta.set(name, meta);
      if (seen.state === "running") this.capLog(name, join(root, name));
      if (seen.state === "running") await this.adoptForwarder(meta, join(root, name)); // netns.ts
      if (seen.state === "running" && !this.normalized.has(meta.id)) this.normalizeAdopted(meta, join(root, name));
      const exited = this.exits.get(meta.id);
      if (seen.state === "exited" && seen.exitCode === null && exited) {
        // our child, dead but not yet reaped: its exit event is about to record the code
        await Promise.race([exited, sleep(500)]);
        meta = readMeta(join(root, name)) ?? meta;
        seen = this.observe(meta);
      }
      // netns.ts: adopts and stops a dead instance's forwarder, beside the listing (see stopDeadForwarder).
      if (seen.state === "exited") this.stopDeadForwarder(name, join(root, name));
      // Before the exit is reported: the log then says whether a limit killed it.
      if (seen.state === "exited") this.limits.finish(join(root, name));
      if (seen.state === "exited") this.settle(name, join(root, name));
      out.push(seen);
    }
    return out;
  }

  /**
   * Stops the forwarder of an instance a listing found exited, without the listing waiting for it:
   * pasta takes 30–200 ms to go on a loaded host, and the controller's pass (its probes of starting
   * instances included) waits on the listing. One stop per instance at a time; the listing after
   * it settles the instance (settle wants the forwarder gone). terminate waits for its own stop.
   */
  private stopDeadForwarder(id: string, dir: string): void {
    if (this.forwarderStops.has(id) || !isForwarderAlive(readNetRecord(dir))) return;
    this.forwarderStops.set(
      id,
      stopForwarder(dir)
        .catch((e) => this.log(`stopping the network forwarder of ${id} failed: ${(e as Error).message}`))
        .finally(() => this.forwarderStops.delete(id)),
    );
  }

  /**
   * Remembers an exited instance whose exit is fully handled (list), so later listings answer it
   * without reading its directory again: its exit code is known (meta.json or bwrap's status
   * line), its limits' cgroups are released and its forwarder is not running. None of that can
   * change for a process that is gone (it is known by pid and start time), and terminate only
   * adds terminatedAt, which a listing does not show. Forgotten when its directory goes.
   */
  private settle(id: string, dir: string): void {
    const meta = readMeta(dir);
    if (!meta || (meta.limits && !meta.limits.released) || isForwarderAlive(readNetRecord(dir))) return;
    const seen = this.observe(meta);
    if (seen.state === "exited" && seen.exitCode !== null && seen.exitCode !== undefined) this.settled.set(id, seen);
  }

  /** Deletes an exited instance's directory (meta, log). Refuses while it runs. */
  async removeRecord(instanceId: string): Promise<void> {
    if (!SAFE_SEGMENT.test(instanceId)) return;
    const dir = this.instanceDir(instanceId);
    const meta = readMeta(dir);
    if (meta && this.observe(meta).state === "running")
      throw providerError(`instance ${instanceId} is still running`, `run terminate first`, undefined, instanceId);
    await stopForwarder(dir, { search: true });
    this.limits.finish(dir);
    this.settled.delete(instanceId);
    rmSync(dir, { recursive: true, force: true });
  }

  // ---------------------------------------------------------------- private

  /**
   * Keeps an instance's log under logMaxBytes: once over, its content moves to log.1 (the one
   * kept before it is dropped) and the log is truncated. The instance writes with O_APPEND, so
   * it carries on at the new end; lines written between the copy and the truncation are lost.
   */
  private capLog(id: string, dir: string): void {
    // Once a second per instance at most: listings come several times a second.
    const now = Date.now();
    if (now - (this.logCheckedAt.get(id) ?? 0) < LOG_CHECK_MS) return;
    this.logCheckedAt.set(id, now);
    const file = join(dir, LOG_FILE);
    try {
      if (!isLogOverCap(statSync(file).size, this.opts.logMaxBytes ?? DEFAULT_LOG_MAX_BYTES)) return;
      copyFileSync(file, `${file}.1`);
      truncateSync(file, 0);
    } catch {
      // absent or unreadable: the next listing tries again
    }
  }

  /** ports of instances that are (or were just) ours: recorded in meta.json and still running */
  private portsInUse(): Set<number> {
    const ports = new Set<number>();
    const root = join(this.opts.home, "instances");
    let names: string[] = [];
    try {
      names = readdirSync(root);
    } catch {
      return ports;
    }
    for (const name of names) {
      if (this.settled.has(name)) continue; // exited, its process gone (see settle)
      const m = readMeta(join(root, name));
      if (m && isSameProcessAlive(m.pid, m.startTime)) ports.add(m.port);
    }
    return ports;
  }

  private instanceDir(id: string): string {
    return join(this.opts.home, "instances", id);
  }

  private observe(meta: InstanceMeta): ObservedInstance {
    const running = isSameProcessAlive(meta.pid, meta.startTime);
    const base: ObservedInstance = {
      id: meta.id,
      service: meta.service,
      release: meta.release,
      digest: meta.digest,
      address: meta.address,
      pid: meta.pid,
      state: running ? "running" : "exited",
      startedAt: meta.startedAt,
    };
    if (!running) base.exitCode = meta.exitCode ?? this.statusExitCode(meta) ?? null;
    return base;
  }

  private statusExitCode(meta: InstanceMeta): number | undefined {
    return meta.sandbox === "bwrap" ? readBwrapStatus(this.instanceDir(meta.id)).exitCode : undefined;
  }

  /**
   * Live processes of the instance; the group is used only while it can still be ours. The
   * fallback's mount namespace is asked only while the leader lives: its number, like a PID
   * namespace's, goes to the next namespace created once it is gone. What was found there is
   * remembered (`seen`, pid → start time) so a child that left the group is still stopped after
   * the leader died.
   */
  private members(meta: InstanceMeta, pidNamespace: number | undefined, seen = new Map<number, number>()): number[] {
    const leader = readStat(meta.pid);
    // A process group id cannot be handed out again while the group has
    // members, so the group is ours unless its number now names a different
    // live process (our group emptied and the pid was reused).
    const leaderIsOurs = isLiveStat(leader) && leader.startTime === meta.startTime;
    const groupIsOurs = !isLiveStat(leader) || leaderIsOurs;
    const found = instanceProcesses({ pgid: groupIsOurs ? meta.pid : -1, pidNamespace, mountNamespace: leaderIsOurs ? meta.mountNamespace : undefined });
    for (const pid of found) {
      const t = readStat(pid)?.startTime;
      if (t !== undefined) seen.set(pid, t);
    }
    const out = new Set(found);
    for (const [pid, t] of seen) if (!out.has(pid) && isSameProcessAlive(pid, t)) out.add(pid);
    return [...out];
  }

  private signal(pid: number, sig: NodeJS.Signals): void {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  }

  private resolveMode(): Mode {
    if (this.mode) return this.mode;
    const wanted = this.opts.sandbox ?? "auto";
    const isRoot = process.geteuid?.() === 0;
    const found = wanted === "none" ? undefined : probeBwrap();
    // Without a sandbox that holds, nothing runs unless the user said so in as many words.
    if (wanted !== "none" && !found)
      throw providerError("cannot run instances: bubblewrap (bwrap) is not installed", "install it (Debian: apt-get install bubblewrap); to run instances unisolated anyway, start kiln with `kiln up --unsafe-no-sandbox`");
    if (found && found.missing.length > 0)
      throw providerError(
        `cannot run instances: ${found.path} is too old (it lacks ${found.missing.join(", ")})`,
        "install bubblewrap 0.8 or later (Debian 12: apt-get install bubblewrap); to run instances unisolated anyway, start kiln with `kiln up --unsafe-no-sandbox`",
      );
    const bwrap = found?.path;
    const need = (name: string): string => {
      const p = findHostTool(name);
      if (!p) throw providerError(`${name} is not installed`, `the local provider needs ${name} (Debian: util-linux / coreutils / dash)`);
      return p;
    };
    if (bwrap && !isRoot) {
      this.mode = { kind: "user-bwrap", tools: { bwrap, unshare: "", setpriv: "", mount: "", mkdir: "", ln: "", sh: "" } };
    } else if (!isRoot) {
      throw providerError(
        "cannot run instances: bubblewrap is not installed and kiln is not root",
        "install bubblewrap (Debian: apt-get install bubblewrap); the unisolated fallback (--unsafe-no-sandbox) needs root to chroot",
      );
    } else {
      const tools: Tools = { bwrap, unshare: need("unshare"), setpriv: need("setpriv"), mount: need("mount"), mkdir: need("mkdir"), ln: need("ln"), sh: need("sh") };
      this.mode = { kind: bwrap ? "staged-bwrap" : "chroot", tools };
    }
    if (this.mode.kind === "chroot" && !this.warned) {
      this.warned = true;
      this.log(
        "WARNING: instances are NOT isolated (--unsafe-no-sandbox): a chroot as the image user, " +
          "no PID, IPC, UTS or user namespace, no seccomp filter, no /proc. Install bubblewrap and drop the flag.",
      );
    }
    return this.mode;
  }

  /** The service's uid (and gid) from kiln's range; undefined without one. Checks the range against the host once. */
  private serviceHostIds(service: string): { uid: number; gid: number } | undefined {
    const r = this.opts.uidRange;
    if (!r) return undefined;
    if (!this.uidRangeChecked) {
      checkUidRange(r.range);
      this.uidRangeChecked = true;
    }
    let uid: number;
    try {
      uid = claimUid(r.claimsDir, r.range, serviceKey(this.opts.home, service));
    } catch (e) {
      throw providerError(`cannot give service ${service} a uid from ${formatUidRange(r.range)}: ${(e as Error).message}`, "set KILN_UID_RANGE to a larger free range, or remove claims of services that no longer exist", e);
    }
    return { uid, gid: uid };
  }

  private ensureStageDir(dir: string): void {
    // The staging tmpfs is mounted over this directory inside each instance's
    // private mount namespace; the host only ever sees it empty. It must be
    // ours alone: root-owned, a real directory, writable by nobody else.
    try {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    } catch (e) {
      throw providerError(`cannot create the staging directory ${dir}`, "set stageDir to a root-owned directory", e);
    }
    const st = lstatSync(dir);
    if (!st.isDirectory() || st.uid !== 0 || (st.mode & 0o022) !== 0)
      throw providerError(
        `staging directory ${dir} is not a root-owned directory writable only by root`,
        `remove it or choose another stageDir`,
      );
  }

  /**
   * A running private instance launched by an earlier controller that died before its forwarder
   * was up (or whose forwarder died): attach one now, so the adopted instance is reachable again.
   * Instances this object launched are left to their launch, which attaches or kills them.
   */
  private async adoptForwarder(meta: InstanceMeta, dir: string): Promise<void> {
    // Its meta.json exists from the fork on (spawner.ts), before the launch attaches the forwarder.
    if (this.launches.has(meta.id) || this.exits.has(meta.id) || this.reattaching.has(meta.id) || meta.sandbox !== "bwrap") return;
    const rec = readNetRecord(dir);
    if (rec?.mode !== "private" || isForwarderAlive(rec)) return;
    const pasta = this.pasta();
    const childPid = readBwrapStatus(dir).childPid;
    if (!pasta || childPid === undefined) return;
    const child = readStat(childPid);
    // only the namespace's own init, by start time: its pid may have been reused
    if (!isLiveStat(child) || (meta.childStartTime !== undefined && child.startTime !== meta.childStartTime)) return;
    this.reattaching.add(meta.id);
    try {
      const r = await startForwarder({ pasta, dir, childPid, port: meta.port, egress: rec.egress, joinUserns: process.geteuid?.() !== 0, ...(process.geteuid?.() === 0 ? { runAs: "0:0" } : {}), spawner: this.spawner });
      this.log(r.ok ? `instance ${meta.id}: network forwarder attached again (adopted without one)` : `instance ${meta.id}: cannot attach its network forwarder: ${r.reason}`);
    } finally {
      this.reattaching.delete(meta.id);
    }
  }

  /**
   * An instance an earlier controller launched, seen for the first time: a start that controller
   * boosted and never saw end (it was stopped mid-start) goes back to the normal priority.
   */
  private normalizeAdopted(meta: InstanceMeta, dir: string): void {
    // (An instance this object launches is marked before its spawn, so before its meta.json exists.)
    this.normalized.add(meta.id);
    this.boost.normalize(meta.pid, meta.startTime);
    const net = readNetRecord(dir);
    if (net?.pid !== undefined && net.startTime !== undefined) this.boost.normalize(net.pid, net.startTime);
  }

  /**
   * The pasta binary: the configured one, or the one found on PATH. Once found, its path is
   * checked (still executable) instead of searched again on every launch; gone, it is searched again.
   */
  private pasta(): string | undefined {
    if (this.opts.pasta !== undefined) return this.opts.pasta ?? undefined;
    if (this.foundPasta !== undefined) {
      try {
        accessSync(this.foundPasta, constants.X_OK);
        return this.foundPasta;
      } catch {
        this.foundPasta = undefined;
      }
    }
    this.foundPasta = findPasta();
    return this.foundPasta;
  }

  /** netns.ts's plan for this launch; says once, loudly, when instances fall back to the host's network. */
  private planNetwork(req: LaunchRequest, mode: Mode): NetworkPlan {
    const pasta = this.pasta();
    const net = planNetwork(req.isolation, mode.kind === "chroot" ? "chroot" : "bwrap", pasta);
    if (net.mode === "host" && net.warn && !this.warnedNetwork) {
      this.warnedNetwork = true;
      this.log(`WARNING: instances share the host's network (${net.reason}): they can connect to every host listener, the proxy's admin port and each other included`);
    }
    return net;
  }

  /**
   * Starts the instance's forwarder (netns.ts). Without it the instance is unreachable, so a
   * failure stops the instance and fails the launch (the controller replaces it).
   */
  private async attachForwarder(meta: InstanceMeta, dir: string, childPid: number, egress: number[], logPath: string): Promise<void> {
    const { id: instanceId, port } = meta;
    const pasta = this.pasta();
    if (!pasta) throw providerError(`no forwarder for ${instanceId}: pasta is not installed`, "install passt (Debian: apt-get install passt)", undefined, instanceId);
    const r = await startForwarder({
      pasta, dir, childPid, port, egress, joinUserns: process.geteuid?.() !== 0, ...(process.geteuid?.() === 0 ? { runAs: "0:0" } : {}),
      onSpawn: (pid) => this.boost.add(instanceId, pid), // its start is part of the instance's
      spawner: this.spawner,
    });
    if (r.ok) return;
    const ns = trustedPidNamespace(readBwrapStatus(dir), meta.childStartTime);
    for (const p of this.members(meta, ns)) this.signal(p, "SIGKILL");
    await stopForwarder(dir);
    throw providerError(`the network forwarder for ${instanceId} did not start: ${r.reason}`, `see ${join(dir, "net.log")} and ${logPath}; check that 127.0.0.1:${port} is free`, undefined, instanceId);
  }

  private async launchOnce(req: LaunchRequest): Promise<ObservedInstance> {
    for (const [what, v] of [
      ["instance id", req.instanceId],
      ["service", req.service],
      ...req.volumes.map((vol) => ["volume name", vol.name] as const),
    ] as const) {
      if (!SAFE_SEGMENT.test(v))
        throw providerError(`${what} "${v}" is not a safe name`, "use letters, digits, '.', '_' and '-' (at most 128)", undefined, req.instanceId);
    }
    const dir = this.instanceDir(req.instanceId);
    const existing = readMeta(dir);
    if (existing) return this.observe(existing); // idempotent: the same id is the same instance
    this.settled.delete(req.instanceId); // a directory removed behind this object's back: a new instance

    const mode = this.resolveMode();
    let rootfs: string;
    let cfg: ImageRunConfig;
    try {
      rootfs = await this.opts.rootfs(req.digest);
      cfg = await this.opts.imageConfig(req.digest);
    } catch (e) {
      if (e instanceof KilnError) throw e;
      throw providerError(`cannot prepare image ${req.digest}`, "check that the image is in the store (`kiln images`)", e, req.instanceId);
    }

    const user = this.imageFacts.get(`user\0${rootfs}\0${cfg.user}`, () => {
      const readEtc = (name: string) => readImageFile(rootfs, `/etc/${name}`);
      return resolveImageUser(cfg.user, readEtc("passwd"), readEtc("group"));
    }, (u) => u.ok);
    if (!user.ok) throw providerError(user.reason, user.hint, undefined, req.digest);

    const plan = this.imageFacts.get(`mounts\0${rootfs}\0${JSON.stringify(req.volumes.map((v) => [v.name, v.path]))}`, () => planMounts(fsImageTree(rootfs), req.volumes), (p) => p.ok);
    if (!plan.ok) throw providerError(plan.reason, plan.hint, undefined, req.instanceId);

    const argv = [...cfg.entrypoint, ...cfg.cmd];
    if (argv.length === 0)
      throw providerError(`image ${req.digest} has no entrypoint or cmd`, "set image.entrypoint / image.cmd in kiln.yaml and bake again", undefined, req.digest);

    const isRoot = process.geteuid?.() === 0;
    // Hook (uid-range.ts): the host uid the instance runs as; the image's user stays inside.
    const hostIds = isRoot ? this.serviceHostIds(req.service) : undefined;
    const owner = hostIds ?? { uid: user.uid, gid: user.gid };
    const volumeDirs: Record<string, string> = {};
    for (const v of req.volumes) {
      const vdir = join(this.opts.home, "volumes", req.service, v.name);
      mkdirSync(vdir, { recursive: true, mode: 0o750 });
      if (!lstatSync(vdir).isDirectory())
        throw providerError(`volume directory ${vdir} is not a directory`, "remove it; kiln recreates it", undefined, req.instanceId);
      // Only the top: a volume written by an earlier image under another uid keeps its files' owners,
      // except once, when kiln's range takes over a volume the image's user owned (chownTree).
      if (isRoot) {
        if (hostIds && lstatSync(vdir).uid !== hostIds.uid) chownTree(vdir, hostIds.uid, hostIds.gid);
        chownSync(vdir, owner.uid, owner.gid);
      }
      volumeDirs[v.name] = vdir;
    }

    for (const [p, at] of this.handedOut) if (at <= this.now() - 60_000) this.handedOut.delete(p);
    const inUse = this.portsInUse();
    const net = this.planNetwork(req, mode);
    // An allowed port is bound inside the namespace by the forwarder: the app's own port must differ.
    const egress = new Set(net.mode === "private" ? net.egress : []);
    const port = await freePort((p) => inUse.has(p) || egress.has(p) || (this.handedOut.get(p) ?? -Infinity) > this.now() - 60_000);
    this.handedOut.set(port, this.now());
    const env = new Map<string, string>();
    for (const kv of cfg.env) {
      const i = kv.indexOf("=");
      if (i > 0) env.set(kv.slice(0, i), kv.slice(i + 1));
    }
    for (const [k, v] of Object.entries(req.env)) env.set(k, v);
    env.set("PORT", String(port));
    // Where the app should bind, for apps that read HOST (the server `kiln init` scaffolds does):
    // the loopback, which the proxy dials — in the host's network (mode host, or no passt) 0.0.0.0
    // would expose the instance on every interface. An image or kiln.yaml that sets HOST wins.
    if (!env.has("HOST")) env.set("HOST", "127.0.0.1");
    env.set("KILN_INSTANCE_ID", req.instanceId);
    for (const [k, v] of env) {
      if (!k || k.includes("=") || k.includes("\0") || v.includes("\0") || k.startsWith(RESERVED_ENV_PREFIX))
        throw providerError(`environment variable ${JSON.stringify(k)} cannot be passed`, `names may not contain '=' or NUL nor start with ${RESERVED_ENV_PREFIX}, values may not contain NUL`, undefined, req.instanceId);
    }

    const stageDir = this.opts.stageDir ?? "/run/kiln-stage";
    const seccomp = mode.kind === "chroot" ? undefined : seccompFilterFor();
    if (mode.kind !== "chroot" && !seccomp && !this.warnedSeccomp) {
      this.warnedSeccomp = true;
      this.log(`WARNING: no seccomp filter for ${process.arch} (kiln's filter knows x86_64's syscall numbers only): instances run with bubblewrap's namespaces and --disable-userns alone`);
    }
    const input: SandboxInput = {
      instanceId: req.instanceId,
      mounts: plan.mounts,
      rootfs,
      volumeDirs,
      uid: user.uid,
      gid: user.gid,
      ...(hostIds ? { hostUid: hostIds.uid, hostGid: hostIds.gid } : {}),
      workdir: cfg.workdir || "/",
      env: [...env.entries()],
      argv,
      tmpSizeBytes: this.opts.tmpSizeBytes ?? 64 * 1024 * 1024,
      shmSizeBytes: this.opts.shmSizeBytes ?? 64 * 1024 * 1024,
      stageDir,
      ...(mode.kind === "staged-bwrap" ? { stageFstabPath: join(dir, STAGE_FSTAB_FILE) } : {}),
      hostPath: HOST_PATH,
      ...(seccomp ? { seccomp } : {}),
      ...(net.mode === "private" ? { unshareNet: true } : {}),
    };
    let spec: SpawnCommand;
    if (mode.kind === "user-bwrap") spec = userBwrapCommand(input, mode.tools);
    else {
      this.ensureStageDir(stageDir);
      spec = mode.kind === "staged-bwrap" ? stagedBwrapCommand(input, mode.tools) : chrootCommand(input, mode.tools);
    }
    const sandbox: SandboxKind = mode.kind === "chroot" ? "chroot" : "bwrap";
    // Hook (limits-hook.ts): the command starts inside the instance's cgroups, or under prlimit.
    const limited = this.limits.prepare(req, spec);
    spec = limited.spec;

    mkdirSync(dir, { recursive: true, mode: 0o755 });
    // Read by the staging shell as root (sandbox-command.ts): root's alone.
    if (spec.stageFstab) writeFileSync(spec.stageFstab.path, spec.stageFstab.text, { mode: 0o600 });
    // Before the spawn: a controller killed before the forwarder runs leaves what the next one needs to attach it.
    if (net.mode === "private") writeNetRecord(dir, { schema: 1, mode: "private", egress: net.egress });
    const logPath = join(dir, LOG_FILE);
    const logFd = openSync(logPath, "a", 0o640);
    const statusFd = sandbox === "bwrap" ? openSync(join(dir, STATUS_FILE), "w", 0o644) : undefined;
    const fields: Omit<InstanceMeta, "pid" | "startTime"> = {
      schema: 1,
      id: req.instanceId,
      service: req.service,
      release: req.release,
      digest: req.digest,
      address: `127.0.0.1:${port}`,
      port,
      startedAt: this.now(),
      sandbox,
      uid: user.uid,
      gid: user.gid,
      ...(hostIds ? { hostUid: hostIds.uid, hostGid: hostIds.gid } : {}),
      ...(limited.record ? { limits: limited.record } : {}),
    };
    this.normalized.add(req.instanceId); // its own start: nothing of an earlier controller's to undo
    let spawned: Spawned;
    try {
      writeSync(logFd, `[kiln] ${new Date(this.now()).toISOString()} launching ${req.instanceId} (${req.service}, ${req.digest}) on 127.0.0.1:${port}, sandbox ${mode.kind}, uid ${user.uid}:${user.gid}${hostIds ? ` (host ${hostIds.uid}:${hostIds.gid})` : ""}, network ${net.mode === "private" ? `private (egress: ${net.egress.length ? net.egress.map((p) => `127.0.0.1:${p}`).join(", ") : "none"})` : `host (${net.reason})`}${limited.logLine}\n`);
      // Off the event loop (spawner.ts), detached: its own session and process group, so it
      // survives us and can be signalled as one. bwrap reads its environment (--args) and the
      // seccomp program from pipes; a few KiB fit a pipe's buffer, and bwrap reads them at once.
      // meta.json is written by the spawning thread as soon as the spawn returns, before bwrap itself
      // runs (the spawner holds the child on a gate until then): no process of ours goes unrecorded.
      spawned = await this.spawner.spawn({
        file: spec.file,
        args: spec.args,
        env: spec.env,
        cwd: "/",
        stdio:
          statusFd === undefined
            ? ["ignore", logFd, logFd]
            : ["ignore", logFd, logFd, statusFd, spec.envArgs !== undefined ? { write: spec.envArgs } : "ignore", ...(spec.seccomp ? [{ write: spec.seccomp }] : [])],
        record: { dir, file: META_FILE, fields: { ...fields }, indent: 2 },
      });
    } catch (e) {
      if (!(e instanceof SpawnFailure) || e.stage === "spawn") this.limits.abandon(limited.record);
      if (e instanceof SpawnFailure && e.stage === "record")
        throw providerError(`cannot record ${req.instanceId}: ${e.message}`, `check the free space and permissions of ${dir}`, e, req.instanceId);
      throw providerError(`cannot start ${spec.file}`, "check that the sandbox tools are installed and executable", e, req.instanceId);
    } finally {
      closeSync(logFd);
      if (statusFd !== undefined) closeSync(statusFd);
    }
    const { pid } = spawned;
    // Spawned detached, the sandbox is a session of its own: its priority is raised until the
    // instance answers (startup-boost.ts).
    this.boost.add(req.instanceId, pid);
    const meta: InstanceMeta = { ...fields, pid, startTime: spawned.startTime };
    if (net.mode === "host") writeNetRecord(dir, { schema: 1, mode: "host", reason: net.reason, egress: [] });
    const exited = spawned.exit.then(({ code, signal }) => {
      // While we are its parent we learn the real exit code; later controllers read bwrap's status line.
      // This runs outside every caller's try: a write that fails here (a full disk) would end the
      // controller. Unrecorded, the exit is read back from bwrap's status line.
      try {
        const latest = readMeta(dir);
        if (latest && latest.pid === pid && latest.exitCode == null) {
          const sig = signalNumber(signal);
          writeMeta(dir, { ...latest, exitCode: code ?? (sig !== undefined ? 128 + sig : null), exitedAt: this.now() });
        }
      } catch (e) {
        this.log(`instance ${req.instanceId} exited (${code ?? signal}); recording its exit failed: ${(e as Error).message}`);
      }
      this.limits.finish(dir);
    });
    this.exits.set(req.instanceId, exited);

    if (sandbox === "bwrap") {
      // bwrap writes its first status line once the namespaces exist; an
      // earlier death is a sandbox failure (staging, bwrap options), not the app's.
      const deadline = Date.now() + STARTUP_WAIT_MS;
      for (;;) {
        const childPid = readBwrapStatus(dir).childPid;
        if (childPid !== undefined) {
          // The namespace's init, by start time: what tells this instance's namespace from a later one with the same number.
          const childStart = readStat(childPid)?.startTime;
          if (childStart !== undefined) {
            meta.childStartTime = childStart;
            const latest = readMeta(dir);
            writeMeta(dir, { ...(latest ?? meta), childStartTime: childStart });
          }
          if (net.mode === "private") await this.attachForwarder(meta, dir, childPid, net.egress, logPath);
          break;
        }
        const alive = isSameProcessAlive(pid, meta.startTime);
        if (!alive || Date.now() > deadline) {
          if (alive) this.signal(-pid, "SIGKILL"); // stuck before the namespaces exist: nothing of it may stay
          throw providerError(
            `the sandbox for ${req.instanceId} did not start: ${tailLines(logPath, 3).join(" | ")}`,
            `see the full log with \`kiln logs ${req.instanceId}\` (${logPath})`,
            undefined,
            req.instanceId,
          );
        }
        await sleep(10);
      }
    } else {
      // No PID namespace to sweep in the fallback: remember the private mount
      // namespace instead (once unshare(1) has entered it), so terminate can
      // find children that setsid() out of the process group.
      const own = namespaceOf(process.pid, "mnt");
      const deadline = Date.now() + STARTUP_WAIT_MS;
      while (isSameProcessAlive(pid, meta.startTime) && Date.now() < deadline) {
        const mnt = namespaceOf(pid, "mnt");
        if (mnt !== undefined && mnt !== own) {
          meta.mountNamespace = mnt;
          const latest = readMeta(dir);
          writeMeta(dir, { ...(latest ?? meta), mountNamespace: mnt });
          break;
        }
        await sleep(5);
      }
    }
    return this.observe(meta);
  }
}

/**
 * Refuses a uid range that a host account, group or subordinate range already uses: instances
 * running as that uid would be that account's processes (it could signal them and read their
 * environment), which is what the range exists to prevent.
 */
export function checkUidRange(range: UidRange): void {
  const conflicts = hostRangeConflicts(range);
  if (conflicts.length)
    throw new KilnError("KILN_E_PROVIDER", `kiln's uid range ${formatUidRange(range)} is already used on this host: ${conflicts.slice(0, 5).join("; ")}${conflicts.length > 5 ? ` (and ${conflicts.length - 5} more)` : ""}`, {
      hint: "set KILN_UID_RANGE=START-END to a range no account, group or /etc/subuid or /etc/subgid entry uses",
    });
}

/** lchown of a tree (never following a symlink), for a volume taken over from the image's uid. */
function chownTree(dir: string, uid: number, gid: number): void {
  const stack = [dir];
  while (stack.length) {
    const d = stack.pop()!;
    lchownSync(d, uid, gid);
    let entries: import("node:fs").Dirent[] = [];
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      continue; // not a directory
    }
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) stack.push(p);
      else lchownSync(p, uid, gid);
    }
  }
}

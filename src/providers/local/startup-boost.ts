// A starting instance's share of the CPU (issue 17). On a busy host every running process takes
// its turn at the CPU, and Linux shares it out per session ("autogroup": each session is one
// group, and busy groups get equal shares). Each local instance is its own session (the sandbox
// is spawned detached), as is its forwarder, the proxy and the controller; so an instance that
// starts while the fleet serves load gets one share among a dozen, and its start (the runtime
// loading, the forwarder allocating its buffers) takes two to three times as long as on an idle
// host. A rolling replacement waits on those starts.
//
// So the provider raises the priority of a starting instance's session, and of its forwarder's,
// until the instance first answers a health probe (the controller calls Provider.started), and at
// the latest BOOST_CAP_MS after the launch. It writes the session's nice value to
// /proc/PID/autogroup: raising it needs CAP_SYS_NICE (root); without it, or when the kernel
// does not group by session (sched_autogroup_enabled 0, or the instance in a cpu cgroup of its
// own), the write fails or does nothing, and instances start at the normal priority.
//
// KILN_STARTUP_BOOST sets the nice value: 0 or "off" turns it off, -1 … -20 raise it more or
// less; the default is -5 (about three shares instead of one).
//
// Every write names a process by pid and start time (procfs.ts): a pid reused since is left alone.

import { readFileSync, writeFileSync } from "node:fs";
import { KilnError } from "../../errors.js";
import { isSameProcessAlive, readStat } from "./procfs.js";

export const DEFAULT_STARTUP_BOOST = -5;
/** The longest a start keeps the raised priority, whatever the controller says (a start that never answers). */
export const BOOST_CAP_MS = 30_000;

/**
 * KILN_STARTUP_BOOST's value as a nice value (0 = off).
 *
 *   undefined, ""  → -5 (the default)
 *   "off", "0"     → 0
 *   "-10"          → -10
 *   "5", "-21", "x" → an error: a nice value from -20 to 0, or off
 */
export function parseStartupBoost(text: string | undefined): number {
  if (text === undefined || text.trim() === "") return DEFAULT_STARTUP_BOOST;
  const t = text.trim().toLowerCase();
  if (t === "off") return 0;
  const n = Number(t);
  if (!/^-?\d+$/.test(t) || n > 0 || n < -20)
    throw new KilnError("KILN_E_USAGE", `KILN_STARTUP_BOOST=${JSON.stringify(text)} is not a nice value from -20 to 0`, {
      hint: "give a negative nice value for starting instances (e.g. -5, the default), or 0 / off for none",
    });
  return n === 0 ? 0 : n; // not -0
}

/**
 * "/autogroup-1234 nice -5" → -5; undefined when the text is not that (no autogroup support).
 */
export function parseAutogroupNice(text: string): number | undefined {
  const m = /^\/autogroup-\d+ nice (-?\d+)\s*$/.exec(text);
  return m ? Number(m[1]) : undefined;
}

interface Boosted {
  procs: { pid: number; startTime: number }[];
  timer: NodeJS.Timeout;
}

export interface StartupBoostDeps {
  /** the nice value for starting instances; 0: off */
  level: number;
  log: (line: string) => void;
  /** default: /proc/PID/autogroup */
  readAutogroup?: (pid: number) => string;
  writeAutogroup?: (pid: number, nice: number) => void;
  /** default: /proc/sys/kernel/sched_autogroup_enabled is 1 */
  autogroupsEnabled?: () => boolean;
  capMs?: number;
}

function autogroupsEnabled(): boolean {
  try {
    return readFileSync("/proc/sys/kernel/sched_autogroup_enabled", "utf8").trim() === "1";
  } catch {
    return false;
  }
}

export class StartupBoost {
  private readonly boosted = new Map<string, Boosted>();
  private disabled: boolean;
  private checked = false;
  private readonly read: (pid: number) => string;
  private readonly write: (pid: number, nice: number) => void;

  constructor(private readonly d: StartupBoostDeps) {
    this.disabled = d.level === 0;
    this.read = d.readAutogroup ?? ((pid) => readFileSync(`/proc/${pid}/autogroup`, "utf8"));
    this.write = d.writeAutogroup ?? ((pid, nice) => writeFileSync(`/proc/${pid}/autogroup`, String(nice)));
  }

  /** Raise the priority of `pid`'s session (the sandbox's, or the forwarder's) for instance `id`'s start. */
  add(id: string, pid: number): void {
    if (this.disabled) return;
    if (!this.checked) {
      this.checked = true;
      if (!(this.d.autogroupsEnabled ?? autogroupsEnabled)()) {
        this.disabled = true;
        this.d.log("starting instances run at the normal CPU priority: this kernel does not group processes by session (kernel.sched_autogroup_enabled is not 1)");
        return;
      }
    }
    const startTime = readStat(pid)?.startTime;
    if (startTime === undefined) return;
    try {
      this.write(pid, this.d.level);
    } catch (e) {
      // EPERM (not root), ENOENT (no autogroups in this kernel): said once, then not tried again.
      this.disabled = true;
      this.d.log(`starting instances run at the normal CPU priority: cannot raise it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); set KILN_STARTUP_BOOST=off to silence this`);
      return;
    }
    let b = this.boosted.get(id);
    if (!b) {
      b = { procs: [], timer: setTimeout(() => this.end(id), this.d.capMs ?? BOOST_CAP_MS) };
      b.timer.unref();
      this.boosted.set(id, b);
    }
    b.procs.push({ pid, startTime });
  }

  /** Instance `id` has started (or is being stopped): its sessions go back to the normal priority. */
  end(id: string): void {
    const b = this.boosted.get(id);
    if (!b) return;
    this.boosted.delete(id);
    clearTimeout(b.timer);
    for (const p of b.procs) this.restore(p.pid, p.startTime);
  }

  /** Whether instance `id` is running at the raised priority now. */
  has(id: string): boolean {
    return this.boosted.has(id);
  }

  /**
   * An instance this object did not start (an earlier controller did, and may have been stopped
   * mid-start): if its session still has a raised priority, it goes back to normal.
   */
  normalize(pid: number, startTime: number): void {
    let nice: number | undefined;
    try {
      nice = parseAutogroupNice(this.read(pid));
    } catch {
      return;
    }
    if (nice !== undefined && nice < 0) this.restore(pid, startTime);
  }

  private restore(pid: number, startTime: number): void {
    if (!isSameProcessAlive(pid, startTime)) return;
    try {
      this.write(pid, 0);
    } catch (e) {
      this.d.log(`cannot return process ${pid} to the normal CPU priority: ${(e as Error).message}`);
    }
  }
}

// The local provider's side of kiln.yaml `resources` (limits.ts holds the decisions): one object
// the provider calls at four points — prepare (before spawn), finish (once an instance has
// exited: log what the kernel did at the limits, remove the cgroups), abandon (the spawn
// failed) and sweepOnce (the first listing after a start: cgroups of a crashed controller).

import { appendFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { describeLimits } from "../../config/resources.js";
import { KilnError } from "../../errors.js";
import type { LaunchRequest } from "../provider.js";
import { chooseEnforcement, cgroupEntry, createCgroups, limitHitsLine, planLimits, readCgroupHost, readLimitHits, removeCgroups, rlimitEntry, sweepOrphanCgroups, type CgroupHost, type LocalEnforcement } from "./limits.js";
import { LOG_FILE, readMeta, writeMeta, type InstanceLimitsRecord } from "./meta.js";
import { isSameProcessAlive } from "./procfs.js";
import type { SpawnCommand } from "./sandbox-command.js";

export interface LimitsHookDeps {
  home: string;
  now: () => number;
  findExecutable: (name: string) => string | undefined;
  /** default: the running process's */
  isRoot?: boolean;
  /** default: read from /proc/self */
  host?: CgroupHost;
}

export class LimitsHook {
  private readonly d: LimitsHookDeps;
  private host: CgroupHost | undefined;
  private swept = false;

  constructor(d: LimitsHookDeps) {
    this.d = d;
  }

  private cgroupHost(): CgroupHost {
    this.host ??= this.d.host ?? readCgroupHost();
    return this.host;
  }

  enforcement(): LocalEnforcement {
    return chooseEnforcement(this.cgroupHost(), this.d.isRoot ?? process.geteuid?.() === 0);
  }

  /** The command to spawn instead of `spec`, the record for meta.json and a suffix for the launch log line. */
  prepare(req: LaunchRequest, spec: SpawnCommand): { spec: SpawnCommand; record?: InstanceLimitsRecord; logLine: string } {
    if (!req.resources) return { spec, logLine: "" };
    const enforcement = this.enforcement();
    const plan = planLimits(req.resources, req.instanceId, this.d.home, this.cgroupHost(), enforcement);
    const need = (name: string): string => {
      const p = this.d.findExecutable(name);
      if (!p) throw new KilnError("KILN_E_PROVIDER", `${name} is not installed: kiln.yaml's resources cannot be enforced`, { hint: `install it (Debian: util-linux / dash), or remove resources: from kiln.yaml`, details: [{ where: req.instanceId, message: `${name} not found` }] });
      return p;
    };
    let out = spec;
    if (plan.cgroups.length) {
      try {
        createCgroups(plan, this.cgroupHost());
      } catch (e) {
        throw new KilnError("KILN_E_PROVIDER", `cannot create the cgroups of ${req.instanceId}: ${(e as Error).message}`, {
          hint: "kiln creates them under its own cgroup; under systemd give its unit Delegate=yes, or run kiln as a user without resources: limits",
          cause: e,
          details: [{ where: req.instanceId, message: "cgroup setup failed" }],
        });
      }
      out = cgroupEntry(spec, plan.cgroups, need("sh"));
    } else if (plan.rlimits.data !== undefined || plan.rlimits.nproc !== undefined) {
      out = rlimitEntry(spec, plan.rlimits, need("prlimit"));
    }
    const record: InstanceLimitsRecord = { enforcement, resources: req.resources, cgroups: plan.cgroups.map((c) => c.dir) };
    const unenforced = plan.unenforced.length ? `; NOT enforced: ${plan.unenforced.join(", ")}` : "";
    return { spec: out, record, logLine: `, limits ${describeLimits(req.resources)} (${enforcement}${unenforced})` };
  }

  /** The spawn failed before an instance existed: its cgroups go at once. */
  abandon(record: InstanceLimitsRecord | undefined): void {
    if (record) removeCgroups(record.cgroups);
  }

  /**
   * Once the instance in `dir` has exited: append to its log what the kernel did at its limits
   * (once), then remove its cgroups (again on a later call while a process still lingers).
   * Idempotent, and a no-op for a running instance or one without limits.
   */
  finish(dir: string): void {
    const meta = readMeta(dir);
    const l = meta?.limits;
    if (!meta || !l || l.released || isSameProcessAlive(meta.pid, meta.startTime)) return;
    const next: InstanceLimitsRecord = { ...l };
    if (!l.reported) {
      const line = limitHitsLine(readLimitHits(l.cgroups), l.resources);
      if (line) {
        try {
          appendFileSync(join(dir, LOG_FILE), `[kiln] ${new Date(this.d.now()).toISOString()} ${line}\n`);
        } catch {
          // the log is gone with its directory: nothing to tell
        }
      }
      next.reported = true;
    }
    next.released = removeCgroups(l.cgroups);
    writeMeta(dir, { ...(readMeta(dir) ?? meta), limits: next });
  }

  /**
   * First listing only: cgroups under this home that no live or recorded instance accounts for
   * (a controller died between creating them and writing meta.json). Recorded instances are
   * cleaned by finish() as they are listed.
   */
  sweepOnce(instancesRoot: string, launching: (id: string) => boolean): void {
    if (this.swept) return;
    this.swept = true;
    const enforcement = this.enforcement();
    if (enforcement === "rlimit") return;
    sweepOrphanCgroups(this.cgroupHost(), enforcement, this.d.home, (id) => launching(id) || existsSync(join(instancesRoot, id, "meta.json")));
  }
}

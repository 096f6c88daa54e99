// Pushing the routing table: when it changed, or when the router holds an older one (it
// restarted without its file). What the table holds is planRoutingTable's decision.

import type { Router, RouterStats, RoutingTable } from "../traffic/router.js";
import { planRoutingTable } from "./routing-plan.js";
import type { ServiceState } from "./service-state.js";
import { planReadBackDelay } from "./wake.js";

/** Same targets, weights, preview, health and drain timeout (the version aside). */
export function sameTable(a: RoutingTable, b: RoutingTable): boolean {
  if (a.targets.length !== b.targets.length || a.drainTimeoutMs !== b.drainTimeoutMs || a.preview !== b.preview) return false;
  if (JSON.stringify(a.health) !== JSON.stringify(b.health) || JSON.stringify(a.releaseWeights) !== JSON.stringify(b.releaseWeights)) return false;
  if (JSON.stringify(a.maintenance) !== JSON.stringify(b.maintenance)) return false;
  for (let i = 0; i < a.targets.length; i++) {
    const x = a.targets[i]!, y = b.targets[i]!;
    if (x.id !== y.id || x.release !== y.release || x.address !== y.address || x.weight !== y.weight || x.state !== y.state) return false;
  }
  return true;
}

export class RouterSync {
  private last?: RoutingTable;
  /** what the last pushed table was built from */
  private lastInputs?: string;

  /** a written table not yet read back as applied: its version, reads so far, and when the last was due */
  private readBack?: { version: number; attempt: number; lastAt: number };

  constructor(
    private readonly state: ServiceState,
    private readonly router: Router,
    /** a table was written: the loop should read the router back at once */
    private readonly wake?: () => void,
  ) {}

  /**
   * Fold in the router's read-back (the pass's observation). The last written table counts as
   * applied once the router reports its version and every active target with weight in rotation;
   * until then the next read is due quickly (planReadBackDelay), a bounded number of times.
   */
  readBackSeen(stats: RouterStats | undefined, inRotation: (id: string) => boolean, now: number): void {
    const rb = this.readBack;
    if (!rb) return;
    const applied = stats !== undefined && stats.tableVersion >= rb.version && (this.last?.targets ?? []).every((t) => t.state !== "active" || t.weight === 0 || inRotation(t.id));
    if (applied || planReadBackDelay(rb.attempt + 1) === undefined) this.readBack = undefined;
    else this.readBack = { version: rb.version, attempt: rb.attempt + 1, lastAt: now };
  }

  /** When the next read-back of a written table is due (undefined: none pending). */
  nextReadBackAt(): number | undefined {
    const rb = this.readBack;
    if (!rb) return undefined;
    const d = planReadBackDelay(rb.attempt);
    return d === undefined ? undefined : rb.lastAt + d;
  }

  async sync(stats: RouterStats | undefined): Promise<void> {
    const { db, service } = this.state;
    const current = db.getFact(service, "tableVersion") ?? 0;
    const routerBehind = stats !== undefined && stats.tableVersion < current;
    // The table is a function of the instance rows and the active rollout: when neither
    // changed since the last push there is nothing to build (10,000-instance fleets).
    const r = db.activeRollout(service);
    const live = db.getFact(service, "live");
    const maintenance = db.getFact(service, "maintenance");
    const inputs = `${db.instancesRevision()}|${r?.id}:${r?.state}:${JSON.stringify(r?.progress)}:${r?.switchedAt}|${live}|${JSON.stringify(maintenance)}`;
    if (inputs === this.lastInputs && !routerBehind) return;
    const candidate: RoutingTable = planRoutingTable({ instances: db.liveInstances(service), rollout: r, spec: this.state.specOf(r?.target ?? live), version: current });
    if (maintenance !== undefined) candidate.maintenance = maintenance;
    if (this.last && sameTable(candidate, this.last) && !routerBehind) {
      this.lastInputs = inputs;
      return;
    }
    const version = current + 1;
    try {
      await this.router.setTable({ ...candidate, version });
      db.setFact(service, "tableVersion", version);
      this.last = candidate;
      this.lastInputs = inputs;
      this.readBack = { version, attempt: 0, lastAt: this.state.now() };
      this.wake?.();
    } catch (e) {
      this.state.log(`routing table not pushed: ${(e as Error).message}`);
    }
  }
}

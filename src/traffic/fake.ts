// An in-memory Router for fast controller tests. It behaves like the proxy at
// the interface (same version rule, same inRotation rule, draining timestamps,
// release counters kept after removal) and lets a test play the world: mark
// targets unhealthy, set in-flight counts, record traffic.

import { KilnError } from "../errors.js";
import type { Counters, Router, RouterStats, RoutingTable, Target, TargetStatus } from "./router.js";

export interface FakeRouterOptions {
  /** clock for drainingSince; pass the test's manual clock */
  now?: () => number;
  pid?: number;
  listen?: string;
}

const zero = (): Counters => ({ requests: 0, errors5xx: 0, connectFailures: 0 });

export class FakeRouter implements Router {
  /** every accepted table, oldest first (copies) */
  readonly tables: RoutingTable[] = [];
  private readonly unhealthy = new Set<string>();
  private readonly inflight = new Map<string, number>();
  private readonly targetCounters = new Map<string, Counters>();
  private readonly releaseCounters = new Map<string, Counters>();
  private readonly drainingSince = new Map<string, number>();
  private readonly now: () => number;

  constructor(private readonly opts: FakeRouterOptions = {}) {
    this.now = opts.now ?? Date.now;
  }

  /** the table in force, if any */
  get table(): RoutingTable | undefined {
    return this.tables[this.tables.length - 1];
  }

  async setTable(table: RoutingTable): Promise<void> {
    const current = this.table;
    if (current && table.version < current.version) {
      throw new KilnError(
        "KILN_E_CONTROLLER",
        `proxy refused routing table v${table.version}: table version ${table.version} is older than the current version ${current.version}`,
        { hint: "the controller's table version must only grow" },
      );
    }
    const copy: RoutingTable = structuredClone(table);
    const ids = new Set(copy.targets.map((t) => t.id));
    for (const t of copy.targets) {
      if (t.state === "draining" && !this.drainingSince.has(t.id)) this.drainingSince.set(t.id, this.now());
      if (t.state === "active") this.drainingSince.delete(t.id);
      if (!this.releaseCounters.has(t.release)) this.releaseCounters.set(t.release, zero());
    }
    for (const id of [...this.drainingSince.keys()]) if (!ids.has(id)) this.drainingSince.delete(id);
    for (const id of [...this.targetCounters.keys()]) if (!ids.has(id)) this.targetCounters.delete(id);
    this.tables.push(copy);
  }

  async stats(): Promise<RouterStats> {
    const table = this.table;
    const targets: TargetStatus[] = (table?.targets ?? []).map((t) => this.status(t));
    const releases: Record<string, Counters> = {};
    for (const [k, v] of this.releaseCounters) releases[k] = { ...v };
    return {
      tableVersion: table?.version ?? 0,
      targets,
      releases,
      pid: this.opts.pid ?? 0,
      listen: this.opts.listen ?? "127.0.0.1:0",
    };
  }

  /** The test's view of health: unhealthy targets leave rotation as they would in the proxy. */
  setHealthy(targetId: string, healthy: boolean): void {
    if (healthy) this.unhealthy.delete(targetId);
    else this.unhealthy.add(targetId);
  }

  setInflight(targetId: string, n: number): void {
    this.inflight.set(targetId, n);
  }

  /** Record traffic: adds to the target's counters and to its release's (like the proxy does). */
  addCounters(targetId: string, delta: Partial<Counters>): void {
    const t = this.table?.targets.find((x) => x.id === targetId);
    if (!t) throw new Error(`FakeRouter.addCounters: no target ${targetId} in the current table`);
    const tc = this.targetCounters.get(targetId) ?? zero();
    this.targetCounters.set(targetId, tc);
    const rc = this.releaseCounters.get(t.release) ?? zero();
    this.releaseCounters.set(t.release, rc);
    for (const c of [tc, rc]) {
      c.requests += delta.requests ?? 0;
      c.errors5xx += delta.errors5xx ?? 0;
      c.connectFailures += delta.connectFailures ?? 0;
    }
  }

  /** Overwrite one release's counters (e.g. to stage a canary's error rate). */
  setReleaseCounters(release: string, counters: Counters): void {
    this.releaseCounters.set(release, { ...counters });
  }

  private status(t: Target): TargetStatus {
    const healthy = !this.unhealthy.has(t.id);
    const s: TargetStatus = {
      id: t.id,
      release: t.release,
      address: t.address,
      state: t.state,
      weight: t.weight,
      healthy,
      inRotation: t.state === "active" && t.weight > 0 && healthy,
      inflight: this.inflight.get(t.id) ?? 0,
      ...(this.targetCounters.get(t.id) ?? zero()),
    };
    const since = this.drainingSince.get(t.id);
    if (since !== undefined) s.drainingSince = since;
    return s;
  }
}

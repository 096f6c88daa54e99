// An in-memory Router for fast controller tests. It behaves like the proxy at
// the interface (same version rule, same inRotation rule, draining timestamps,
// release counters kept after removal, the same per-release split and preview
// rule, picked by the same balancer) and lets a test play the world: mark
// targets unhealthy, set in-flight counts, play traffic.

import { firstAfter } from "../change-log.js";
import { KilnError } from "../errors.js";
import { groupByRelease, pickByRelease, type ReleaseGroup } from "./proxy/balancer.js";
import {
  LATENCY_HISTOGRAM_SIZE,
  latencyBucket,
  type Counters,
  type Router,
  type RouterStats,
  type RouterStatsDelta,
  type RoutingTable,
  type Target,
  type TargetStatus,
} from "./router.js";

export interface FakeRouterOptions {
  /** clock for drainingSince; pass the test's manual clock */
  now?: () => number;
  pid?: number;
  listen?: string;
  /** as the proxy's --preview-listen: stats() then reports `preview` */
  previewListen?: string;
}

/** One request as the proxy would count it. */
export interface RequestOutcome {
  /** the status the client received */
  status: number;
  /** arrival at the proxy → end of the response */
  latencyMs: number;
  /** served on the preview listener: counted in previewCounters, not in production counters */
  preview?: boolean;
}

export interface ConnectFailureOutcome {
  /**
   * true: the proxy retried elsewhere, so only connectFailures grows here;
   * false (default): the client got a 502 from this target (connectFailures,
   * requests, errors5xx and the latency histogram grow).
   */
  retried?: boolean;
  latencyMs?: number;
  preview?: boolean;
}

const zero = (): Counters => ({ requests: 0, errors5xx: 0, connectFailures: 0 });
const zeroRelease = (): Counters => ({ ...zero(), latency: new Array<number>(LATENCY_HISTOGRAM_SIZE).fill(0) });
const copy = (c: Counters): Counters => (c.latency ? { ...c, latency: [...c.latency] } : { ...c });

interface Candidate {
  readonly target: Target;
  readonly release: string;
  readonly weight: number;
  currentWeight: number;
}

export class FakeRouter implements Router {
  /** every accepted table, oldest first (copies) */
  readonly tables: RoutingTable[] = [];
  private readonly unhealthy = new Set<string>();
  private readonly inflight = new Map<string, number>();
  private readonly targetCounters = new Map<string, Counters>();
  private readonly releaseCounters = new Map<string, Counters>();
  private readonly previewCounters = new Map<string, Counters>();
  private readonly drainingSince = new Map<string, number>();
  private candidates: Candidate[] = [];
  private groups: ReleaseGroup<Candidate>[] | undefined;
  private previewCursor = 0;
  private readonly now: () => number;
  /**
   * The table in force by target id, as balancer candidates (each holds its target): a new
   * table keeps an unchanged target's candidate, score included. One map for both, built once per table.
   */
  private byId = new Map<string, Candidate>();
  /** change log for statsSince: target ids whose status changed, newest last */
  private log: { seq: number; id: string }[] = [];
  private seq = 0;
  private floor = 0;

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
    // A copy (the caller may reuse its objects); unchanged targets share the previous table's
    // copy, so a long history of 10,000-target tables stays small. One pass over the table:
    // each target's copy, its change-log entry, drain start and balancer candidate (whose
    // score survives a new table for the same target id, as in the proxy).
    const prevById = this.byId;
    const byId = new Map<string, Candidate>();
    const candidates: Candidate[] = [];
    const now = this.now();
    const targets: Target[] = new Array(table.targets.length);
    for (let k = 0; k < table.targets.length; k++) {
      const t = table.targets[k]!;
      const pc = prevById.get(t.id);
      const p = pc?.target;
      if (p !== undefined && p.release === t.release && p.address === t.address && p.weight === t.weight && p.state === t.state) {
        // Unchanged: its drain start and its release's counters were settled when it was first
        // taken in this state (both stay while the target does), so there is nothing to redo.
        byId.set(p.id, pc!);
        candidates.push(pc!);
        targets[k] = p;
        continue;
      }
      this.changed(t.id);
      const c: Target = { id: t.id, release: t.release, address: t.address, weight: t.weight, state: t.state };
      if (c.state === "draining") {
        if (!this.drainingSince.has(c.id)) this.drainingSince.set(c.id, now);
      } else if (c.state === "active") this.drainingSince.delete(c.id);
      if (!this.releaseCounters.has(c.release)) this.releaseCounters.set(c.release, zeroRelease());
      const candidate: Candidate = { target: c, release: c.release, weight: c.weight, currentWeight: pc?.currentWeight ?? 0 };
      byId.set(c.id, candidate);
      candidates.push(candidate);
      targets[k] = c;
    }
    const copied: RoutingTable = { ...structuredClone({ ...table, targets: [] }), targets };
    for (const id of prevById.keys()) if (!byId.has(id)) this.changed(id);
    this.byId = byId;
    const ids = byId;
    for (const id of [...this.drainingSince.keys()]) if (!ids.has(id)) this.drainingSince.delete(id);
    for (const id of [...this.targetCounters.keys()]) if (!ids.has(id)) this.targetCounters.delete(id);
    this.candidates = candidates;
    this.groups = groupByRelease(copied.releaseWeights, this.candidates, this.groups);
    this.tables.push(copied);
  }

  async stats(): Promise<RouterStats> {
    return this.statsOf((this.table?.targets ?? []).map((t) => this.status(t)));
  }

  async statsSince(cursor: number | undefined): Promise<RouterStatsDelta> {
    if (cursor === undefined || cursor < this.floor) return { ...(await this.stats()), cursor: this.seq, full: true, removed: [] };
    const lo = firstAfter(this.log, cursor);
    const ids = new Set<string>();
    for (let k = lo; k < this.log.length; k++) ids.add(this.log[k]!.id);
    const targets: TargetStatus[] = [];
    const removed: string[] = [];
    for (const id of ids) {
      const c = this.byId.get(id);
      if (c) targets.push(this.status(c.target));
      else removed.push(id);
    }
    return { ...this.statsOf(targets), cursor: this.seq, full: false, removed };
  }

  private changed(id: string): void {
    this.log.push({ seq: ++this.seq, id });
    if (this.log.length > 4 * this.byId.size + 1024) {
      const drop = this.log.length >> 1;
      this.floor = this.log[drop - 1]!.seq;
      this.log = this.log.slice(drop);
    }
  }

  private statsOf(targets: TargetStatus[]): RouterStats {
    const table = this.table;
    const releases: Record<string, Counters> = {};
    for (const [k, v] of this.releaseCounters) releases[k] = copy(v);
    const previewCounters: Record<string, Counters> = {};
    for (const [k, v] of this.previewCounters) previewCounters[k] = copy(v);
    const s: RouterStats = {
      tableVersion: table?.version ?? 0,
      targets,
      releases,
      pid: this.opts.pid ?? 0,
      listen: this.opts.listen ?? "127.0.0.1:0",
      previewCounters,
    };
    if (this.opts.previewListen !== undefined) {
      s.preview = { listen: this.opts.previewListen };
      if (table?.preview !== undefined) s.preview.release = table.preview;
    }
    if (table?.maintenance !== undefined) s.maintenance = { ...table.maintenance };
    return s;
  }

  /** The test's view of health: unhealthy targets leave rotation as they would in the proxy. */
  setHealthy(targetId: string, healthy: boolean): void {
    if (healthy) this.unhealthy.delete(targetId);
    else this.unhealthy.add(targetId);
    this.changed(targetId);
  }

  setInflight(targetId: string, n: number): void {
    this.inflight.set(targetId, n);
    this.changed(targetId);
  }

  /**
   * The target the proxy would send the next new production request to
   * (releaseWeights split, then target weights; see RoutingTable), advancing
   * the rotation. undefined = the proxy would answer 503.
   */
  pick(): Target | undefined {
    return pickByRelease(this.groups, this.candidates, (c) => this.eligible(c.target))?.target;
  }

  /** The target the next preview request would go to (round robin); undefined = 503. */
  pickPreview(): Target | undefined {
    const release = this.table?.preview;
    if (release === undefined) return undefined;
    const n = this.candidates.length;
    for (let i = 0; i < n; i++) {
      const t = this.candidates[(this.previewCursor + i) % n]!.target;
      if (t.release === release && t.state === "active" && !this.unhealthy.has(t.id)) {
        this.previewCursor = (this.previewCursor + i + 1) % n;
        return t;
      }
    }
    return undefined;
  }

  /** Record one request a target answered, as the proxy counts it (target, release, histogram). */
  recordRequest(targetId: string, o: RequestOutcome): void {
    const { tc, rc } = this.countersOf(targetId, o.preview === true);
    for (const c of [tc, rc]) {
      c.requests += 1;
      if (o.status >= 500) c.errors5xx += 1;
    }
    rc.latency![latencyBucket(o.latencyMs)]! += 1;
  }

  /** Record a failed attempt on a target (see ConnectFailureOutcome for what is counted). */
  recordConnectFailure(targetId: string, o: ConnectFailureOutcome = {}): void {
    const { tc, rc } = this.countersOf(targetId, o.preview === true);
    for (const c of [tc, rc]) c.connectFailures += 1;
    if (o.retried !== true) this.recordRequest(targetId, { status: 502, latencyMs: o.latencyMs ?? 0, preview: o.preview });
  }

  /**
   * Play `n` requests through the routing rule: each goes to pick() (or
   * pickPreview()) and `respond` says what that target answered. Returns how
   * many each target served; "503" counts requests no target could take.
   *
   *   serve(1000, (t) => ({ status: t.release === "canary" ? 500 : 200, latencyMs: 3 }))
   */
  serve(
    n: number,
    respond: (t: Target) => { status: number; latencyMs: number },
    opts: { preview?: boolean } = {},
  ): Record<string, number> {
    const out: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      // Maintenance answers production requests itself (503), as every router must.
      const t = opts.preview ? this.pickPreview() : this.table?.maintenance !== undefined ? undefined : this.pick();
      const key = t?.id ?? "503";
      out[key] = (out[key] ?? 0) + 1;
      if (t) this.recordRequest(t.id, { ...respond(t), preview: opts.preview });
    }
    return out;
  }

  /** Add raw counts to a target and its release (production counters). */
  addCounters(targetId: string, delta: Partial<Counters>): void {
    const { tc, rc } = this.countersOf(targetId, false);
    for (const c of [tc, rc]) {
      c.requests += delta.requests ?? 0;
      c.errors5xx += delta.errors5xx ?? 0;
      c.connectFailures += delta.connectFailures ?? 0;
    }
    delta.latency?.forEach((x, i) => {
      if (i < LATENCY_HISTOGRAM_SIZE) rc.latency![i]! += x;
    });
  }

  /** Overwrite one release's counters (e.g. to stage a canary's error rate). */
  setReleaseCounters(release: string, counters: Counters): void {
    const c = zeroRelease();
    c.requests = counters.requests;
    c.errors5xx = counters.errors5xx;
    c.connectFailures = counters.connectFailures;
    counters.latency?.forEach((x, i) => {
      if (i < LATENCY_HISTOGRAM_SIZE) c.latency![i] = x;
    });
    this.releaseCounters.set(release, c);
  }

  private eligible(t: Target): boolean {
    return t.state === "active" && t.weight > 0 && !this.unhealthy.has(t.id);
  }

  private countersOf(targetId: string, preview: boolean): { tc: Counters; rc: Counters } {
    const t = this.byId.get(targetId)?.target;
    if (!t) throw new Error(`FakeRouter: no target ${targetId} in the current table`);
    const byRelease = preview ? this.previewCounters : this.releaseCounters;
    let rc = byRelease.get(t.release);
    if (rc === undefined) {
      rc = zeroRelease();
      byRelease.set(t.release, rc);
    }
    // Preview traffic is not in the target's (production) counters either.
    if (preview) return { tc: zero(), rc };
    this.changed(targetId);
    let tc = this.targetCounters.get(targetId);
    if (tc === undefined) {
      tc = zero();
      this.targetCounters.set(targetId, tc);
    }
    return { tc, rc };
  }

  private status(t: Target): TargetStatus {
    const healthy = !this.unhealthy.has(t.id);
    // A target's counters are the three counts (no histogram: that is per release).
    const c = this.targetCounters.get(t.id);
    const s: TargetStatus = {
      id: t.id,
      release: t.release,
      address: t.address,
      state: t.state,
      weight: t.weight,
      healthy,
      inRotation: t.state === "active" && t.weight > 0 && healthy,
      inflight: this.inflight.get(t.id) ?? 0,
      requests: c?.requests ?? 0,
      errors5xx: c?.errors5xx ?? 0,
      connectFailures: c?.connectFailures ?? 0,
    };
    const since = this.drainingSince.get(t.id);
    if (since !== undefined) s.drainingSince = since;
    return s;
  }
}

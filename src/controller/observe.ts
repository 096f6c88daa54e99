// Observation: what runs (provider), what the router confirms, and what the probes say,
// folded into the strategies' view of the fleet. The per-tick cost follows what changed, not
// the fleet's size: the provider's and router's change feeds (optional in their interfaces;
// a full list is the fallback), the state's instance change feed, a due-queue for probes,
// and a fleet view rebuilt only for the instances whose inputs changed.

import type { Provider } from "../providers/provider.js";
import type { FleetInstance, Observed } from "../rollout/types.js";
import type { InstanceCursor, InstanceRecord, StateDb } from "../state/db.js";
import type { ReleaseSettings } from "../state/release-settings.js";
import type { Router, RouterStats, TargetStatus } from "../traffic/router.js";
import { initialHealth, phaseFrom, recordProbe, type HealthParams, type ProbeOutcome, type TrackedHealth } from "../health/tracker.js";
import { DueQueue } from "./due-queue.js";

export type ProbeFn = (address: string, path: string, timeoutMs: number) => Promise<ProbeOutcome>;

export interface ObserverDeps {
  service: string;
  db: StateDb;
  provider: Provider;
  router: Router;
  probe: ProbeFn;
  /**
   * The same probe answered in memory (the fake provider's, in simulation): recorded at once,
   * skipping a promise per probe. The order is the one the asynchronous answers are recorded
   * in (each in turn, before the tick reads the fleet), so a simulation runs the same either way.
   */
  probeNow?: (address: string, path: string, timeoutMs: number) => ProbeOutcome;
  now: () => number;
  specOf: (release: string | undefined) => ReleaseSettings;
  /** an instance stopped passing its health checks */
  onUnhealthy: (rec: InstanceRecord, reason: string) => void;
  log?: (line: string) => void;
}

interface RouterView {
  inRotation: boolean;
  inflight: number;
}

export class FleetObserver {
  readonly health = new Map<string, TrackedHealth>();
  private readonly probing = new Set<string>();
  private readonly probes = new DueQueue();
  /** ids that fell due while not running: probed again once they run */
  private readonly parked = new Set<string>();
  private readonly running = new Map<string, boolean>();
  private providerCursor: number | undefined;
  private readonly targets = new Map<string, RouterView>();
  private routerCursor: number | undefined;
  private instanceCursor: InstanceCursor | undefined;
  /** the fleet view: one entry per live instance not being stopped, in launch order */
  private readonly views = new Map<string, FleetInstance>();
  private list: FleetInstance[] = [];
  private listStale = true;
  /** ids whose view must be rebuilt next tick: an input changed, or it depends on the clock */
  private readonly dirty = new Set<string>();
  /** ids whose view depends on the clock alone from a known instant: the end of their grace period */
  private readonly wakes = new DueQueue();
  /** ids whose view depends on the clock every tick (healthy, first healthy time not recorded yet) */
  private readonly clockBound = new Set<string>();
  /** live instance records by id, fetched once per observation (see StateDb.liveIndex) */
  private records: ReadonlyMap<string, InstanceRecord> = new Map();
  /** the router's last answer (counters, table version, pid); undefined when it did not answer */
  lastStats?: RouterStats;

  constructor(private readonly d: ObserverDeps) {}

  /** Seed health for instances state knows of (after a restart: healthy if they were and still run). */
  seed(id: string, healthy: boolean): void {
    this.health.set(id, initialHealth(healthy));
    this.dirty.add(id);
  }

  forget(id: string): void {
    this.health.delete(id);
    this.probes.cancel(id);
    this.dirty.add(id);
  }

  /** Read provider and router (their changes), start due probes. Returns the router's stats, or undefined when it did not answer. */
  async observe(): Promise<RouterStats | undefined> {
    await this.observeProvider();
    let stats: RouterStats | undefined;
    try {
      stats = await this.observeRouter();
    } catch (e) {
      this.d.log?.(`router unreachable: ${(e as Error).message}`);
    }
    this.lastStats = stats;
    this.observeState();
    this.probeDue();
    return stats;
  }

  private async observeProvider(): Promise<void> {
    const p = this.d.provider;
    if (p.changes) {
      const c = await p.changes(this.d.service, this.providerCursor);
      if (c.full) this.replaceRunning(c.instances);
      else {
        for (const i of c.instances) this.setRunning(i.id, i.state === "running");
        for (const id of c.removed) this.setRunning(id, undefined);
      }
      this.providerCursor = c.cursor;
      return;
    }
    this.replaceRunning(await p.list(this.d.service));
  }

  private replaceRunning(list: { id: string; state: string }[]): void {
    const seen = new Set<string>();
    for (const i of list) {
      seen.add(i.id);
      this.setRunning(i.id, i.state === "running");
    }
    for (const id of [...this.running.keys()]) if (!seen.has(id)) this.setRunning(id, undefined);
  }

  private setRunning(id: string, running: boolean | undefined): void {
    const cur = this.running.get(id);
    if (cur === running) return;
    if (running === undefined) this.running.delete(id);
    else this.running.set(id, running);
    this.dirty.add(id);
  }

  private async observeRouter(): Promise<RouterStats> {
    const r = this.d.router;
    if (r.statsSince) {
      const s = await r.statsSince(this.routerCursor);
      if (s.full) this.replaceTargets(s.targets);
      else {
        for (const t of s.targets) this.setTarget(t.id, t);
        for (const id of s.removed) this.setTarget(id, undefined);
      }
      this.routerCursor = s.cursor;
      return s;
    }
    const s = await r.stats();
    this.replaceTargets(s.targets);
    return s;
  }

  private replaceTargets(list: TargetStatus[]): void {
    const seen = new Set<string>();
    for (const t of list) {
      seen.add(t.id);
      this.setTarget(t.id, t);
    }
    for (const id of [...this.targets.keys()]) if (!seen.has(id)) this.setTarget(id, undefined);
  }

  private setTarget(id: string, t: TargetStatus | undefined): void {
    const cur = this.targets.get(id);
    if (!t) {
      if (cur) {
        this.targets.delete(id);
        this.dirty.add(id);
      }
      return;
    }
    if (cur && cur.inRotation === t.inRotation && cur.inflight === t.inflight) return;
    this.targets.set(id, { inRotation: t.inRotation, inflight: t.inflight });
    this.dirty.add(id);
  }

  /** An instance's phase for `kiln status` (as if running: status shows health, not process state). */
  phase(r: InstanceRecord, now: number): FleetInstance["phase"] {
    return phaseFrom(this.health.get(r.id) ?? initialHealth(false), true, r.launchedAt, this.d.specOf(r.release).health, now);
  }

  /** The router's view of one instance, as last observed. */
  target(id: string): RouterView | undefined {
    return this.targets.get(id);
  }

  private observeState(): void {
    this.records = this.d.db.liveIndex(this.d.service);
    const c = this.d.db.instanceChangesSince(this.d.service, this.instanceCursor);
    this.instanceCursor = c.cursor;
    if (c.full) {
      for (const id of this.views.keys()) this.dirty.add(id);
      for (const r of this.records.values()) {
        this.dirty.add(r.id);
        this.scheduleProbe(r);
      }
      this.listStale = true;
      return;
    }
    if (c.reordered) this.listStale = true;
    for (const id of c.ids) {
      this.dirty.add(id);
      const r = this.records.get(id);
      if (r) this.scheduleProbe(r);
    }
  }

  private scheduleProbe(r: InstanceRecord): void {
    if (this.probes.has(r.id) || this.probing.has(r.id) || !r.address) return;
    const h = this.health.get(r.id);
    this.probes.schedule(r.id, h ? h.lastProbeAt + this.d.specOf(r.release).health.interval : 0);
  }

  /** Probes run in the background; the loop reads whatever they last recorded. */
  private probeDue(): void {
    const now = this.d.now();
    for (const id of this.probes.popDue(now)) {
      const rec = this.records.get(id);
      if (!rec || rec.state === "terminating") continue;
      // Not running (yet): parked until it is (see fleet).
      if (!rec.address || !this.running.get(id)) {
        this.parked.add(id);
        continue;
      }
      this.probe(rec, this.d.specOf(rec.release).health);
    }
  }

  private probe(rec: InstanceRecord, hp: HealthParams): void {
    if (this.d.probeNow) {
      let o: ProbeOutcome | undefined;
      try {
        o = this.d.probeNow(rec.address!, hp.path, hp.timeout);
      } catch {
        // as a rejected probe: nothing recorded, probed again at its interval
      }
      try {
        if (o) this.recordOutcome(rec, o, hp);
      } finally {
        this.reschedule(rec.id);
      }
      return;
    }
    this.probing.add(rec.id);
    // scheduleProbe's work, knowing what it checks: the id was taken off the queue to be probed
    // and nothing schedules an id while its probe is out.
    const done = () => {
      this.probing.delete(rec.id);
      this.reschedule(rec.id);
    };
    this.d.probe(rec.address!, hp.path, hp.timeout).then(
      (o) => {
        try {
          this.recordOutcome(rec, o, hp);
        } finally {
          done();
        }
      },
      done,
    );
  }

  private reschedule(id: string): void {
    const r = this.records.get(id);
    const h = r?.address ? this.health.get(id) : undefined;
    if (h) this.probes.schedule(id, h.lastProbeAt + this.d.specOf(r!.release).health.interval);
  }

  private recordOutcome(rec: InstanceRecord, o: ProbeOutcome, hp: HealthParams): void {
    // Stopped while the probe was out: nothing is tracked for it any more.
    if (!this.records.has(rec.id)) return;
    const now = this.d.now();
    const cur = this.health.get(rec.id) ?? initialHealth(false);
    const next = recordProbe(cur, o, hp, now);
    this.health.set(rec.id, next);
    if (next.healthy !== cur.healthy || next.everHealthy !== cur.everHealthy || next.consecutiveFail !== cur.consecutiveFail || next.lastFailAnswered !== cur.lastFailAnswered) this.dirty.add(rec.id);
    if (next.healthy && !cur.healthy) {
      const r = this.records.get(rec.id);
      if (r && r.healthySince === undefined) this.recordHealthySince(rec.id, now);
    }
    if (!next.healthy && cur.healthy) this.d.onUnhealthy(rec, next.lastReason ?? "unknown");
  }

  /**
   * First healthy times are written together once the probe outcomes already queued have been
   * folded in: the instances of a launch step turn healthy within one tick, and their times are
   * then one write (one fsync on disk), not one each. The fleet view reads the same time either
   * way (healthySince falls back to the probe's instant while it is unrecorded).
   */
  private recordHealthySince(id: string, at: number): void {
    if (this.healthyWrites.length === 0) queueMicrotask(() => this.flushHealthySince());
    this.healthyWrites.push({ id, at });
  }
  private healthyWrites: { id: string; at: number }[] = [];

  private flushHealthySince(): void {
    const list = this.healthyWrites;
    this.healthyWrites = [];
    const live = this.d.db.liveIndex(this.d.service);
    const byTime = new Map<number, string[]>();
    for (const w of list) {
      // Stopped meanwhile: nothing to record.
      if (live.get(w.id)?.healthySince !== undefined || !live.has(w.id)) continue;
      const ids = byTime.get(w.at);
      if (ids) ids.push(w.id);
      else byTime.set(w.at, [w.id]);
    }
    try {
      this.d.db.tx(() => {
        for (const [at, ids] of byTime) this.d.db.updateInstances(ids, { healthySince: at });
      });
    } catch (e) {
      this.d.log?.(`first healthy times not recorded: ${(e as Error).message}`);
    }
  }

  /**
   * The strategies' view of the fleet. Only instances whose inputs changed (record, tracked
   * health, running, the router's read-back) or whose phase depends on the clock (not yet
   * healthy) are rebuilt; the rest keep last tick's object.
   */
  fleet(): Observed {
    const now = this.d.now();
    this.records = this.d.db.liveIndex(this.d.service);
    for (const id of this.clockBound) this.dirty.add(id);
    this.clockBound.clear();
    for (const id of this.wakes.popDue(now)) this.dirty.add(id);
    for (const id of this.dirty) {
      const r = this.records.get(id);
      if (!r || r.state === "terminating") {
        if (this.views.delete(id)) this.listStale = true;
        continue;
      }
      const h = this.health.get(id) ?? initialHealth(false);
      const isRunning = r.state === "launching" ? true : (this.running.get(id) ?? false);
      const t = this.targets.get(id);
      const view: FleetInstance = {
        id: r.id,
        release: r.release,
        phase: phaseFrom(h, isRunning, r.launchedAt, this.d.specOf(r.release).health, now),
        routing: r.routing,
        inRotation: t?.inRotation ?? false,
        inflight: t?.inflight ?? 0,
        launchedAt: r.launchedAt,
        healthySince: h.healthy ? (r.healthySince ?? now) : undefined,
        drainingSince: r.drainingSince,
        everHealthy: r.healthySince !== undefined || h.healthy,
      };
      if (!this.views.has(id)) this.listStale = true;
      else if (!this.listStale) this.list[this.indexOf(id)] = view;
      this.views.set(id, view);
      // The clock moves a view in two ways only: healthySince reads "now" until the first
      // healthy time is recorded, and a failing instance turns unhealthy when its grace ends.
      if (h.healthy && r.healthySince === undefined) this.clockBound.add(id);
      else if (!h.healthy && isRunning) {
        const graceEnds = r.launchedAt + this.d.specOf(r.release).health.grace;
        if (now < graceEnds) this.wakes.schedule(id, graceEnds);
      }
    }
    this.dirty.clear();
    for (const id of this.parked) {
      const r = this.records.get(id);
      if (!r || r.state === "terminating") this.parked.delete(id);
      else if (r.address && this.running.get(id)) {
        this.parked.delete(id);
        this.scheduleProbe(r);
      }
    }
    if (this.listStale) {
      this.list = [];
      this.index.clear();
      for (const r of this.d.db.liveInstances(this.d.service)) {
        const v = this.views.get(r.id);
        if (!v) continue;
        this.index.set(r.id, this.list.length);
        this.list.push(v);
      }
      this.listStale = false;
    }
    return { instances: this.list.slice() };
  }

  private readonly index = new Map<string, number>();
  private indexOf(id: string): number {
    return this.index.get(id)!;
  }
}

// Observation: what runs (provider), what the router confirms, and what the probes say,
// folded into the strategies' view of the fleet. The per-tick cost follows what changed, not
// the fleet's size: the provider's and router's change feeds (optional in their interfaces;
// a full list is the fallback), the state's instance change feed, a due-queue for probes (prober.ts),
// and a fleet view rebuilt only for the instances whose inputs changed.

import { tailLines } from "../file-tail.js";
import type { Provider } from "../providers/provider.js";
import type { FleetInstance, Observed } from "../rollout/types.js";
import type { InstanceCursor, InstanceRecord } from "../state/db.js";
import type { Router, RouterStats, TargetStatus } from "../traffic/router.js";
import { initialHealth, phaseFrom, type TrackedHealth } from "../health/tracker.js";
import { DueQueue } from "./due-queue.js";
import { Prober, type ProberDeps } from "./prober.js";
import { hasAnswered } from "./wake.js";

export type { ProbeFn } from "./prober.js";

export interface ObserverDeps extends Omit<ProberDeps, "records" | "isRunning" | "changed"> {
  provider: Provider;
  router: Router;
  /** a live instance's process was seen running and is not any more (not one kiln is stopping) */
  onExited?: (rec: InstanceRecord, exitCode: number | null | undefined) => void;
}

/** An instance's fleet view and where it stands in the list (valid while the list is not stale). */
interface ViewSlot {
  view: FleetInstance;
  pos: number;
}

interface RouterView {
  inRotation: boolean;
  inflight: number;
}

/** The router's view of an instance it does not have (not in the table): out of rotation, nothing in flight. */
// Not frozen: frozen, it would have a shape of its own beside the views setTarget makes. Never written.
const NOT_A_TARGET: RouterView = { inRotation: false, inflight: 0 };

export class FleetObserver {
  private readonly prober: Prober;
  private readonly running = new Map<string, boolean>();
  private providerCursor: number | undefined;
  /** counts provider observations begun; each one's answer describes the fleet as of its start */
  private observation = 0;
  /**
   * Instances whose launch was recorded while an observation was under way, with the number of
   * the last observation begun by then: an answer from that observation or an earlier one was
   * taken before the launch returned (a container created but not started yet, or no process
   * yet), and cannot say the instance stopped.
   */
  private readonly launchedDuring = new Map<string, number>();
  private readonly targets = new Map<string, RouterView>();
  private routerCursor: number | undefined;
  private instanceCursor: InstanceCursor | undefined;
  /** the fleet view: one entry per live instance not being stopped, in launch order */
  private readonly views = new Map<string, ViewSlot>();
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

  constructor(private readonly d: ObserverDeps) {
    this.prober = new Prober({
      ...d,
      records: () => this.records,
      isRunning: (id) => this.running.get(id) ?? false,
      changed: (id) => this.dirty.add(id),
      answered: (id) => d.provider.started?.(id),
    });
  }

  /** The earliest instant a probe or a grace period's end falls due (the loop may wake for it). */
  nextDueAt(): number | undefined {
    const a = this.prober.nextDueAt();
    const b = this.wakes.peek();
    return a === undefined ? b : b === undefined ? a : Math.min(a, b);
  }

  /** The earliest instant a grace period ends: the fleet view changes then, which a pass must see. */
  nextViewChangeAt(): number | undefined {
    return this.wakes.peek();
  }

  /**
   * Start the probes due now on what the last pass observed, and nothing else (no provider or
   * router read): the loop's turn for a probe falling due. An answer that changes an
   * instance's health wakes the loop for a pass.
   */
  probeDue(): void {
    this.prober.probeDue();
  }

  /** Live instances not being stopped whose port has not answered yet (the launch bound counts them). */
  startingCount(): number {
    let n = 0;
    for (const r of this.d.db.liveInstances(this.d.service)) {
      if (r.state === "terminating") continue;
      const h = this.prober.healthOf(r.id);
      if (!h || !hasAnswered(h)) n++;
    }
    return n;
  }

  /**
   * Read the router again now (right after a table write): its targets' read-back is folded in
   * as an observation's is. False when it did not answer.
   */
  async readBackRouter(): Promise<boolean> {
    try {
      this.lastStats = await this.observeRouter();
      return true;
    } catch (e) {
      this.d.log?.(`router unreachable: ${(e as Error).message}`);
      return false;
    }
  }

  /** An instance's health as the probes track it. */
  healthOf(id: string): TrackedHealth | undefined {
    return this.prober.healthOf(id);
  }

  /** Seed health for instances state knows of (after a restart: healthy if they were and still run). */
  seed(id: string, healthy: boolean): void {
    this.prober.seed(id, healthy);
    this.dirty.add(id);
  }

  /**
   * The provider reported the instance started (its launch returned). It counts as running
   * until an observation begun after this moment says otherwise; one begun before cannot.
   */
  launched(id: string): void {
    this.launchedDuring.set(id, this.observation);
    this.setRunning(id, true);
  }

  forget(id: string): void {
    this.launchedDuring.delete(id);
    this.prober.forget(id);
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
    this.prober.probeDue();
    return stats;
  }

  private async observeProvider(): Promise<void> {
    const p = this.d.provider;
    const n = ++this.observation;
    if (p.changes) {
      const c = await p.changes(this.d.service, this.providerCursor);
      if (c.full) this.replaceRunning(c.instances, n);
      else {
        for (const i of c.instances) this.setRunning(i.id, i.state === "running", i.exitCode, n);
        for (const id of c.removed) this.setRunning(id, undefined, undefined, n);
      }
      this.providerCursor = c.cursor;
    } else this.replaceRunning(await p.list(this.d.service), n);
    // Observations begun after a launch was recorded speak for it from now on.
    for (const [id, during] of this.launchedDuring) if (during < n) this.launchedDuring.delete(id);
  }

  private replaceRunning(list: { id: string; state: string; exitCode?: number | null }[], n: number): void {
    const seen = new Set<string>();
    for (const i of list) {
      seen.add(i.id);
      this.setRunning(i.id, i.state === "running", i.exitCode, n);
    }
    for (const id of [...this.running.keys()]) if (!seen.has(id)) this.setRunning(id, undefined, undefined, n);
  }

  /** `observation`: the number of the provider observation this comes from (none: the launch itself). */
  private setRunning(id: string, running: boolean | undefined, exitCode?: number | null, observation?: number): void {
    // An answer taken before the launch returned cannot say the instance is not running.
    if (running !== true && observation !== undefined && observation <= (this.launchedDuring.get(id) ?? 0)) return;
    const cur = this.running.get(id);
    if (cur === running) return;
    if (cur === true && this.d.onExited) {
      const rec = this.d.db.liveInstance(this.d.service, id);
      if (rec && rec.state !== "terminating") this.d.onExited(rec, exitCode);
    }
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
    return phaseFrom(this.prober.healthOf(r.id) ?? initialHealth(false), true, r.launchedAt, this.d.specOf(r.release).health, now);
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
        this.prober.schedule(r);
      }
      this.listStale = true;
      return;
    }
    if (c.reordered) this.listStale = true;
    for (const id of c.ids) {
      this.dirty.add(id);
      const r = this.records.get(id);
      if (r) this.prober.schedule(r);
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
    this.refreshDirty(now);
    this.prober.unpark();
    if (this.listStale) this.rebuildList();
    return { instances: this.list.slice() };
  }

  /**
   * Rebuild the views of the dirty ids. The loop (thousands of ids in a fleet-wide step) is a
   * function of its own, compiled apart from what fleet() does around it (a list rebuilt in
   * some passes only), so a pass that first rebuilds the list does not throw its code away.
   */
  private refreshDirty(now: number): void {
    for (const id of this.dirty) this.refresh(id, now);
    this.dirty.clear();
  }

  /** The views in launch order (state's), each slot noting its position. */
  private rebuildList(): void {
    this.list = [];
    for (const r of this.d.db.liveInstances(this.d.service)) {
      const slot = this.views.get(r.id);
      if (!slot) continue;
      slot.pos = this.list.length;
      this.list.push(slot.view);
    }
    this.listStale = false;
  }

  /** Rebuild `id`'s fleet view (its inputs changed, or it depends on the clock); drop it when the instance is gone or being stopped. */
  private refresh(id: string, now: number): void {
    const r = this.records.get(id);
    if (!r || r.state === "terminating") {
      if (this.views.delete(id)) this.listStale = true;
      return;
    }
    // Everything read first, then combined: the reads do not depend on the phase the instance
    // is in (launching, not yet routed, healthy), so the compiled code meets none it has not
    // seen when the first instance of a fleet reaches the next phase.
    const h = this.prober.healthOf(id) ?? initialHealth(false);
    const running = this.running.get(id);
    const isRunning = r.state === "launching" ? true : (running ?? false);
    const t = this.targets.get(id) ?? NOT_A_TARGET;
    const hp = this.d.specOf(r.release).health;
    const healthy = h.healthy, healthySince = r.healthySince, launchedAt = r.launchedAt;
    const view: FleetInstance = {
      id: r.id,
      release: r.release,
      phase: phaseFrom(h, isRunning, launchedAt, hp, now),
      routing: r.routing,
      inRotation: t.inRotation,
      inflight: t.inflight,
      launchedAt,
      healthySince: healthy ? (healthySince ?? now) : undefined,
      drainingSince: r.drainingSince,
      everHealthy: healthySince !== undefined || healthy,
    };
    const slot = this.views.get(id);
    if (!slot) {
      this.views.set(id, { view, pos: -1 });
      this.listStale = true;
    } else {
      slot.view = view;
      // In place while the list holds it there (its position is from the last rebuild).
      if (!this.listStale) {
        if (this.list[slot.pos]?.id === id) this.list[slot.pos] = view;
        else this.listStale = true;
      }
    }
    // The clock moves a view in two ways only: healthySince reads "now" until the first
    // healthy time is recorded, and a failing instance turns unhealthy when its grace ends.
    if (healthy && healthySince === undefined) this.clockBound.add(id);
    else if (!healthy && isRunning) {
      const graceEnds = launchedAt + hp.grace;
      if (now < graceEnds) this.wakes.schedule(id, graceEnds);
    }
  }
}

/** "instance X exited (exit code 1); its log ends: …" — the last lines of its log say why, when the provider keeps one. */
export function exitMessage(id: string, exitCode: number | null | undefined, logPath: string | undefined): string {
  const code = exitCode === undefined || exitCode === null ? "exit code unknown" : exitCode > 128 ? `exit code ${exitCode}, signal ${exitCode - 128}` : `exit code ${exitCode}`;
  const end = logPath ? tailLines(logPath, 3, 4096).map((l) => l.trim()).filter(Boolean).join(" | ").slice(0, 600) : "";
  return `instance ${id} exited (${code})${end ? `; its log ends: ${end}` : ""}`;
}

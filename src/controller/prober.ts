// Health by probing: which instances are due a probe (a due-queue, so a tick costs what is due,
// not the fleet's size), the probes themselves (in the background, or answered at once when
// the probe is in memory), the health each instance is tracked at, and first healthy times
// written together per batch of outcomes. The fleet view (observe.ts) reads the health.

import type { InstanceRecord, StateDb } from "../state/db.js";
import type { ReleaseSettings } from "../state/release-settings.js";
import { initialHealth, recordProbe, type HealthParams, type ProbeOutcome, type TrackedHealth } from "../health/tracker.js";
import { DueSlots } from "./due-queue.js";
import { hasAnswered, planProbeDelay } from "./wake.js";

export type ProbeFn = (address: string, path: string, timeoutMs: number) => Promise<ProbeOutcome>;

export interface ProberDeps {
  service: string;
  db: StateDb;
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
  /** the live instance records as last observed */
  records: () => ReadonlyMap<string, InstanceRecord>;
  /** the provider reports it running */
  isRunning: (id: string) => boolean;
  /** its tracked health changed: its fleet view must be rebuilt */
  changed: (id: string) => void;
  /**
   * First delay of the quick poll of an instance that has not answered yet (see planProbeDelay):
   * its first passing probe follows its port opening by milliseconds, not a health interval.
   * Absent: probes follow the interval from the first (simulation, where a probe per tick is the cost).
   */
  startPollMs?: number;
  /** the quick poll's longest delay (see planProbeDelay); absent: the health interval */
  startPollMaxMs?: number;
  /** a health result changed: the loop should look at once */
  wake?: () => void;
  /** an instance answered a probe for the first time (ok or an HTTP failure): its start is over */
  answered?: (id: string) => void;
}

/**
 * One per instance the prober knows of: its tracked health and its place in the probe queue,
 * in one object, so a probe taken off the queue, folded in and queued again looks nothing up
 * by id (~250,000 probes in a 10,000-instance simulation).
 */
interface Probed {
  readonly id: string;
  /** undefined until seeded or first probed */
  health: TrackedHealth | undefined;
  /** its next probe's due time while queued (the queue's slot) */
  at: number;
  queued: boolean;
}

export class Prober {
  private readonly tracked = new Map<string, Probed>();
  private readonly probing = new Set<string>();
  private readonly probes = new DueSlots<Probed>();
  /** ids that fell due while not running: probed again once they run */
  private readonly parked = new Set<string>();

  constructor(private readonly d: ProberDeps) {}

  private entry(id: string): Probed {
    let p = this.tracked.get(id);
    if (!p) {
      p = { id, health: undefined, at: 0, queued: false };
      this.tracked.set(id, p);
    }
    return p;
  }

  /** An instance's health as the probes track it (undefined: never seeded nor probed). */
  healthOf(id: string): TrackedHealth | undefined {
    return this.tracked.get(id)?.health;
  }

  seed(id: string, healthy: boolean): void {
    this.entry(id).health = initialHealth(healthy);
  }

  forget(id: string): void {
    const p = this.tracked.get(id);
    if (!p) return;
    this.tracked.delete(id);
    this.probes.cancel(p);
  }

  /** Parked ids that run now are queued again; stopped ones are dropped. */
  unpark(): void {
    const records = this.d.records();
    for (const id of this.parked) {
      const r = records.get(id);
      if (!r || r.state === "terminating") this.parked.delete(id);
      else if (r.address && this.d.isRunning(id)) {
        this.parked.delete(id);
        this.schedule(r);
      }
    }
  }

  /** Queue a probe of `r` at its next due time (now, if it was never probed), unless one is queued or out. */
  schedule(r: InstanceRecord): void {
    if (!r.address) return;
    const p = this.tracked.get(r.id);
    if (p?.queued || this.probing.has(r.id)) return;
    const h = p?.health;
    this.probes.schedule(p ?? this.entry(r.id), h ? this.dueAfter(h, r.release) : 0);
  }

  /** The earliest instant a queued probe falls due (may be one since cancelled: an early look is harmless). */
  nextDueAt(): number | undefined {
    return this.probes.peek();
  }

  private dueAfter(h: TrackedHealth, release: string): number {
    const interval = this.d.specOf(release).health.interval;
    if (this.d.startPollMs === undefined) return h.lastProbeAt + interval;
    return h.lastProbeAt + planProbeDelay({ answered: hasAnswered(h), refused: h.consecutiveFail, interval, first: this.d.startPollMs, max: this.d.startPollMaxMs });
  }

  /** Start the probes due now. They run in the background; the loop reads whatever they last recorded. */
  probeDue(): void {
    const now = this.d.now();
    const records = this.d.records();
    const due = this.probes.popDue(now);
    // One spec lookup per run of instances of the same release (a due batch is mostly one or two releases).
    let release: string | undefined;
    let hp: HealthParams | undefined;
    for (let k = 0; k < due.length; k++) {
      const p = due[k]!;
      const id = p.id;
      const rec = records.get(id);
      if (!rec || rec.state === "terminating") continue;
      // Not running (yet): parked until it is (see unpark).
      if (!rec.address || !this.d.isRunning(id)) {
        this.parked.add(id);
        continue;
      }
      if (rec.release !== release || hp === undefined) {
        release = rec.release;
        hp = this.d.specOf(release).health;
      }
      if (this.d.probeNow) this.probeInMemory(p, rec, hp, now);
      else this.probe(rec, hp);
    }
  }

  /**
   * probe's in-memory path (simulation): answered and recorded at once, then queued again at
   * its interval. What reschedule would look up is at hand: the record just read, and the
   * health just recorded (none when the probe threw and the instance was never probed).
   */
  private probeInMemory(p: Probed, rec: InstanceRecord, hp: HealthParams, now: number): void {
    let o: ProbeOutcome | undefined;
    try {
      o = this.d.probeNow!(rec.address!, hp.path, hp.timeout);
    } catch {
      // as a rejected probe: nothing recorded, probed again at its interval
    }
    const h = o ? this.fold(p, rec, o, hp, now) : p.health;
    if (h) this.probes.schedule(p, h.lastProbeAt + hp.interval);
  }

  private probe(rec: InstanceRecord, hp: HealthParams): void {
    this.probing.add(rec.id);
    // schedule's work, knowing what it checks: the id was taken off the queue to be probed
    // and nothing schedules an id while its probe is out.
    const done = () => {
      this.probing.delete(rec.id);
      this.reschedule(rec.id);
    };
    this.d.probe(rec.address!, hp.path, hp.timeout).then(
      (o) => {
        try {
          // Stopped while the probe was out: nothing is tracked for it any more.
          if (this.d.records().has(rec.id)) this.fold(this.entry(rec.id), rec, o, hp, this.d.now());
        } catch (e) {
          // The health is folded before anyone is told (an event, a first healthy time): a
          // write that fails (a full disk) loses that record, not the controller. The
          // rejection would otherwise go unhandled, and Node ends the process on one.
          this.d.log?.(`recording the probe of ${rec.id} failed: ${(e as Error).message}`);
        } finally {
          done();
        }
      },
      done,
    );
  }

  private reschedule(id: string): void {
    const r = this.d.records().get(id);
    const p = r?.address ? this.tracked.get(id) : undefined;
    const h = p?.health;
    if (h) this.probes.schedule(p!, this.dueAfter(h, r!.release));
  }

  /**
   * Fold one outcome into `rec`'s tracked health (a live record, `p` its entry) and tell whoever
   * must know; returns the new health. The health object is updated in place (nothing keeps an
   * earlier one: the fleet view copies what it reads), so a probe leaves no object behind.
   */
  private fold(p: Probed, rec: InstanceRecord, o: ProbeOutcome, hp: HealthParams, now: number): TrackedHealth {
    const cur = p.health ?? initialHealth(false);
    const next = recordProbe(cur, o, hp, now);
    // What the fleet view reads of the health (phaseFrom, healthySince, everHealthy): a count
    // of failures matters only as "at the unhealthy threshold or not", so a connection refused
    // again while an instance starts changes nothing there.
    const limit = Math.max(1, hp.unhealthyThreshold);
    const viewChanged =
      next.healthy !== cur.healthy || next.everHealthy !== cur.everHealthy || next.lastFailAnswered !== cur.lastFailAnswered ||
      next.consecutiveFail >= limit !== cur.consecutiveFail >= limit;
    // Only a change of health is news to a decision (a refused poll of a starting instance is
    // not); a first answer is too: the instance no longer counts against the launch bound.
    const news = next.healthy !== cur.healthy || next.everHealthy !== cur.everHealthy || hasAnswered(next) !== hasAnswered(cur) || (!next.healthy && next.lastFailAnswered !== cur.lastFailAnswered);
    const turnedHealthy = next.healthy && !cur.healthy;
    // Before `cur` is updated in place below.
    const firstAnswer = hasAnswered(next) && !hasAnswered(cur);
    const turnedUnhealthy = !next.healthy && cur.healthy;
    const h = p.health;
    if (h) {
      h.healthy = next.healthy;
      h.everHealthy = next.everHealthy;
      h.consecutiveOk = next.consecutiveOk;
      h.consecutiveFail = next.consecutiveFail;
      h.lastFailAnswered = next.lastFailAnswered;
      h.lastProbeAt = next.lastProbeAt;
      h.lastReason = next.lastReason;
    } else p.health = next;
    if (viewChanged) this.d.changed(rec.id);
    if (news) this.d.wake?.();
    if (turnedHealthy) {
      const r = this.d.records().get(rec.id);
      if (r && r.healthySince === undefined) this.recordHealthySince(rec.id, now);
    }
    if (turnedUnhealthy) this.d.onUnhealthy(rec, next.lastReason ?? "unknown");
    if (firstAnswer) this.d.answered?.(rec.id);
    return next;
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
  private healthyWrites = noWrites();

  private flushHealthySince(): void {
    const list = this.healthyWrites;
    this.healthyWrites = noWrites();
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
}

/** A new list of first healthy times to write: made in one place, so every such list has the element kind the first learned. */
function noWrites(): { id: string; at: number }[] {
  return [];
}

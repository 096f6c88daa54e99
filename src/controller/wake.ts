// When the reconcile loop runs its next pass. The tick timer is only the fallback: a pass
// runs at once when something happened that a decision waits on (a launch finished, a health
// result changed, the router took a table, a command arrived), or at the instant a known
// deadline falls due (a probe, a warmup's end, a router read-back retry). Signals coalesce:
// any number of them while a pass runs make one more pass, and a budget per tick interval
// keeps a loop that keeps signalling itself from spinning.

import type { TrackedHealth } from "../health/tracker.js";
import type { FleetInstance, Step } from "../rollout/types.js";

export interface NextPassInput {
  now: number;
  /** the fallback interval */
  tickMs: number;
  /** a wake-up was signalled since the last pass started */
  woken: boolean;
  /** the earliest instant something is known to fall due (probe, warmup end, read-back retry) */
  dueAt?: number;
  /** passes started within the last tickMs */
  recentPasses: number;
  /** passes allowed within one tickMs before wake-ups wait for the timer */
  maxPassesPerTick: number;
}

/**
 * Milliseconds until the next pass.
 *
 *   woken, 1 recent pass of 20 allowed            → 0
 *   woken, 20 recent passes of 20 allowed          → 100 (tick 100: the budget is spent, wait for the timer)
 *   not woken, a probe due in 30 ms                → 30
 *   not woken, due 5 ms ago (late)                 → 0
 *   not woken, due in 400 ms, tick 100             → 100 (the timer comes first)
 *   not woken, nothing due                         → 100
 *   not woken, due in 30 ms, budget spent          → 100
 */
export function planNextPass(p: NextPassInput): number {
  if (p.recentPasses >= p.maxPassesPerTick) return p.tickMs;
  if (p.woken) return 0;
  if (p.dueAt === undefined) return p.tickMs;
  return Math.min(p.tickMs, Math.max(0, Math.ceil(p.dueAt - p.now)));
}

export interface LoopTurnInput {
  now: number;
  /** the fallback interval */
  tickMs: number;
  /** a wake-up was signalled since the last turn started */
  woken: boolean;
  /** when the last pass started */
  lastPassAt: number;
  /** the earliest instant something other than a probe falls due (a warmup's end, a read-back retry, a grace period's end) */
  passDueAt?: number;
}

/**
 * What the loop's turn does: a whole pass, or only start the probes due (the quick poll of a
 * starting instance's port falls due every 5–25 ms, and its refusals change nothing a pass
 * would decide on; the answer that changes its health wakes the loop).
 *
 *   woken                                               → pass
 *   not woken, last pass 100 ms ago, tick 100            → pass (the fallback interval)
 *   not woken, last pass 30 ms ago, a warmup ended       → pass
 *   not woken, last pass 30 ms ago, a warmup ends later  → probes
 *   not woken, last pass 30 ms ago, nothing else due     → probes
 */
export function planLoopTurn(p: LoopTurnInput): "pass" | "probes" {
  if (p.woken || p.now - p.lastPassAt >= p.tickMs) return "pass";
  return p.passDueAt !== undefined && p.passDueAt <= p.now ? "pass" : "probes";
}

/**
 * Whether a pass's own steps call for another pass at once: an acted step changed state,
 * the provider or the router, and the next decision reads what it changed. A pass that only
 * waited has nothing new to look at.
 *
 *   [wait]                       → false
 *   []                           → false
 *   [register, wait]             → true
 *   [launch]                     → true
 *   [mark-switched]              → true (done follows once the router confirmed)
 */
export function isWakeAfter(steps: readonly Step[]): boolean {
  return steps.some((s) => s.kind !== "wait");
}

/**
 * The earliest instant an instance's warmup ends (healthySince + warmup) still ahead of `now`:
 * the rollout's next decision falls due then, not at the next tick.
 *
 *   healthy since 1000, warmup 1000, now 1500       → 2000
 *   two: since 1000 and 1200, warmup 1000, now 1500 → 2000
 *   healthy since 1000, warmup 1000, now 2000       → undefined (already warm: decided this pass)
 *   warmup 0, or none healthy                       → undefined
 */
export function nextWarmupEnd(instances: readonly Pick<FleetInstance, "healthySince">[], warmup: number, now: number): number | undefined {
  if (warmup <= 0) return undefined;
  let at: number | undefined;
  for (const i of instances) {
    if (i.healthySince === undefined) continue;
    const end = i.healthySince + warmup;
    if (end > now && (at === undefined || end < at)) at = end;
  }
  return at;
}

/**
 * Delay before the next probe of an instance that has never answered (its port is not open
 * yet): a quick, doubling poll from `first`, capped at `max` (default: the health interval);
 * once the instance has answered (or was ever healthy) probes follow the health interval.
 * The cap is what keeps the first probe that can pass close to the port opening: a poll that
 * doubled up to a 500 ms interval probes at 5, 15, 35, …, 315, 635 ms after the launch, so a
 * port that opens at 455 ms (this machine's instance start) is seen 180 ms late, one at 700 ms
 * 435 ms late. A refused connection on loopback costs microseconds, and only instances still
 * starting are polled (the launch bound keeps them few).
 *
 *   never answered, 0 refused so far, interval 500   → 5
 *   never answered, 1 refused                        → 10
 *   never answered, 3 refused                        → 40
 *   never answered, 7 refused                        → 500 (5·2^7 = 640, capped)
 *   never answered, 7 refused, max 25                → 25
 *   never answered, 1 refused, max 25                → 10
 *   answered (ok or not), any, max 25                → 500
 *   never answered, interval 2                       → 2
 */
export function planProbeDelay(p: { answered: boolean; refused: number; interval: number; first?: number; max?: number }): number {
  if (p.answered) return p.interval;
  const first = p.first ?? 5;
  return Math.min(p.interval, p.max ?? p.interval, first * 2 ** Math.min(p.refused, 30));
}

/**
 * Read-back of the router after a table write: read at once, then retried quickly a bounded
 * number of times until the router reports the new table with every active target in
 * rotation; afterwards the tick's own observation takes over. Returns the delay before read
 * number `attempt` (0 = the one right after the write), undefined once the attempts are spent.
 *
 *   attempt 0 → 0
 *   attempt 1 → 5
 *   attempt 3 → 20
 *   attempt 6 → 160
 *   attempt 7 → undefined (the tick takes over)
 */
export function planReadBackDelay(attempt: number): number | undefined {
  if (attempt <= 0) return 0;
  if (attempt > READ_BACK_RETRIES) return undefined;
  return 5 * 2 ** (attempt - 1);
}
export const READ_BACK_RETRIES = 6;

/**
 * Whether an instance has answered a probe (ok or an HTTP failure) or was ever healthy: its
 * port is open and its runtime loaded. Until then it is starting (quick poll, launch bound).
 *
 *   fresh (no probe yet)                         → false
 *   3 refused connections                        → false
 *   1 passing probe, not yet healthy (threshold) → true
 *   answered 500                                 → true
 *   was healthy, now refusing                    → true
 */
export function hasAnswered(h: Pick<TrackedHealth, "everHealthy" | "consecutiveOk" | "lastFailAnswered">): boolean {
  return h.everHealthy || h.consecutiveOk > 0 || h.lastFailAnswered;
}

/**
 * A switch is confirmed once the router reads back every instance it made active as in
 * rotation (the same closed-loop rule as the blue-green planner's mark-switched).
 *
 *   [a, b], both in rotation  → true
 *   [a, b], b not yet         → false
 *   []                        → false (nothing to confirm: the planner decides)
 */
export function isSwitchConfirmed(active: readonly string[], inRotation: (id: string) => boolean): boolean {
  return active.length > 0 && active.every(inRotation);
}

/**
 * How many instances may be starting at once (launched, port not answering yet), from the
 * number of CPUs: one more than the CPUs. An instance's start is mostly CPU-bound (a runtime
 * loading its code) but part of it waits (its root composed, its network forwarder attached,
 * process set-up): with one start per CPU a core idles in those waits, and a rolling batch of
 * surge CPUs + 1 starts in two waves. Measured on this 2-CPU machine under the bench's load
 * (bench/results/rollout.json; docs/architecture.md has the runs): a bound of 3 made a burst
 * of 3 healthy in 1.6–1.8 s instead of 2.4–2.5 s with the serving fleet's p99 no higher
 * (21–26 ms against 25–28), and the 6-instance rolling replacement 1.47–1.57× its minimum
 * against 1.47–1.77×. Larger machines are not measured: CPUs + 1, capped, is the assumption.
 *
 *   1 CPU   → 2
 *   2 CPUs  → 3
 *   8 CPUs  → 9
 *   64 CPUs → 16 (starts also share the disk and the controller: a cap)
 */
export function planLaunchConcurrency(cpus: number): number {
  if (!Number.isFinite(cpus) || cpus < 1) return 1;
  return Math.min(16, Math.floor(cpus) + 1);
}

/**
 * How many of a launch step's instances start now, given the bound and how many are still
 * starting; the planner asks for the rest again on a later pass (its count of new instances
 * includes the ones launched).
 *
 *   want 3, 0 starting, bound 2        → 2
 *   want 3, 2 starting, bound 2        → 0
 *   want 1, 1 starting, bound 2        → 1
 *   want 5, bound undefined (no bound) → 5
 *   want 3, 5 starting, bound 2        → 0
 */
export function planLaunchCount(p: { want: number; starting: number; bound?: number }): number {
  if (p.bound === undefined) return p.want;
  return Math.max(0, Math.min(p.want, p.bound - p.starting));
}

/** A coalescing wake-up signal the loop sleeps on beside its timer. */
export class Wakeup {
  private pending = false;
  private wakeSleeper?: () => void;

  signal(): void {
    this.pending = true;
    const w = this.wakeSleeper;
    this.wakeSleeper = undefined;
    w?.();
  }

  /** Whether a signal came since the last take (and clear it). */
  take(): boolean {
    const p = this.pending;
    this.pending = false;
    return p;
  }

  /**
   * Sleep `ms`, or less when a signal comes and `interruptible`. Never less than one turn of
   * the event loop: a loop whose every turn found something due "now" would otherwise run on
   * resolved promises alone, and no timer, socket or child process would ever be served — not
   * the probe answers that clear what is due, not `kiln down` (seen in CI: a controller that
   * spun at full CPU after its shutdown began, never exiting).
   */
  sleep(ms: number, interruptible: boolean): Promise<void> {
    if (ms <= 0 || (interruptible && this.pending)) return new Promise((resolve) => setImmediate(resolve));
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      if (interruptible) this.wakeSleeper = done;
    });
  }
}

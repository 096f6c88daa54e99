// Capacity arithmetic and strategy limits: the one place kiln turns kiln.yaml's percentages
// and per-strategy settings into numbers. The strategies use it, and so (through derive/)
// do the generators, the providers and the Swarm path. Pure.

import type { FleetInstance, StrategyName } from "./types.js";

export interface Bounds {
  /** most instances (any release, draining included) alive at once */
  maxTotal: number;
  /** fewest healthy in-rotation instances the rollout may leave serving */
  minHealthy: number;
  /** extra instances allowed above the fleet size */
  surge: number;
}

/**
 * Turns percentages into instance counts.
 *
 * - 6 instances, min 100 %, max 150 % → surge 3, maxTotal 9, minHealthy 6 (launch 3 first).
 * - 1 instance, min 100 %, max 150 % → 1.5 rounds down to 1, which would allow no
 *   surge at all (the AWS rounding trap); any max > 100 % allows at least one
 *   extra instance, so surge 1: the single instance is replaced launch-first.
 * - 4 instances, min 75 %, max 100 % → no surge; minHealthy 3 (terminate one, then launch).
 * - 3 instances, min 100 %, max 100 % → no surge, and a floor of 3 could never move;
 *   like AWS's 100/100 it becomes one at a time, minHealthy 2.
 * - 0 instances → nothing to keep: minHealthy 0.
 */
export function computeBounds(instances: number, minHealthyPercent: number, maxHealthyPercent: number): Bounds {
  const n = Math.max(0, Math.floor(instances));
  const surge = n === 0 ? 0 : maxHealthyPercent > 100 ? Math.max(1, Math.floor((n * maxHealthyPercent) / 100) - n) : 0;
  let minHealthy = Math.ceil((n * minHealthyPercent) / 100);
  if (surge === 0) minHealthy = Math.min(minHealthy, Math.max(0, n - 1));
  return { maxTotal: n + surge, minHealthy, surge };
}

/**
 * The strategy settings capacity and limits are read from: kiln.yaml's `strategy` section
 * (and a release's recorded copy) has this shape.
 */
export interface StrategySettings {
  type: StrategyName;
  rolling: { minHealthyPercent: number; maxHealthyPercent: number; instanceWarmup: number; deadline: number; autoRollback: boolean };
  blueGreen: { deadline: number; autoRollback: boolean };
  canary: { instanceWarmup: number; deadline: number; autoRollback: boolean };
}

export interface Capacity extends Bounds {
  /** desired fleet size */
  instances: number;
  /** instances a rollout may take out of service at once (instances − minHealthy) */
  maxUnavailable: number;
}

/**
 * The counts a rollout of `instances` works within, whichever strategy is active.
 *
 * - rolling, 3 instances, min 100 %, max 150 % → surge 1, minHealthy 3, unavailable 0, maxTotal 4.
 * - rolling, 4 instances, min 75 %, max 100 % → surge 0, minHealthy 3, unavailable 1, maxTotal 4.
 * - blue-green, 3 instances → a whole second fleet: surge 3, minHealthy 3, unavailable 0, maxTotal 6.
 * - canary, 3 instances → room for a full promotion beside the stable fleet: surge 3, minHealthy 3.
 * - any strategy, 0 instances → all 0.
 */
export function computeCapacity(instances: number, strategy: Pick<StrategySettings, "type" | "rolling">): Capacity {
  const n = Math.max(0, Math.floor(instances));
  const b =
    strategy.type === "rolling" ? computeBounds(n, strategy.rolling.minHealthyPercent, strategy.rolling.maxHealthyPercent) : computeBounds(n, 100, 200);
  return { instances: n, ...b, maxUnavailable: n - b.minHealthy };
}

export interface StrategyLimits {
  /** ms a new healthy instance warms up before it counts (blue-green has none: green counts once healthy) */
  warmup: number;
  /** ms the whole rollout may take */
  deadline: number;
  autoRollback: boolean;
}

/**
 * The active strategy's warmup, deadline and auto-rollback.
 *
 * - rolling (instanceWarmup 2s, deadline 5m, autoRollback) → 2000, 300000, true.
 * - blue-green (deadline 5m, autoRollback false) → 0, 300000, false.
 * - canary (instanceWarmup 2s, deadline 30m) → 2000, 1800000, canary's own autoRollback.
 */
export function computeLimits(strategy: StrategySettings): StrategyLimits {
  if (strategy.type === "blue-green") return { warmup: 0, deadline: strategy.blueGreen.deadline, autoRollback: strategy.blueGreen.autoRollback };
  const s = strategy.type === "canary" ? strategy.canary : strategy.rolling;
  return { warmup: s.instanceWarmup, deadline: s.deadline, autoRollback: s.autoRollback };
}

export function isServing(i: FleetInstance): boolean {
  return i.routing === "active" && i.inRotation && i.phase === "healthy";
}

/** Warm and confirmed by the router: the only kind of instance that may stand in for an old one. */
export function isConfirmed(i: FleetInstance, warmup: number, now: number): boolean {
  return isServing(i) && i.healthySince !== undefined && now - i.healthySince >= warmup;
}

/** A draining instance may stop once nothing is in flight, or its drain timeout passed. */
export function isDrained(i: FleetInstance, drainTimeout: number, now: number): boolean {
  if (i.routing !== "draining") return false;
  if (i.inflight === 0) return true;
  return i.drainingSince !== undefined && now - i.drainingSince >= drainTimeout;
}

/** Why an instance of the target release counts as failed, or undefined if it has not failed. */
export function failureOf(i: FleetInstance, instanceDeadline: number, now: number): string | undefined {
  if (i.phase === "exited") return `instance ${i.id} exited`;
  if (i.phase === "unhealthy") return `instance ${i.id} failed its health checks`;
  if (i.phase === "starting" && now - i.launchedAt > instanceDeadline)
    return `instance ${i.id} was not healthy within ${Math.round(instanceDeadline / 1000)}s`;
  return undefined;
}

export function ids(list: FleetInstance[]): string[] {
  return list.map((i) => i.id);
}

/** What to do about the target's failed instances: nothing, quarantine late failures, or abort the rollout. */
export type FailureVerdict = { kind: "none" } | { kind: "quarantine"; ids: string[]; reason: string } | { kind: "abort"; reason: string };

/**
 * A release is judged bad when an instance never became healthy (it exited, failed its
 * checks or missed its deadline while starting). An instance that *was* healthy and fails
 * later, while the rest of the release is fine, is more likely a bad node than a bad
 * release: it is quarantined (out of rotation, stopped, logs kept) and replaced — up to
 * `maxQuarantined` per rollout (`alreadyQuarantined` counts earlier ones); past that, or when
 * every instance of the release fails, the release is judged bad after all.
 *
 * - 3 new, 1 exited while starting → abort.
 * - 3 new healthy for a while, 1 turns unhealthy, none quarantined yet, limit 1 → quarantine it.
 * - the same with 1 already quarantined, limit 1 → abort.
 * - 1 new instance only, it turns unhealthy → abort (nothing healthy is left to vouch for the release).
 */
export function judgeFailures(fresh: FleetInstance[], instanceDeadline: number, now: number, maxQuarantined: number, alreadyQuarantined: number): FailureVerdict {
  // A plain loop: run every tick while new instances start, over up to the whole new fleet.
  const failed: FleetInstance[] = [];
  for (const i of fresh) if (failureOf(i, instanceDeadline, now) !== undefined) failed.push(i);
  if (failed.length === 0) return { kind: "none" };
  const early = failed.find((i) => !i.everHealthy);
  if (early) return { kind: "abort", reason: failureOf(early, instanceDeadline, now)! };
  const notFailed = notIn(failed);
  const healthyLeft = fresh.some((i) => notFailed(i) && i.phase === "healthy");
  if (healthyLeft && alreadyQuarantined + failed.length <= maxQuarantined) {
    return { kind: "quarantine", ids: ids(failed), reason: `late failure: ${failed.map((i) => failureOf(i, instanceDeadline, now)).join("; ")}` };
  }
  const why = failureOf(failed[0]!, instanceDeadline, now)!;
  return {
    kind: "abort",
    reason: healthyLeft ? `${why} after ${alreadyQuarantined} quarantined (limit ${maxQuarantined})` : `${why}; no healthy instance of the release is left`,
  };
}

/**
 * A filter keeping instances not in `list` (instances or ids), in O(1) per test: strategies
 * run over fleets of 10,000 in simulation, where `list.includes` would make every tick quadratic.
 */
export function notIn(list: readonly FleetInstance[] | readonly string[]): (i: FleetInstance) => boolean {
  const set = new Set<unknown>(list);
  const byId = typeof list[0] === "string";
  return (i) => !set.has(byId ? i.id : i);
}

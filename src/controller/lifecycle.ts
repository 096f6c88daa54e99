// Release lifecycle transitions as pure functions: what a finished, aborted or requested
// rollback does to the releases and which rollout (if any) starts next. The controller
// applies a plan in one transaction.

import type { ReleaseStatus, RolloutKind } from "../state/db.js";
import type { ReleaseSettings } from "../state/release-settings.js";
import type { StrategyName } from "../rollout/types.js";

export interface EndingRollout {
  kind: RolloutKind;
  strategy: StrategyName;
  target: string;
}

export interface FinishPlan {
  /** the target becomes live */
  live: string;
  /** what the release that was live becomes, if it was live and is not the target */
  previous?: { id: string; status: ReleaseStatus };
  /** keep the previous fleet warm on standby until then (blue-green deploys) */
  standbyUntil?: number;
}

/**
 * A rollout reached its target.
 *
 *   deploy r2 (rolling), r1 live                      → live r2, r1 superseded, no standby window
 *   deploy r2 (blue-green, keep 10 min), r1 live, t=0 → live r2, r1 superseded, standby until 600,000
 *   rollback to r1 (blue-green: warm), r2 live        → live r1, r2 rolled-back, no standby window
 *   first deploy r1, nothing live                     → live r1
 *   r1 recorded live but its status is not "live"     → live r2, r1 left as it is
 */
export function planFinish(input: {
  rollout: EndingRollout;
  prevLive?: { id: string; status: ReleaseStatus };
  keepPreviousFor: number;
  now: number;
}): FinishPlan {
  const { rollout, prevLive, now } = input;
  const plan: FinishPlan = { live: rollout.target };
  if (prevLive && prevLive.id !== rollout.target && prevLive.status === "live") {
    plan.previous = { id: prevLive.id, status: rollout.kind === "rollback" ? "rolled-back" : "superseded" };
  }
  if (rollout.strategy === "blue-green" && rollout.kind === "deploy") plan.standbyUntil = now + input.keepPreviousFor;
  return plan;
}

export interface RollbackPlan {
  /** blue-green = instant: traffic flips to the warm fleet; rolling = the release is rolled out again */
  strategy: "blue-green" | "rolling";
  instant: boolean;
}

/**
 * How to return to a release: instantly when enough of its instances are still warm on
 * standby (running, in the table at weight 0) to carry the desired fleet, else by replacement.
 *
 *   desired 3, 3 warm  → instant (blue-green)
 *   desired 3, 5 warm  → instant
 *   desired 3, 2 warm  → replacement (rolling)
 *   desired 0, 0 warm  → replacement (nothing to flip to)
 */
export function planRollback(input: { desired: number; warm: number }): RollbackPlan {
  const instant = input.desired > 0 && input.warm >= input.desired;
  return { strategy: instant ? "blue-green" : "rolling", instant };
}

/** Whether the release's strategy settings roll a failed deploy back by themselves. */
export function autoRollbackOf(strategy: StrategyName, spec: ReleaseSettings): boolean {
  if (strategy === "blue-green") return spec.strategy.blueGreen.autoRollback;
  if (strategy === "canary") return spec.strategy.canary?.autoRollback ?? true;
  return spec.strategy.rolling.autoRollback;
}

export interface AbortPlan {
  /** the target release's new status (deploys fail; an aborted rollback leaves its target alone) */
  targetStatus?: "failed";
  /** the rollback rollout to start, back to the live release */
  rollback?: RollbackPlan & { target: string };
}

/**
 * A rollout gave up. A deploy's release fails; the fleet returns to the live release when
 * autoRollback allows (or the user forced it with `kiln abort`). Blue-green always returns:
 * with autoRollback off its green fleet never took traffic, so going back is only a cleanup.
 *
 *   deploy r2 rolling, autoRollback, r1 live, desired 3, 0 warm   → r2 failed, rollback to r1 by replacement
 *   deploy r2 rolling, autoRollback off, r1 live                  → r2 failed, no rollback
 *   deploy r2 rolling, autoRollback off, forced (kiln abort)      → r2 failed, rollback to r1
 *   deploy r2 blue-green, autoRollback off, r1 live, 3 warm of 3  → r2 failed, instant rollback to r1
 *   deploy r1 (first), nothing live                               → r1 failed, no rollback
 *   rollback to r1 aborted                                        → nothing (no status, no rollback)
 */
export function planAbort(input: { rollout: EndingRollout; autoRollback: boolean; force: boolean; live?: string; desired: number; warm: number }): AbortPlan {
  const { rollout, live } = input;
  if (rollout.kind !== "deploy") return {};
  const plan: AbortPlan = { targetStatus: "failed" };
  if (live && (input.force || input.autoRollback || rollout.strategy === "blue-green")) {
    plan.rollback = { ...planRollback({ desired: input.desired, warm: input.warm }), target: live };
  }
  return plan;
}

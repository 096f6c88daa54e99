// Strategies are data in, data out: no I/O, no clock (DESIGN.md, principle 2).

import { planBlueGreen } from "./blue-green.js";
import { planCanary } from "./canary.js";
import { planRolling } from "./rolling.js";
import type { Observed, Phase, RolloutParams, RolloutStatus, Step } from "./types.js";

export * from "./types.js";
export { computeBounds, computeCapacity, computeLimits, isConfirmed, isDrained, isServing, type Capacity, type StrategyLimits, type StrategySettings } from "./capacity.js";
export { planRolling } from "./rolling.js";
export { planBlueGreen } from "./blue-green.js";
export { planCanary, canaryCount } from "./canary.js";
export { judgeCanary, type AnalysisVerdict } from "./analysis.js";
export { judgeFailures, type FailureVerdict } from "./capacity.js";
export { planSteady, type SteadyInput } from "./steady.js";

/**
 * The steps a rollout takes next. A rollback to a fleet that is still warm (standby) is a
 * blue-green switch whatever the release's strategy: it needs no new instance.
 */
export function nextSteps(spec: RolloutParams, rollout: RolloutStatus, observed: Observed, now: number): Step[] {
  if (spec.strategy === "canary" && !rollout.fast) return planCanary(spec, rollout, observed, now);
  if (spec.strategy === "blue-green") return planBlueGreen(spec, rollout, observed, now, rollout.fast ? "drain" : "standby");
  return planRolling(spec, rollout, observed, now);
}

/** The rollout's phase, derived from the steps it would take now. */
export function phaseOf(steps: Step[]): Phase {
  if (steps.some((s) => s.kind === "abort")) return "aborted";
  if (steps.some((s) => s.kind === "done")) return "healthy";
  if (steps.some((s) => s.kind === "wait" && s.paused)) return "paused";
  return "progressing";
}

// kiln.yaml's strategy and listen address as the numbers the rest of kiln works with.

import { computeCapacity, computeLimits, type Capacity, type StrategyLimits } from "../rollout/capacity.js";
import type { Spec } from "../config/index.js";

/** The rollout's bounds for kiln.yaml's fleet size and active strategy (rollout/capacity.ts#computeCapacity). */
export function capacityOf(spec: Pick<Spec, "instances" | "strategy">): Capacity {
  return computeCapacity(spec.instances, spec.strategy);
}

/** The active strategy's warmup, deadline and auto-rollback (rollout/capacity.ts#computeLimits). */
export function limitsOf(spec: Pick<Spec, "strategy">): StrategyLimits {
  return computeLimits(spec.strategy);
}

/**
 * How a platform that replaces instances in batches keeps kiln's bounds: with surge, each
 * batch starts `surge` new instances before stopping old ones (start-first); without, it stops
 * as many as may be unavailable (at least one) and then starts their replacements.
 *
 * - 3 instances, 100/150 (surge 1) → start-first, 1.
 * - 6 instances, 100/150 (surge 3) → start-first, 3.
 * - 4 instances, 75/100 (no surge, 1 unavailable) → stop-first, 1.
 * - 4 instances, 75/125 (surge 1 and 1 unavailable) → start-first, 1: a batch is one or the other, and this is the safe side.
 */
export function batchOf(cap: Pick<Capacity, "surge" | "maxUnavailable">): { parallelism: number; order: "start-first" | "stop-first" } {
  if (cap.surge > 0) return { parallelism: cap.surge, order: "start-first" };
  return { parallelism: Math.max(1, cap.maxUnavailable), order: "stop-first" };
}

/** "127.0.0.1:8080" → 8080; "[::1]:9000" → 9000. */
export function listenPort(spec: Pick<Spec, "listen">): number {
  return Number(spec.listen.slice(spec.listen.lastIndexOf(":") + 1));
}

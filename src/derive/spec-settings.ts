// kiln.yaml's strategy and listen address as the numbers the rest of kiln works with.

import { computeCapacity, computeLimits, type Capacity, type StrategyLimits } from "../rollout/capacity.js";
import type { Spec } from "../spec/index.js";

/** The rollout's bounds for kiln.yaml's fleet size and active strategy (rollout/capacity.ts#computeCapacity). */
export function capacityOf(spec: Pick<Spec, "instances" | "strategy">): Capacity {
  return computeCapacity(spec.instances, spec.strategy);
}

/** The active strategy's warmup, deadline and auto-rollback (rollout/capacity.ts#computeLimits). */
export function limitsOf(spec: Pick<Spec, "strategy">): StrategyLimits {
  return computeLimits(spec.strategy);
}

/** "127.0.0.1:8080" → 8080; "[::1]:9000" → 9000. */
export function listenPort(spec: Pick<Spec, "listen">): number {
  return Number(spec.listen.slice(spec.listen.lastIndexOf(":") + 1));
}

// The routing table as a pure function of the instance rows, the running rollout and the
// release spec in force. The loop only decides when to push it (see Controller.syncRouter).

import type { InstanceRecord, RolloutRecord } from "../state/db.js";
import type { ReleaseSettings } from "../state/release-settings.js";
import type { RoutingTable, Target } from "../traffic/router.js";

/** The parts of a rollout the routing table depends on. */
export type RoutingRollout = Pick<RolloutRecord, "kind" | "strategy" | "target" | "fast" | "switchedAt" | "progress">;

export interface RoutingInput {
  /** live instance rows (launching, running, terminating), in launch order */
  instances: readonly InstanceRecord[];
  rollout?: RoutingRollout;
  /** the spec of the rollout's target, else of the live release: health checks and drain timeout */
  spec: Pick<ReleaseSettings, "health" | "drainTimeout">;
  version: number;
}

/**
 * Which instances the router sees, and how. An instance is a target once it has an address,
 * desired routing other than none, and is not being stopped; active ones get weight 1, standby
 * ones weight 0 (warm, no production traffic), draining ones state "draining".
 *
 *   a (active, 127.0.0.1:1), b (standby), c (draining), d (none), e (active, terminating)
 *     → targets a weight 1 active, b weight 0 active, c weight 0 draining; d and e absent
 *   an active instance still launching (no address) → absent
 *   release weights and preview: see planReleaseWeights and planPreview
 */
export function planRoutingTable(input: RoutingInput): RoutingTable {
  const targets: Target[] = [];
  for (const r of input.instances) {
    if (r.routing === "none" || !r.address || r.state === "terminating") continue;
    targets.push({ id: r.id, release: r.release, address: r.address, weight: r.routing === "active" ? 1 : 0, state: r.routing === "draining" ? "draining" : "active" });
  }
  const weights = planReleaseWeights(input.rollout, input.instances);
  const preview = planPreview(input.rollout);
  const h = input.spec.health;
  return {
    version: input.version,
    targets,
    ...(weights ? { releaseWeights: weights } : {}),
    ...(preview ? { preview } : {}),
    health: { path: h.path, intervalMs: h.interval, timeoutMs: h.timeout, healthyThreshold: h.healthyThreshold, unhealthyThreshold: h.unhealthyThreshold },
    drainTimeoutMs: input.spec.drainTimeout,
  };
}

/**
 * How new requests split between releases. A canary deploy sends its recorded weight to the
 * canary and the rest to every other release that still has an instance; a rollback or any
 * fast rollout sends everything to the release it restores (the router falls back to plain
 * target weights while that release has no instance in rotation, so no request is refused).
 *
 *   no rollout                                              → undefined (target weights)
 *   rolling or blue-green deploy                            → undefined
 *   rollback to r1 (any strategy)                           → { r1: 100 }
 *   canary deploy r2, progress.weight 20, instances of r1   → { r2: 20, r1: 80 }
 *   canary deploy r2, weight 150 (out of range)             → { r2: 100, r1: 0 }
 *   canary deploy r2, no weight recorded yet                → { r2: 0, r1: 100 }
 */
export function planReleaseWeights(rollout: RoutingRollout | undefined, instances: readonly Pick<InstanceRecord, "release">[]): Record<string, number> | undefined {
  if (!rollout) return undefined;
  if (rollout.kind === "rollback" || rollout.fast) return { [rollout.target]: 100 };
  if (rollout.strategy !== "canary") return undefined;
  const w = Math.max(0, Math.min(100, Number(rollout.progress.weight ?? 0)));
  const out: Record<string, number> = { [rollout.target]: w };
  for (const r of instances) if (r.release !== rollout.target) out[r.release] = 100 - w;
  return out;
}

/**
 * The release served on the preview listener: a blue-green deploy's green fleet until the switch.
 *
 *   blue-green deploy to r2, not switched   → r2
 *   blue-green deploy to r2, switched       → undefined
 *   blue-green rollback, rolling, canary    → undefined
 */
export function planPreview(rollout: RoutingRollout | undefined): string | undefined {
  return rollout && rollout.kind === "deploy" && rollout.strategy === "blue-green" && rollout.switchedAt === undefined ? rollout.target : undefined;
}

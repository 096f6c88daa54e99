// Blue-green as a pure function: a full green fleet, then one atomic switch at the router.

import { failureOf, ids, isDrained } from "./capacity.js";
import type { Observed, RolloutSpec, RolloutStatus, Step } from "./types.js";

/**
 * Steps for a blue-green release to `rollout.target`.
 *
 * Blue (everything not of the target) keeps serving, untouched, until green is complete:
 * N green instances, every one healthy. Then one `switch` makes green active and blue
 * standby (weight 0, still running, still health-checked) in a single routing-table write;
 * once the router reads back every green instance as in rotation, `mark-switched`, and the
 * release is live. Blue stays warm for keepPreviousFor (the steady-state planner retires it),
 * so a rollback inside that window is another switch with no new instance.
 *
 * Worked examples (N = 3):
 * - 3 blue serving, no green → launch 3 green.
 * - 3 blue serving, 2 green healthy, 1 starting → wait.
 * - 3 blue serving, 3 green healthy, promotion auto → switch to green, blue → standby.
 * - same with promotion manual and no `kiln promote` yet → wait.
 * - green active, all read back in rotation → mark-switched; next tick → done.
 * - any green instance exits or fails health, or the deadline passes → abort (blue never stopped serving).
 * - `retire: "drain"` (used for rollbacks): the instances switched away from are drained, not kept.
 */
export function planBlueGreen(
  spec: RolloutSpec,
  rollout: RolloutStatus,
  observed: Observed,
  now: number,
  retire: "standby" | "drain" = "standby",
): Step[] {
  const p = spec.blueGreen;
  const n = spec.instances;
  const alive = observed.instances.filter((i) => i.phase !== "exited" || i.release === rollout.target);
  const exited = observed.instances.filter((i) => !alive.includes(i));
  const green = alive.filter((i) => i.release === rollout.target && i.routing !== "draining");
  const blue = alive.filter((i) => !green.includes(i));
  const steps: Step[] = [];

  if (rollout.switchedAt !== undefined) return [{ kind: "done", reason: `traffic switched to ${n} green instance(s)` }];

  for (const g of green) {
    const failure = failureOf(g, spec.instanceDeadline, now);
    if (failure) return [{ kind: "abort", reason: failure }];
  }
  if (now - rollout.startedAt > p.deadline) {
    const ok = green.filter((i) => i.phase === "healthy").length;
    return [{ kind: "abort", reason: `deadline of ${Math.round(p.deadline / 1000)}s passed with ${ok} of ${n} green instances healthy` }];
  }
  if (exited.length) steps.push({ kind: "terminate", ids: ids(exited), reason: "clean up exited instances" });

  // Blue instances already on their way out finish their drain as usual.
  const drained = blue.filter((i) => isDrained(i, spec.drainTimeout, now) || (i.routing === "none" && i.inflight === 0));
  if (drained.length) steps.push({ kind: "terminate", ids: ids(drained), reason: "drained" });

  if (green.length < n) {
    steps.push({ kind: "launch", release: rollout.target, count: n - green.length, reason: `green fleet ${green.length}/${n}` });
    return steps;
  }

  const allHealthy = green.every((i) => i.phase === "healthy");
  if (!allHealthy) {
    steps.push({ kind: "wait", reason: `green ${green.filter((i) => i.phase === "healthy").length}/${n} healthy` });
    return steps;
  }

  const switched = green.every((i) => i.routing === "active");
  if (!switched) {
    if (p.promotion === "manual" && !rollout.promoteRequested) {
      steps.push({ kind: "wait", reason: "green is healthy: waiting for `kiln promote`", paused: true });
      return steps;
    }
    const serving = blue.filter((i) => i.routing === "active" || i.routing === "standby");
    steps.push({ kind: "switch", to: rollout.target, standby: retire === "standby" ? ids(serving) : [], reason: "green healthy: switch traffic" });
    if (retire === "drain" && serving.length) steps.push({ kind: "drain", ids: ids(serving), reason: "switched away: retire" });
    return steps;
  }

  // Closed loop: the release is live only once the router itself reports every green instance in rotation.
  if (green.every((i) => i.inRotation)) {
    steps.push({ kind: "mark-switched", reason: "router confirms green in rotation" });
    return steps;
  }
  steps.push({ kind: "wait", reason: "waiting for the router to confirm green in rotation" });
  return steps;
}

// Blue-green as a pure function: a full green fleet, then one atomic switch at the router.

import { ids, isDrained, judgeFailures, notIn } from "./capacity.js";
import type { Observed, RolloutParams, RolloutStatus, Step } from "./types.js";

/**
 * Steps for a blue-green release to `rollout.target`.
 *
 * Blue (everything not of the target) keeps serving, untouched, until green is complete:
 * N green instances, every one healthy. Healthy green instances enter the routing table on
 * standby (weight 0: health-checked by the router, reachable on the preview address, no
 * production traffic). Pre-promotion checks run against each of them; then, on promotion,
 * one `switch` makes green active and blue standby (still running, still health-checked) in
 * a single routing-table write; once the router reads back every green instance as in
 * rotation, `mark-switched`. A guard window may follow: a green fleet failing in it flips
 * traffic back onto the still-warm blue fleet (the controller turns the abort into an
 * instant switch back). Blue stays warm for keepPreviousFor after the release is live.
 *
 * Worked examples (N = 3):
 * - 3 blue serving, no green → launch 3 green.
 * - 3 blue serving, 2 green healthy, 1 starting → standby the 2, wait.
 * - 3 green healthy on standby, promotion auto, no checks → switch to green, blue → standby.
 * - same with promotion manual: wait for `kiln promote`; autoPromoteAfter 60s → switch 60 s after
 *   green was ready; promotionDeadline 10m → abort 10 min after green was ready.
 * - green active, all read back in rotation → mark-switched; guardWindow 0 → done next tick.
 * - in the guard window one green instance (that was healthy) fails → quarantine and replace it;
 *   two fail (limit 1) → abort: traffic goes back to blue.
 * - a green instance fails before it was ever healthy, or the deadline passes → abort (blue never stopped serving).
 * - `retire: "drain"` (used for rollbacks): the instances switched away from are drained, not kept.
 * - done: "traffic switched to 3 green instance(s)"; a rollback to r1: "traffic switched back to 3 instance(s) of r1".
 */
export function planBlueGreen(
  spec: RolloutParams,
  rollout: RolloutStatus,
  observed: Observed,
  now: number,
  retire: "standby" | "drain" = "standby",
): Step[] {
  const p = spec.blueGreen;
  const n = spec.instances;
  const progress = rollout.progress ?? {};
  const alive = observed.instances.filter((i) => i.phase !== "exited" || i.release === rollout.target);
  const exited = observed.instances.filter(notIn(alive));
  let green = alive.filter((i) => i.release === rollout.target && i.routing !== "draining");
  const blue = alive.filter(notIn(green));
  const steps: Step[] = [];

  const verdict = judgeFailures(green, spec.instanceDeadline, now, rollout.fast ? 0 : (spec.maxQuarantined ?? 1), progress.quarantined ?? 0);
  if (verdict.kind === "abort") return [{ kind: "abort", reason: verdict.reason }];
  if (verdict.kind === "quarantine") {
    steps.push({ kind: "quarantine", ids: verdict.ids, reason: verdict.reason });
    green = green.filter(notIn(verdict.ids));
  }

  if (rollout.switchedAt !== undefined) {
    // Live traffic is on green. Keep it whole and keep watching through the guard window.
    const guard = rollout.fast ? 0 : (p.guardWindow ?? 0);
    if (green.length < n) steps.push({ kind: "launch", release: rollout.target, count: n - green.length, reason: `replace quarantined: ${green.length}/${n}` });
    const fresh = green.filter((i) => i.phase === "healthy" && i.routing === "none");
    if (fresh.length) steps.push({ kind: "register", ids: ids(fresh), reason: "replacement healthy" });
    if (now - rollout.switchedAt < guard || green.length < n) {
      steps.push({ kind: "wait", reason: green.length < n ? "replacing a quarantined instance" : `guard window: ${Math.ceil((guard - (now - rollout.switchedAt)) / 1000)}s left` });
      return steps;
    }
    // A rollback's "green" is the earlier release's fleet: traffic went back to it.
    const reason = rollout.rollback ? `traffic switched back to ${n} instance(s) of ${rollout.target}` : `traffic switched to ${n} green instance(s)`;
    return [...steps, { kind: "done", reason }];
  }

  const ready = progress.readyAt !== undefined;
  if (!ready && now - rollout.startedAt > p.deadline) {
    const ok = green.filter((i) => i.phase === "healthy").length;
    return [{ kind: "abort", reason: `deadline of ${Math.round(p.deadline / 1000)}s passed with ${ok} of ${n} green instances healthy` }];
  }
  if (exited.length) steps.push({ kind: "terminate", ids: ids(exited), reason: "clean up exited instances" });

  // Blue instances already on their way out finish their drain as usual.
  const drained = blue.filter((i) => isDrained(i, spec.drainTimeout, now) || (i.routing === "none" && i.inflight === 0));
  if (drained.length) steps.push({ kind: "terminate", ids: ids(drained), reason: "drained" });

  // Healthy green waits on standby: in the table at weight 0, checked by the router, previewable.
  const toStandby = green.filter((i) => i.phase === "healthy" && i.routing === "none");
  if (toStandby.length && !rollout.fast) steps.push({ kind: "standby", ids: ids(toStandby), reason: "green healthy: standby for preview" });

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
    let readyAt = progress.readyAt;
    if (readyAt === undefined && !rollout.fast) {
      steps.push({ kind: "progress", set: { readyAt: now }, reason: "green ready for promotion" });
      readyAt = now;
    }
    const checks = rollout.fast ? [] : (p.prePromotionChecks ?? []);
    if (checks.length && !progress.checksPassed) {
      if (!observed.checks) {
        steps.push({ kind: "check", ids: ids(green), reason: `pre-promotion checks on ${n} green instance(s)` });
        steps.push({ kind: "wait", reason: "pre-promotion checks running" });
        return steps;
      }
      if (!observed.checks.ok) return [{ kind: "abort", reason: `pre-promotion check failed: ${observed.checks.reason}` }];
      steps.push({ kind: "progress", set: { checksPassed: true }, reason: "pre-promotion checks passed" });
    }
    const readyFor = readyAt === undefined ? 0 : now - readyAt;
    if (p.promotion === "manual" && !rollout.promoteRequested && !rollout.fast) {
      const auto = p.autoPromoteAfter !== undefined && readyFor >= p.autoPromoteAfter;
      if (!auto) {
        if (p.promotionDeadline !== undefined && readyFor >= p.promotionDeadline) {
          return [{ kind: "abort", reason: `green was not promoted within ${Math.round(p.promotionDeadline / 1000)}s of being ready` }];
        }
        steps.push({ kind: "wait", reason: "green is healthy: waiting for `kiln promote`", paused: true });
        return steps;
      }
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


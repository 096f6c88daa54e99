// Rolling replacement as a pure function of (spec, rollout, observed fleet, now).

import { computeBounds, failureOf, ids, isConfirmed, isDrained, isServing, judgeFailures, notIn } from "./capacity.js";
import type { FleetInstance, Observed, RolloutParams, RolloutStatus, Step } from "./types.js";

/**
 * Every step that is safe to take now for a rolling replacement to `rollout.target`.
 *
 * Old instances leave rotation only when enough confirmed new capacity stands in for them:
 * a new instance counts once it is healthy, warmed up (`instanceWarmup`) and read back from
 * the router as in rotation. With surge allowed (maxHealthyPercent > 100) an old instance is
 * drained only when a confirmed new one replaces it; without surge, old instances are drained
 * down to the minHealthy floor first (terminate-first, like AWS 100/100).
 *
 * Worked examples (fleet of N, "old" = any release other than the target):
 * - N=3, min 100, max 150, 3 old serving, nothing new → launch 1 (surge 1).
 * - N=3, same, 3 old serving, 1 new confirmed → drain 1 old (4 serving, floor 3).
 * - N=3, same, 1 old draining with 0 in flight → terminate it; then, 3 alive < maxTotal 4 → launch 1.
 * - N=1, min 100, max 150 → launch the replacement first, drain the only old one after it is confirmed.
 * - N=4, min 75, max 100, 4 old serving → drain 1 (serving 3 = floor); launch 1 when it is terminated.
 * - any new instance exits or fails health before it was ever healthy, or the deadline passes
 *   → abort (the controller rolls back); one that fails *after* being healthy is quarantined
 *   and replaced (see judgeFailures).
 * - N=10, checkpoints [20, 50], max 150: launches stop at 2 new; once 2 are confirmed the
 *   rollout holds (checkpointDelay, or `kiln resume`); then up to 5, hold; then the rest.
 * - skipMatching and the old fleet already runs the target's digest and config → those
 *   instances count as new (rollout.equivalent): nothing is replaced.
 * - bakeTime 60s: all N new confirmed → record completedAt and keep watching; done 60 s later
 *   unless one of them fails in between (→ abort and roll back).
 * - N=8, all 8 of the target confirmed, no old left → done "8 instances of the new release in
 *   rotation"; when the rollout is a rollback to r1: "8 instances in rotation" (r1 is not new).
 */
export function planRolling(spec: RolloutParams, rollout: RolloutStatus, observed: Observed, now: number): Step[] {
  const p = spec.rolling;
  const n = spec.instances;
  const warmup = rollout.fast ? 0 : p.instanceWarmup;
  const steps: Step[] = [];

  const equivalent = new Set(p.skipMatching ? (rollout.equivalent ?? []) : []);
  const target = rollout.target;
  const isExited = (i: FleetInstance) => i.phase === "exited" && i.release !== target;
  const c = classifyFleet(observed.instances, target, equivalent, warmup, spec.drainTimeout, now);
  const { exited, alive, freshNotHealthy, old, confirmedNew, drained, idle, noCapacity, oldServing } = c;
  let { fresh, toRegister } = c;
  /** Failed new instances are set apart: they neither register nor count as confirmed (they are not healthy, so they were neither). */
  const setApart = (gone: readonly FleetInstance[] | readonly string[]) => {
    const keep = notIn(gone);
    fresh = fresh.filter(keep);
    toRegister = toRegister.filter(keep);
  };
  const progress = rollout.progress ?? {};
  // Ids of the terminate and quarantine steps taken below, as they are taken: they free room
  // for launches (kept here rather than read back from the steps, whose shapes differ by kind).
  const stopping: string[] = [];

  // A healthy instance has not failed (failureOf): with every new one healthy there is nothing to judge.
  if (!rollout.fast) {
    const verdict = freshNotHealthy > 0 ? judgeFailures(fresh, spec.instanceDeadline, now, spec.maxQuarantined ?? 1, progress.quarantined ?? 0) : { kind: "none" as const };
    if (verdict.kind === "abort") return [{ kind: "abort", reason: verdict.reason }];
    if (verdict.kind === "quarantine") {
      steps.push({ kind: "quarantine", ids: verdict.ids, reason: verdict.reason });
      for (const id of verdict.ids) stopping.push(id);
      setApart(verdict.ids);
    }
  } else {
    // A rollback has nowhere further to fall back to: replace a failed instance of the
    // release it restores instead of giving up.
    const failed = freshNotHealthy > 0 ? fresh.filter((i) => failureOf(i, spec.instanceDeadline, now) !== undefined) : [];
    if (failed.length) setApart(failed);
    const routed = failed.filter((i) => i.routing !== "none");
    const unrouted = failed.filter((i) => i.routing === "none");
    if (routed.length) steps.push({ kind: "drain", ids: ids(routed), reason: "failed: leave rotation" });
    if (unrouted.length) {
      steps.push({ kind: "terminate", ids: ids(unrouted), reason: "failed: replace" });
      for (const i of unrouted) stopping.push(i.id);
    }
  }
  if (progress.completedAt === undefined && now - rollout.startedAt > p.deadline) {
    return [{ kind: "abort", reason: `deadline of ${Math.round(p.deadline / 1000)}s passed with ${confirmedNew} of ${n} new instances healthy` }];
  }

  if (exited.length) {
    steps.push({ kind: "terminate", ids: ids(exited), reason: "clean up exited instances" });
    for (const i of exited) stopping.push(i.id);
  }

  if (toRegister.length) steps.push({ kind: "register", ids: ids(toRegister), reason: "healthy: add to rotation" });

  const stoppable = [...drained, ...idle];
  if (stoppable.length) {
    steps.push({ kind: "terminate", ids: ids(stoppable), reason: "old instance drained" });
    for (const i of stoppable) stopping.push(i.id);
  }

  // No capacity: out of the table (draining first, in case something is still in flight).
  if (noCapacity.length) steps.push({ kind: "drain", ids: ids(noCapacity), reason: "not serving: leave rotation" });

  const bounds = computeBounds(n, p.minHealthyPercent, p.maxHealthyPercent);
  const capacity = confirmedNew + oldServing.length;

  // Checkpoints: the next one not passed caps how many new instances may exist; once that
  // many are confirmed the rollout holds until the delay passes or `kiln resume`.
  const passed = new Set(progress.checkpointsPassed ?? []);
  const nextCheckpoint = rollout.fast ? undefined : (p.checkpoints ?? []).find((c) => !passed.has(c) && Math.ceil((n * c) / 100) < n);
  const cap = nextCheckpoint === undefined ? n : Math.ceil((n * nextCheckpoint) / 100);
  let holding = false;
  if (nextCheckpoint !== undefined && confirmedNew >= cap) {
    const since = progress.holding?.percent === nextCheckpoint ? progress.holding.since : undefined;
    if (since === undefined) {
      steps.push({ kind: "progress", set: { holding: { percent: nextCheckpoint, since: now } }, reason: `checkpoint ${nextCheckpoint}%: ${confirmedNew}/${n} replaced` });
      holding = true;
    } else if (p.checkpointDelay !== undefined && now - since >= p.checkpointDelay) {
      steps.push({ kind: "progress", set: { holding: undefined, checkpointsPassed: [...passed, nextCheckpoint] }, reason: `checkpoint ${nextCheckpoint}% passed` });
    } else holding = true;
  }

  let drainCount = Math.min(oldServing.length, capacity - bounds.minHealthy);
  if (bounds.surge > 0) drainCount = Math.min(drainCount, capacity - n);
  if (drainCount > 0) {
    // Oldest first: they have been warm longest and are furthest from the target.
    // The fleet usually comes in launch order already: then the (stable) sort would change nothing.
    const victims = (inLaunchOrder(oldServing) ? oldServing : [...oldServing].sort((a, b) => a.launchedAt - b.launchedAt)).slice(0, drainCount);
    steps.push({ kind: "drain", ids: ids(victims), reason: `${confirmedNew} new instance(s) confirmed in rotation` });
  }

  // Instances stopped this tick (drained, failed, quarantined) free their room for launches.
  const leaving = new Set(stopping);
  const stillAlive = leaving.size ? alive - countLeaving(observed.instances, leaving, isExited) : alive;
  const room = bounds.maxTotal - stillAlive;
  const want = Math.min(n, cap) - fresh.length;
  const launch = holding ? 0 : Math.min(room, want);
  if (launch > 0) steps.push({ kind: "launch", release: rollout.target, count: launch, reason: `${fresh.length}/${n} new instances` });

  if (confirmedNew >= n && old === 0 && fresh.length === n) {
    const bake = rollout.fast ? 0 : (p.bakeTime ?? 0);
    if (bake > 0 && progress.completedAt === undefined) {
      steps.push({ kind: "progress", set: { completedAt: now }, reason: `all ${n} replaced: baking for ${Math.round(bake / 1000)}s` });
      return steps;
    }
    if (bake > 0 && now - progress.completedAt! < bake) {
      steps.push({ kind: "wait", reason: `baking: ${Math.ceil((bake - (now - progress.completedAt!)) / 1000)}s left` });
      return steps;
    }
    return [...steps.filter((s) => s.kind === "quarantine" || s.kind === "register"), { kind: "done", reason: rollout.rollback ? `${n} instances in rotation` : `${n} instances of the new release in rotation` }];
  }
  if (n === 0 && old === 0) return [{ kind: "done", reason: "fleet scaled to zero" }];
  if (holding) {
    const manual = p.checkpointDelay === undefined;
    steps.push({ kind: "wait", reason: `checkpoint ${nextCheckpoint}%: ${manual ? "`kiln resume` continues" : "holding"}`, paused: manual });
  }
  if (steps.length === 0) steps.push({ kind: "wait", reason: `${confirmedNew}/${n} new instances confirmed` });
  return steps;
}

/** What planRolling asks of the fleet, from one pass over it (see there). */
interface RollingFleet {
  exited: FleetInstance[];
  alive: number;
  fresh: FleetInstance[];
  /** new instances not healthy: only these can have failed (see failureOf) */
  freshNotHealthy: number;
  old: number;
  // new: healthy and not yet in rotation; warm and confirmed by the router (only healthy
  // instances are either, so setting failed ones apart never changes them)
  toRegister: FleetInstance[];
  confirmedNew: number;
  // old: drained; out of the table with nothing in flight; carrying no capacity; serving
  drained: FleetInstance[];
  idle: FleetInstance[];
  noCapacity: FleetInstance[];
  oldServing: FleetInstance[];
}

/**
 * One pass over the fleet (10,000 instances in simulation): exited instances of other
 * releases, then new ones, then old. A draining instance of the target (taken out by
 * auto-heal) is on its way out: it counts as old. Everything later asked of the old
 * instances, and of the new ones before failures are set apart, is sorted out in the same
 * pass (each list in fleet order, as a filter would give it). What is only counted
 * (alive, old, confirmed new) is kept as a count, not a list. A function of its own: the
 * loop is the hot part, and the engine optimises it apart from the rest of the planner.
 */
function classifyFleet(instances: readonly FleetInstance[], target: string, equivalent: ReadonlySet<string>, warmup: number, drainTimeout: number, now: number): RollingFleet {
  const c: RollingFleet = { exited: [], alive: 0, fresh: [], freshNotHealthy: 0, old: 0, toRegister: [], confirmedNew: 0, drained: [], idle: [], noCapacity: [], oldServing: [] };
  // Indexed, not for…of: until the engine has compiled the loop, each step of an iterator is an object.
  for (let k = 0; k < instances.length; k++) {
    const i = instances[k]!;
    if (i.phase === "exited" && i.release !== target) {
      c.exited.push(i);
      continue;
    }
    c.alive++;
    if ((i.release === target || (equivalent.size > 0 && equivalent.has(i.release))) && i.routing !== "draining") {
      c.fresh.push(i);
      if (i.phase !== "healthy") c.freshNotHealthy++;
      else if (i.routing === "none" || i.routing === "standby") c.toRegister.push(i);
      if (isConfirmed(i, warmup, now)) c.confirmedNew++;
      continue;
    }
    c.old++;
    if (isDrained(i, drainTimeout, now)) c.drained.push(i);
    // Out of the table with nothing in flight (e.g. taken out for failing health): stopped directly.
    if (i.routing === "none" && i.inflight === 0) c.idle.push(i);
    // Warm standbys of an earlier blue-green release and unhealthy old ones carry no capacity.
    if (i.routing === "standby" || (i.routing === "active" && i.phase === "unhealthy")) c.noCapacity.push(i);
    if (i.routing === "active" && isServing(i)) c.oldServing.push(i);
  }
  return c;
}

/** How many alive instances (not exited of another release) are among `leaving`. */
function countLeaving(instances: readonly FleetInstance[], leaving: ReadonlySet<string>, isExited: (i: FleetInstance) => boolean): number {
  let n = 0;
  for (let k = 0; k < instances.length; k++) {
    const i = instances[k]!;
    if (!isExited(i) && leaving.has(i.id)) n++;
  }
  return n;
}

function inLaunchOrder(list: readonly FleetInstance[]): boolean {
  for (let k = 1; k < list.length; k++) if (list[k - 1]!.launchedAt > list[k]!.launchedAt) return false;
  return true;
}

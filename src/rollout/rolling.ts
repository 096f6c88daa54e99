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
export interface RollingFleet {
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

/** classifyFleet's lists, one bit each in a per-instance code. */
const EXITED = 1, FRESH = 2, TO_REGISTER = 4, DRAINED = 8, IDLE = 16, NO_CAPACITY = 32, OLD_SERVING = 64;

/**
 * One pass over the fleet (10,000 instances in simulation): exited instances of other
 * releases, then new ones, then old. A draining instance of the target (taken out by
 * auto-heal) is on its way out: it counts as old. Everything later asked of the old
 * instances, and of the new ones before failures are set apart, is sorted out in the same
 * pass (each list in fleet order, as a filter would give it). What is only counted
 * (alive, old, confirmed new) is kept as a count, not a list. A function of its own: the
 * loop is the hot part, and the engine optimises it apart from the rest of the planner.
 *
 * The loop reads every field and makes every comparison for every instance, and only then
 * combines the answers (into counts, and a code naming the lists the instance goes in; the
 * lists are gathered after). Its compiled code then holds nothing a phase of the rollout has
 * not reached yet: the first old instance, the first drained one, the first exited one take
 * no branch the engine has never seen (each such would make it throw the loop's code away
 * and compile it again, ~15 times a 10,000-instance simulation before).
 */
export function classifyFleet(instances: readonly FleetInstance[], target: string, equivalent: ReadonlySet<string>, warmup: number, drainTimeout: number, now: number): RollingFleet {
  const codes = new Uint16Array(instances.length);
  const hist = new Int32Array(CODES);
  tally(instances, codes, hist, target, equivalent, warmup, drainTimeout, now);
  // How many instances have each bit, from how many have each code.
  const sums = new Int32Array(BITS);
  for (let code = 1; code < CODES; code++) {
    const k = hist[code]!;
    if (k !== 0) for (let b = 0; b < BITS; b++) if ((code >> b) & 1) sums[b] += k;
  }
  const alive = instances.length - sums[0]!;
  return {
    exited: collect(instances, codes, EXITED, sums[0]!),
    alive,
    fresh: collect(instances, codes, FRESH, sums[1]!),
    freshNotHealthy: sums[7]!,
    old: alive - sums[1]!,
    toRegister: collect(instances, codes, TO_REGISTER, sums[2]!),
    confirmedNew: sums[8]!,
    drained: collect(instances, codes, DRAINED, sums[3]!),
    idle: collect(instances, codes, IDLE, sums[4]!),
    noCapacity: collect(instances, codes, NO_CAPACITY, sums[5]!),
    oldServing: collect(instances, codes, OLD_SERVING, sums[6]!),
  };
}

/** tally's codes: the seven lists' bits, then what is only counted (new and not healthy; new and confirmed). */
const FRESH_NOT_HEALTHY = 128, CONFIRMED = 256;
const BITS = 9;
const CODES = 1 << BITS;

/**
 * classifyFleet's loop: each instance's code into `codes` (which lists it goes in, what it
 * counts as), and how many instances have each code into `hist`. Nothing follows the loop:
 * the engine compiles a long loop while it runs (on-stack replacement), before anything after
 * it has run, and such code, reused each time the loop runs long again, would be thrown away
 * each time it reached what follows. One count per instance, whatever it counts as: the loop
 * is short to run before it is compiled too.
 */
function tally(instances: readonly FleetInstance[], codes: Uint16Array, hist: Int32Array, target: string, equivalent: ReadonlySet<string>, warmup: number, drainTimeout: number, now: number): void {
  const n = instances.length;
  const anyEquivalent = equivalent.size > 0;
  for (let k = 0; k < n; k++) {
    const i = instances[k]!;
    const phase = i.phase, release = i.release, routing = i.routing, inflight = i.inflight, inRotation = i.inRotation, healthySince = i.healthySince, drainingSince = i.drainingSince;
    const isExited = phase === "exited", isHealthy = phase === "healthy", isUnhealthy = phase === "unhealthy";
    const isTarget = release === target;
    const none = routing === "none", active = routing === "active", standby = routing === "standby", draining = routing === "draining";
    const idleNow = inflight === 0;
    const hasHealthySince = healthySince !== undefined, hasDrainingSince = drainingSince !== undefined;
    const warm = now - (hasHealthySince ? healthySince : 0) >= warmup;
    const drainOver = now - (hasDrainingSince ? drainingSince : 0) >= drainTimeout;
    const serving = active && inRotation && isHealthy;
    const exited = isExited && !isTarget;
    const fresh = !exited && (isTarget || (anyEquivalent && equivalent.has(release))) && !draining;
    const isOld = !exited && !fresh;
    const toRegister = fresh && isHealthy && (none || standby);
    const drained = isOld && draining && (idleNow || (hasDrainingSince && drainOver));
    const idle = isOld && none && idleNow;
    const noCapacity = isOld && (standby || (active && isUnhealthy));
    const oldServing = isOld && serving;
    const code =
      (exited ? EXITED : 0) | (fresh ? FRESH : 0) | (toRegister ? TO_REGISTER : 0) | (drained ? DRAINED : 0) | (idle ? IDLE : 0) | (noCapacity ? NO_CAPACITY : 0) |
      (oldServing ? OLD_SERVING : 0) | (fresh && !isHealthy ? FRESH_NOT_HEALTHY : 0) | (fresh && serving && hasHealthySince && warm ? CONFIRMED : 0);
    codes[k] = code;
    hist[code]++;
  }
}

/**
 * The `count` instances whose code has `bit`, in fleet order (one function for every list:
 * compiled once, for all of them). Called for every list, empty ones too: a call first made
 * in a later phase would be a branch the caller's compiled code has not seen.
 */
function collect(instances: readonly FleetInstance[], codes: Uint16Array, bit: number, count: number): FleetInstance[] {
  if (count === 0) return [];
  // Its size is known: made at that size and filled, not grown (two lists of up to the whole
  // fleet, every tick). Past PRESIZED the engine would make such an array a dictionary: grown.
  if (count > PRESIZED) return collectGrowing(instances, codes, bit);
  const out = new Array<FleetInstance>(count);
  let j = 0;
  for (let k = 0; k < instances.length && j < count; k++) if ((codes[k]! & bit) !== 0) out[j++] = instances[k]!;
  return out;
}

/** The largest list collect makes at its size (V8 keeps `new Array(n)` a plain array up to 100,000 slots). */
const PRESIZED = 50_000;

/** collect for lists past PRESIZED. */
function collectGrowing(instances: readonly FleetInstance[], codes: Uint16Array, bit: number): FleetInstance[] {
  const out: FleetInstance[] = [];
  for (let k = 0; k < instances.length; k++) if ((codes[k]! & bit) !== 0) out.push(instances[k]!);
  return out;
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

// Canary as a pure function: a few instances of the new release take a growing share of
// requests, step by step, while their metrics are compared with the stable release's.

import { computeBounds, ids, isConfirmed, isDrained, judgeFailures, notIn } from "./capacity.js";
import { judgeCanary } from "./analysis.js";
import type { CanaryParams, Observed, RolloutParams, RolloutStatus, Step } from "./types.js";

/** Canary instances needed to carry `weight` percent of an N-instance fleet's traffic (at least 1 when weight > 0). */
export function canaryCount(n: number, weight: number): number {
  if (weight <= 0 || n <= 0) return 0;
  return Math.min(n, Math.max(1, Math.ceil((n * weight) / 100)));
}

const DEFAULT_CANARY: CanaryParams = {
  steps: [{ setWeight: 20 }, { pause: 30_000 }, { setWeight: 50 }, { pause: 30_000 }],
  analysis: { maxErrorRate: 0.05, maxP99Ratio: 3, minRequests: 20, window: 30_000 },
  instanceWarmup: 2000,
  deadline: 30 * 60_000,
  autoRollback: true,
};

/**
 * Steps for a canary release to `rollout.target`. The stable fleet (every other release)
 * keeps its N instances serving throughout; canary instances come on top. The router splits
 * new requests by release: `progress.weight` percent to the canary, the rest to stable.
 *
 * - `setWeight: w` → make sure ceil(N·w/100) canary instances are healthy, warm and confirmed
 *   in rotation, then record weight w (the controller writes it into the routing table) and
 *   move to the next step.
 * - `pause: 30s` → hold at the current weight for 30 s, and beyond until the analysis has judged at
 *   least minRequests canary requests and passed them (no evidence is not a pass); `pause: manual`
 *   → hold until `kiln promote`.
 * - at every tick with weight > 0: analysis of the canary's window against stable's; a breach
 *   → abort (the controller re-points all traffic to stable and removes the canary: fast path).
 * - after the last step: full promotion — N canary instances confirmed, weight 100, then the
 *   stable fleet leaves rotation (standby through the guard window when there is one, else
 *   drained), `mark-switched`, and done once the guard window passed.
 *
 * Worked examples (N = 4, steps [setWeight 25, pause 1m, setWeight 50, pause manual]):
 * - start, no canary → launch 1.
 * - 1 canary confirmed → progress {step 1, weight 25}.
 * - 40 s into the pause → wait; 60 s → progress {step 2}.
 * - step 2 (50 %) → launch 1 more (2 in all); both confirmed → progress {step 3, weight 50}.
 * - step 3 manual pause → wait (paused) until `kiln promote` moves the step on.
 * - canary error rate 20 % over 100 requests (limit 5 %) → abort.
 * - a canary instance that never turned healthy → abort; one that was healthy and failed later → quarantine it.
 */
export function planCanary(spec: RolloutParams, rollout: RolloutStatus, observed: Observed, now: number): Step[] {
  const c = spec.canary ?? DEFAULT_CANARY;
  const n = spec.instances;
  const progress = rollout.progress ?? {};
  const stepIndex = progress.step ?? 0;
  const weight = progress.weight ?? 0;
  const steps: Step[] = [];

  const exited = observed.instances.filter((i) => i.phase === "exited" && i.release !== rollout.target);
  const alive = observed.instances.filter(notIn(exited));
  let canary = alive.filter((i) => i.release === rollout.target && i.routing !== "draining");
  const stable = alive.filter(notIn(canary));

  const verdict = judgeFailures(canary, spec.instanceDeadline, now, spec.maxQuarantined ?? 1, progress.quarantined ?? 0);
  if (verdict.kind === "abort") return [{ kind: "abort", reason: verdict.reason }];
  if (verdict.kind === "quarantine") {
    steps.push({ kind: "quarantine", ids: verdict.ids, reason: verdict.reason });
    canary = canary.filter(notIn(verdict.ids));
  }
  if (progress.completedAt === undefined && now - rollout.startedAt > c.deadline) {
    return [{ kind: "abort", reason: `deadline of ${Math.round(c.deadline / 1000)}s passed at canary step ${stepIndex + 1}/${c.steps.length} (${weight}%)` }];
  }
  // No evidence is not a pass: a pause ends only once the analysis has judged enough canary traffic.
  let evidence: string | undefined;
  let passed: string | undefined;
  if (weight > 0) {
    const a = observed.analysis ? judgeCanary(c.analysis, observed.analysis.canary, observed.analysis.stable) : undefined;
    if (a?.kind === "fail") return [{ kind: "abort", reason: `analysis: ${a.reason}` }];
    if (a?.kind !== "pass") evidence = a?.detail ?? "no traffic measured yet";
    else passed = a.detail;
  }

  if (exited.length) steps.push({ kind: "terminate", ids: ids(exited), reason: "clean up exited instances" });
  const drained = stable.filter((i) => isDrained(i, spec.drainTimeout, now) || (i.routing === "none" && i.inflight === 0));
  if (drained.length) steps.push({ kind: "terminate", ids: ids(drained), reason: "drained" });

  // A warm standby fleet of an older release (kept by an earlier blue-green) is not the stable
  // fleet and carries no traffic: retire it, as rolling does, so it holds no room the canary needs.
  const older = stable.filter((i) => i.release !== rollout.previous && (i.routing === "standby" || (i.routing === "active" && i.phase === "unhealthy")));
  if (older.length) steps.push({ kind: "drain", ids: ids(older), reason: "not the stable fleet: leave rotation" });

  const toRegister = canary.filter((i) => i.phase === "healthy" && (i.routing === "none" || i.routing === "standby"));
  if (toRegister.length) steps.push({ kind: "register", ids: ids(toRegister), reason: "canary healthy: add to rotation" });

  const confirmed = canary.filter((i) => isConfirmed(i, c.instanceWarmup, now));
  const step = c.steps[stepIndex];
  // Room for canary instances on top of the stable fleet: at most N more (the full promotion).
  const bounds = computeBounds(n, 100, 200);
  const launchUpTo = (want: number) => {
    const room = bounds.maxTotal - (alive.length - drained.length);
    const missing = Math.min(want - canary.length, room);
    if (missing > 0) steps.push({ kind: "launch", release: rollout.target, count: missing, reason: `canary ${canary.length}/${want}` });
  };

  if (step !== undefined) {
    if ("setWeight" in step) {
      const want = canaryCount(n, step.setWeight);
      launchUpTo(want);
      if (confirmed.length >= want) {
        steps.push({ kind: "progress", set: { step: stepIndex + 1, stepStartedAt: now, weight: step.setWeight }, reason: `canary at ${step.setWeight}% (${want} instance(s))` });
      } else steps.push({ kind: "wait", reason: `canary ${confirmed.length}/${want} confirmed for ${step.setWeight}%` });
      return steps;
    }
    launchUpTo(canaryCount(n, weight)); // keep the current share covered (a quarantined instance is replaced)
    const since = progress.stepStartedAt ?? rollout.startedAt;
    if (step.pause === "manual") {
      steps.push({ kind: "wait", reason: `canary at ${weight}%: \`kiln promote\` continues`, paused: true });
      return steps;
    }
    if (now - since < step.pause) steps.push({ kind: "wait", reason: `canary at ${weight}%: ${Math.ceil((step.pause - (now - since)) / 1000)}s left` });
    else if (evidence !== undefined) steps.push({ kind: "wait", reason: `canary at ${weight}%: waiting for analysis evidence (${evidence})` });
    else steps.push({ kind: "progress", set: { step: stepIndex + 1, stepStartedAt: now }, reason: `pause at ${weight}% done, analysis passed (${passed})` });
    return steps;
  }

  // Full promotion.
  launchUpTo(n);
  if (rollout.switchedAt === undefined) {
    if (confirmed.length < n) {
      steps.push({ kind: "wait", reason: `promoting: ${confirmed.length}/${n} canary instances confirmed` });
      return steps;
    }
    if (weight !== 100) {
      steps.push({ kind: "progress", set: { weight: 100 }, reason: "promoting: all traffic to the canary" });
      return steps;
    }
    const guard = c.guardWindow ?? 0;
    const serving = stable.filter((i) => i.routing === "active");
    if (serving.length) {
      steps.push(guard > 0 ? { kind: "standby", ids: ids(serving), reason: "promoted: previous fleet kept warm for the guard window" } : { kind: "drain", ids: ids(serving), reason: "promoted: retire the previous fleet" });
      return steps;
    }
    if (confirmed.length >= n) steps.push({ kind: "mark-switched", reason: "router confirms the canary fleet in rotation" });
    return steps;
  }
  const guard = c.guardWindow ?? 0;
  if (now - rollout.switchedAt < guard || canary.length < n) {
    steps.push({ kind: "wait", reason: canary.length < n ? "replacing a quarantined instance" : `guard window: ${Math.ceil((guard - (now - rollout.switchedAt)) / 1000)}s left` });
    return steps;
  }
  const leftover = stable.filter((i) => i.routing === "active");
  if (leftover.length) {
    steps.push({ kind: "drain", ids: ids(leftover), reason: "retire" });
    return steps;
  }
  steps.push({ kind: "done", reason: `${n} canary instances promoted` });
  return steps;
}

// Steady state, between rollouts: auto-heal, scaling, and retiring a warm previous fleet.

import { ids, isDrained } from "./capacity.js";
import type { Observed, Step } from "./types.js";

export interface SteadyInput {
  /** the live release; undefined before the first deploy */
  live?: string;
  instances: number;
  drainTimeout: number;
  /** epoch ms until which standby instances (the previous blue-green fleet) are kept warm */
  keepStandbyUntil?: number;
}

/**
 * Keep the fleet at `instances` healthy instances of the live release.
 *
 * Heal only ever launches the live release: a failed release is never live, so it can
 * never be healed back into the fleet.
 *
 * Worked examples (N = 3, live = r2):
 * - 3 r2 serving → nothing.
 * - 1 r2 exited → terminate it (clean up), launch 1 r2.
 * - 1 r2 unhealthy and active → drain it, launch 1 r2; terminate it once drained.
 * - 1 new r2 healthy, not routed → register it.
 * - 4 r2 serving (scaled down to 3) → drain the newest one.
 * - 3 r1 standby and keepStandbyUntil passed → drain them.
 */
export function planSteady(input: SteadyInput, observed: Observed, now: number): Step[] {
  const steps: Step[] = [];
  const live = input.live;
  const all = observed.instances;
  const exited = all.filter((i) => i.phase === "exited");
  if (exited.length) steps.push({ kind: "terminate", ids: ids(exited), reason: "instance exited" });
  const alive = all.filter((i) => i.phase !== "exited");

  const drained = alive.filter((i) => isDrained(i, input.drainTimeout, now) || (i.routing === "none" && i.release !== live && i.inflight === 0));
  if (drained.length) steps.push({ kind: "terminate", ids: ids(drained), reason: "drained" });

  const mine = alive.filter((i) => i.release === live && i.routing !== "draining");
  const sick = mine.filter((i) => i.phase === "unhealthy");
  const sickRouted = sick.filter((i) => i.routing !== "none");
  const sickIdle = sick.filter((i) => i.routing === "none");
  if (sickRouted.length) steps.push({ kind: "drain", ids: ids(sickRouted), reason: "unhealthy: replace" });
  if (sickIdle.length) steps.push({ kind: "terminate", ids: ids(sickIdle), reason: "unhealthy: replace" });

  const good = mine.filter((i) => i.phase !== "unhealthy");
  const toRegister = good.filter((i) => i.phase === "healthy" && i.routing === "none");
  if (toRegister.length) steps.push({ kind: "register", ids: ids(toRegister), reason: "healthy: add to rotation" });

  if (live !== undefined && good.length < input.instances) {
    steps.push({ kind: "launch", release: live, count: input.instances - good.length, reason: `heal: ${good.length}/${input.instances} instances` });
  } else if (good.length > input.instances) {
    // Scale in: prefer instances that are not serving yet, then the newest.
    const extra = [...good]
      .sort((a, b) => Number(a.phase === "healthy") - Number(b.phase === "healthy") || b.launchedAt - a.launchedAt)
      .slice(0, good.length - input.instances);
    const routed = extra.filter((i) => i.routing !== "none");
    const idle = extra.filter((i) => i.routing === "none");
    if (routed.length) steps.push({ kind: "drain", ids: ids(routed), reason: `scale in to ${input.instances}` });
    if (idle.length) steps.push({ kind: "terminate", ids: ids(idle), reason: `scale in to ${input.instances}` });
  }

  const standby = alive.filter((i) => i.routing === "standby");
  const expired = input.keepStandbyUntil === undefined || now >= input.keepStandbyUntil;
  const standbyGone = standby.filter((i) => expired || i.phase === "unhealthy");
  if (standbyGone.length) steps.push({ kind: "drain", ids: ids(standbyGone), reason: expired ? "previous fleet's keep window ended" : "standby unhealthy" });

  // Anything routed as active that is not of the live release (left by an aborted rollout
  // without auto-rollback) is kept: the operator decides with `kiln rollback` or `kiln deploy`.
  return steps;
}

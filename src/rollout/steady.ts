// Steady state, between rollouts: auto-heal, scaling, and retiring a warm previous fleet.

import { ids, isDrained } from "./capacity.js";
import type { FleetInstance, Observed, Step } from "./types.js";

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
  const { exited, drained, sickRouted, sickIdle, toRegister, standby, good } = classifySteady(all, live, input.drainTimeout, now);
  if (exited.length) steps.push({ kind: "terminate", ids: ids(exited), reason: "instance exited" });
  if (drained.length) steps.push({ kind: "terminate", ids: ids(drained), reason: "drained" });
  if (sickRouted.length) steps.push({ kind: "drain", ids: ids(sickRouted), reason: "unhealthy: replace" });
  if (sickIdle.length) steps.push({ kind: "terminate", ids: ids(sickIdle), reason: "unhealthy: replace" });
  if (toRegister.length) steps.push({ kind: "register", ids: ids(toRegister), reason: "healthy: add to rotation" });

  if (live !== undefined && good < input.instances) {
    steps.push({ kind: "launch", release: live, count: input.instances - good, reason: `heal: ${good}/${input.instances} instances` });
  } else if (good > input.instances) {
    // Scale in: prefer instances that are not serving yet, then the newest.
    const extra = all
      .filter((i) => i.phase !== "exited" && i.release === live && i.routing !== "draining" && i.phase !== "unhealthy")
      .sort((a, b) => Number(a.phase === "healthy") - Number(b.phase === "healthy") || b.launchedAt - a.launchedAt)
      .slice(0, good - input.instances);
    const routed = extra.filter((i) => i.routing !== "none");
    const idle = extra.filter((i) => i.routing === "none");
    if (routed.length) steps.push({ kind: "drain", ids: ids(routed), reason: `scale in to ${input.instances}` });
    if (idle.length) steps.push({ kind: "terminate", ids: ids(idle), reason: `scale in to ${input.instances}` });
  }

  const expired = input.keepStandbyUntil === undefined || now >= input.keepStandbyUntil;
  const standbyGone = standby.filter((i) => expired || i.phase === "unhealthy");
  if (standbyGone.length) steps.push({ kind: "drain", ids: ids(standbyGone), reason: expired ? "previous fleet's keep window ended" : "standby unhealthy" });

  // Anything routed as active that is not of the live release (left by an aborted rollout
  // without auto-rollback) is kept: the operator decides with `kiln rollback` or `kiln deploy`.
  return steps;
}

/** What planSteady asks of the fleet, from one pass over it (see there). */
interface SteadyFleet {
  exited: FleetInstance[];
  drained: FleetInstance[];
  sickRouted: FleetInstance[];
  sickIdle: FleetInstance[];
  toRegister: FleetInstance[];
  standby: FleetInstance[];
  /** instances of the live release that are fine: only counted */
  good: number;
}

/**
 * One pass over the fleet (10,000 instances in simulation, every tick between rollouts): each
 * list in fleet order, as a filter would give it. A function of its own: the loop is the hot
 * part, and the engine compiles it apart from the steps planned after it, which differ from
 * one tick to the next (a step first taken would otherwise throw the loop's code away).
 */
function classifySteady(all: readonly FleetInstance[], live: string | undefined, drainTimeout: number, now: number): SteadyFleet {
  const c: SteadyFleet = { exited: [], drained: [], sickRouted: [], sickIdle: [], toRegister: [], standby: [], good: 0 };
  // Indexed, not for…of: until the engine has compiled the loop, each step of an iterator is an object.
  for (let k = 0; k < all.length; k++) {
    const i = all[k]!;
    if (i.phase === "exited") {
      c.exited.push(i);
      continue;
    }
    if (isDrained(i, drainTimeout, now) || (i.routing === "none" && i.release !== live && i.inflight === 0)) c.drained.push(i);
    if (i.release === live && i.routing !== "draining") {
      if (i.phase === "unhealthy") (i.routing !== "none" ? c.sickRouted : c.sickIdle).push(i);
      else {
        c.good++;
        if (i.phase === "healthy" && i.routing === "none") c.toRegister.push(i);
      }
    }
    if (i.routing === "standby") c.standby.push(i);
  }
  return c;
}

// What `kiln status --watch` prints when its output is not a terminal: one line per change
// between two status snapshots, so a CI log or `| grep` reads as a history of the fleet.

import type { StatusView } from "../controller/types.js";

/** The part of a status a watcher reports changes of (a snapshot without the noise of in-flight counts). */
export interface StatusDigest {
  release?: string;
  rollout?: string;
  instances: Record<string, string>;
  inRotation: number;
  desired: number;
}

export function digestStatus(s: Pick<StatusView, "release" | "rollout" | "instances" | "desiredInstances">): StatusDigest {
  const r = s.rollout;
  const weight = r?.progress?.weight;
  return {
    release: s.release ? `${s.release.id} ${s.release.ref}` : undefined,
    rollout: r ? `${r.kind} to ${r.target} (${r.strategy}${weight !== undefined && r.strategy === "canary" ? `, canary weight ${weight}%` : ""}) ${r.phase ?? r.state}` : undefined,
    instances: Object.fromEntries(s.instances.map((i) => [i.id, `${i.release} ${i.health}${i.inRotation ? " in rotation" : ""}`])),
    inRotation: s.instances.filter((i) => i.inRotation).length,
    desired: s.desiredInstances,
  };
}

/**
 * The lines that tell `prev` → `next`; `prev` undefined: the first snapshot, told whole.
 *
 *   undefined → {release r1, no rollout, a: "r1 healthy in rotation"}
 *     → ["release r1 hello:1.0.0 live", "instance a: r1 healthy in rotation", "fleet 1/1 in rotation"]
 *   same digest twice → []
 *   rollout appears "rollout to r2 (rolling) progressing", instance b launches "r2 starting"
 *     → ["rollout rollout to r2 (rolling) progressing", "instance b: r2 starting"]   (the fleet count did not move)
 *   rollout gone, release r2, a gone, b in rotation
 *     → ["release r2 hello:2.0.0 live", "rollout ended", "instance a: gone", "instance b: r2 healthy in rotation"]
 */
export function statusChanges(prev: StatusDigest | undefined, next: StatusDigest): string[] {
  const lines: string[] = [];
  if (prev === undefined || prev.release !== next.release) lines.push(next.release ? `release ${next.release} live` : "release none deployed");
  if (prev !== undefined ? prev.rollout !== next.rollout : next.rollout !== undefined) lines.push(next.rollout ? `rollout ${next.rollout}` : "rollout ended");
  const ids = [...new Set([...Object.keys(prev?.instances ?? {}), ...Object.keys(next.instances)])].sort();
  for (const id of ids) {
    const was = prev?.instances[id];
    const now = next.instances[id];
    if (was !== now) lines.push(`instance ${id}: ${now ?? "gone"}`);
  }
  if (prev === undefined || prev.inRotation !== next.inRotation || prev.desired !== next.desired) lines.push(`fleet ${next.inRotation}/${next.desired} in rotation`);
  return lines;
}

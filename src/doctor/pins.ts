// Which images a home still needs, computed from state: the keep window of every service
// (its newest N releases, the live release, the live release's rollback target, the target
// and rollback target of a running rollout) and the digests instances run. `kiln gc` pins
// these; `kiln doctor` checks that they are whole in the store.

import type { GcPin } from "../image/gc.js";
import type { ObservedInstance } from "../providers/provider.js";
import type { Release, StateDb } from "../state/db.js";

export const DEFAULT_KEEP = 5;

export interface WindowRelease {
  service: string;
  release: Release;
  /** every reason it is in the window, joined: "among the newest 5; rollback target of the live release" */
  why: string;
  live: boolean;
}

export function keepWindow(db: StateDb, service: string, keep: number): WindowRelease[] {
  const reasons = new Map<string, { release: Release; why: string[] }>();
  const add = (r: Release | undefined, why: string) => {
    if (!r || r.service !== service) return;
    const cur = reasons.get(r.id) ?? { release: r, why: [] };
    cur.why.push(why);
    reasons.set(r.id, cur);
  };
  for (const r of db.listReleases(service).slice(0, keep)) add(r, `among the newest ${keep}`);
  const liveId = db.getFact(service, "live");
  const live = liveId ? db.getRelease(liveId) : undefined;
  if (live?.service === service) {
    add(live, "live");
    if (live.previous) add(db.getRelease(live.previous), "rollback target of the live release");
  }
  const rollout = db.activeRollout(service);
  if (rollout) {
    add(db.getRelease(rollout.target), `target of the running ${rollout.kind} ${rollout.id}`);
    if (rollout.previous) add(db.getRelease(rollout.previous), `rollback target of the running ${rollout.kind} ${rollout.id}`);
  }
  return [...reasons.values()]
    .sort((a, b) => b.release.seq - a.release.seq)
    .map(({ release, why }) => ({ service, release, why: why.join("; "), live: release.id === live?.id }));
}

export interface PinSet {
  /** everything gc must keep */
  pins: GcPin[];
  /** the releases' images alone (gc's last check refuses to remove any of them) */
  window: WindowRelease[];
}

/** `observed`: what the provider runs, per service (instances state may not know of). */
export function computePins(db: StateDb | undefined, services: string[], keep: number, observed: ObservedInstance[] = []): PinSet {
  const pins: GcPin[] = [];
  const window: WindowRelease[] = [];
  if (db) {
    for (const service of services) {
      for (const w of keepWindow(db, service, keep)) {
        window.push(w);
        pins.push({ digest: w.release.digest, reasons: [`release ${w.release.id} (${w.release.ref}) of ${service}: ${w.why}`] });
      }
      for (const i of db.liveInstances(service)) pins.push({ digest: i.digest, reasons: [`instance ${i.id} runs it`] });
    }
  }
  for (const o of observed) {
    if (o.state === "running") pins.push({ digest: o.digest, reasons: [`instance ${o.id} runs it (seen by the provider)`] });
  }
  return { pins: pins.filter((p) => /^sha256:[0-9a-f]{64}$/.test(p.digest)), window };
}

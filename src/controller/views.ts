// What the API and the CLI show: releases, rollouts and the service's status, as plain data.

import { phaseOf } from "../rollout/index.js";
import type { Step } from "../rollout/types.js";
import type { Release, RolloutRecord } from "../state/db.js";
import type { ReleaseView, RolloutView } from "./types.js";

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

export function releaseView(r: Release): ReleaseView {
  return {
    id: r.id, version: r.version, ref: r.ref, digest: r.digest, configHash: r.configHash, strategy: r.strategy, status: r.status,
    reason: r.reason, createdAt: iso(r.createdAt)!, liveAt: iso(r.liveAt), finishedAt: iso(r.finishedAt), previous: r.previous,
  };
}

/** `lastSteps`: what the loop decided on its last tick (shown while the rollout runs). */
export function rolloutView(r: RolloutRecord, lastSteps: readonly Step[]): RolloutView {
  const active = r.state === "running";
  return {
    id: r.id, kind: r.kind, strategy: r.strategy, target: r.target, previous: r.previous, state: r.state,
    phase: active ? (r.paused ? "paused" : phaseOf([...lastSteps])) : undefined, reason: r.reason, startedAt: iso(r.startedAt)!, finishedAt: iso(r.finishedAt),
    ...(Object.keys(r.progress ?? {}).length ? { progress: r.progress } : {}),
    steps: active ? lastSteps.map((s) => `${s.kind}: ${s.reason}`) : undefined,
  };
}

// `kiln rollout watch`: which rollout a watcher follows, decided from the history. A pipeline
// asks "did my deploy go live?", so a watcher that arrives while the automatic rollback of a
// failed deploy runs follows the failed deploy (and exits 1), not the rollback (which ends live).

import type { RolloutView } from "../controller/types.js";

/**
 * The rollout to follow: `wanted` (an id) if given, else the running one, else the newest; an
 * automatic rollback is traced back to the deploy it undoes (the rollout just before it, aborted
 * or failed, whose target the rollback leaves). undefined when there is no rollout at all.
 *
 *   rollouts [1 deploy r1 done, 2 deploy r2 running], running 2            → 2
 *   [1 deploy r1 done, 2 deploy r2 aborted, 3 rollback r1 previous r2 running], running 3  → 2
 *   [1 deploy r1 done, 2 deploy r2 done, 3 rollback r1 previous r2 done]  (a manual rollback) → 3
 *   [1 deploy r1 done, 2 deploy r2 done], nothing running                 → 2 (the newest)
 *   [], nothing running                                                    → undefined
 *   wanted 1                                                               → 1
 */
export function chooseRollout(rollouts: RolloutView[], running: RolloutView | undefined, wanted?: number): RolloutView | undefined {
  if (wanted !== undefined) return rollouts.find((r) => r.id === wanted);
  const chosen = running ?? [...rollouts].sort((a, b) => b.id - a.id)[0];
  if (chosen?.kind !== "rollback") return chosen;
  const before = rollouts.filter((r) => r.id < chosen.id).sort((a, b) => b.id - a.id)[0];
  return before && (before.state === "aborted" || before.state === "failed") && before.target === chosen.previous ? before : chosen;
}

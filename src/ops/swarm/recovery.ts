// What became of a Swarm rollout that an interrupted `kiln` recorded as running. Pure: the
// performer reads the service from the engine and the rollout (with its recorded intent)
// from state; this decides what the rollout is now.

import { judge, type SwarmObservation } from "../../providers/swarm/observe.js";

/** Recorded in the rollout's progress before kiln asks Swarm for anything, then marked applied. */
export interface SwarmIntent {
  /** intent: about to ask Swarm; applied: Swarm accepted the spec (or the rollback) */
  phase: "intent" | "applied";
  /** epoch ms the update was requested: UpdateStatus older than this describes an earlier update */
  since: number;
  /** the deploy creates the service (it did not exist) */
  created: boolean;
  /** apply: a new spec (a deploy, or a rollback that re-applies an earlier release); swarm-rollback: Swarm's rollback to PreviousSpec */
  method: "apply" | "swarm-rollback";
  deadlineMs: number;
  autoRollback: boolean;
}

export type RecoveryDecision =
  | { kind: "settled"; outcome: "live" | "rolled-back" | "failed"; reason?: string }
  | { kind: "running"; state: string };

/**
 * Reconcile a recorded rollout of `target` with the service Swarm reports now.
 *
 * - intent recorded, Swarm never got it (the service is still on the previous release and has
 *   no update since) → failed, "interrupted before Swarm was asked": nothing changed.
 * - applied, UpdateStatus updating → running (Swarm goes on without kiln: resume or report).
 * - applied, update completed and every task runs `target` → live.
 * - applied, rollback_completed → rolled-back, with the engine's message.
 * - applied, paused (FailureAction pause) → failed: Swarm waits for a person.
 * - a Swarm rollback to `target` that completed → live (that was the goal).
 * - the service is gone (kiln removed a first release that failed, or someone removed it) → failed.
 */
export function judgeRecovery(target: string, intent: SwarmIntent, view: { observation: SwarmObservation } | undefined): RecoveryDecision {
  if (!view) {
    return intent.phase === "intent" && intent.created
      ? { kind: "settled", outcome: "failed", reason: "interrupted before Swarm was asked to create the service: nothing changed" }
      : { kind: "settled", outcome: "failed", reason: "the Swarm service is gone" };
  }
  const obs = view.observation;
  const fresh = obs.update !== undefined && (obs.update.startedAt === undefined || obs.update.startedAt >= intent.since - 2000);
  if (intent.phase === "intent" && obs.specRelease !== target && !fresh) {
    return { kind: "settled", outcome: "failed", reason: `interrupted before Swarm was asked: the service is unchanged on ${obs.specRelease ?? "its previous release"}` };
  }
  let v = judge(obs, target, intent.since, { created: intent.created });
  if (intent.method === "swarm-rollback" && (v.kind === "rolled-back" || v.kind === "rolling-back")) {
    v = v.kind === "rolled-back" && obs.specRelease === target ? { kind: "live" } : { kind: "progressing", running: 0, starting: 0 };
  }
  switch (v.kind) {
    case "live":
      return { kind: "settled", outcome: "live" };
    case "rolled-back":
      return { kind: "settled", outcome: "rolled-back", reason: v.reason };
    case "paused":
    case "failed":
      return { kind: "settled", outcome: "failed", reason: v.reason };
    case "rolling-back":
      return { kind: "running", state: "rollback_started" };
    case "progressing":
      return { kind: "running", state: obs.update?.state ?? "starting" };
  }
}

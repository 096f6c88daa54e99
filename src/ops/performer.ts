// Who performs a rollout. kiln's own controller is one performer (the default: it plans
// every step, reads it back, survives SIGKILL); an engine that performs rollouts itself from
// a compiled policy is another (today Docker Swarm's update_config, src/ops/swarm/). Each CLI
// verb calls the performer kiln.yaml selects and renders what it returns.
//
// deploy, rollback, history, status and recover are what every performer does. The rest are
// optional capabilities: a verb checks the member before it acts (requireCapability), and a
// performer that lacks one says what to do instead — never a method that returns "unsupported".

import type { ChangeNote, DeployRequest, ReleaseView, RolloutView, StatusView } from "../controller/types.js";
import { KilnError } from "../errors.js";
import type { RecordRequest } from "../server/client.js";
import type { ChangeRecord, EventRecord } from "../state/db.js";

export type PerformerName = "controller" | "swarm";

export interface FollowOptions {
  /** one line per thing that happened while following the rollout */
  onProgress?: (line: string) => void;
  /** who asks and why, for the audit trail (default: this process's actor and command line) */
  note?: ChangeNote;
}

export interface RolloutOutcome {
  outcome: "live" | "rolled-back" | "failed";
  release: ReleaseView;
  reason?: string;
  rollouts: RolloutView[];
  /** facts only this performer has (Swarm: durations, rollback method, ingress probe) */
  details?: Record<string, unknown>;
}

/** A rollout an interrupted invocation (Ctrl-C, a crash, a lost terminal) left recorded as running. */
export interface Recovery {
  rollout: RolloutView;
  /** what it was reconciled to, or `running` when the engine is still performing it */
  outcome: "live" | "rolled-back" | "failed" | "running";
  reason?: string;
}

export type PerformerStatus = { performer: "controller"; view: StatusView } | { performer: "swarm"; view: Record<string, unknown> & { schemaVersion: 1; provider: "swarm" } };

export interface RolloutPerformer {
  readonly name: PerformerName;
  /** what to do instead of each optional verb this performer lacks, for the error a verb raises */
  readonly instead: Readonly<Partial<Record<OptionalVerb, string>>>;

  /** Record the intent, act, and follow the rollout (and any automatic rollback) until it settles. */
  deploy(req: DeployRequest, opts?: FollowOptions): Promise<RolloutOutcome>;
  /** Back to the release before the live one. */
  rollback(opts?: FollowOptions): Promise<RolloutOutcome>;
  /** releases and rollouts, and the audit trail (newest first) */
  history(): Promise<{ releases: ReleaseView[]; rollouts: RolloutView[]; changes?: ChangeRecord[] }>;
  /** The newest `n` events (what the controller, Swarm and hooks recorded), oldest first. */
  events(n: number): Promise<EventRecord[]>;
  /** Record what the CLI did itself (a hook's outcome and output) in this fleet's state: audit rows, event lines. */
  record(r: RecordRequest): Promise<void>;
  status(): Promise<PerformerStatus>;
  /**
   * Reconcile a rollout left running by an interrupted invocation with what the engine
   * reports (live / rolled back / failed), or say it is still running. `wait` follows it until
   * it settles. undefined when nothing was left running. kiln's controller recovers by itself
   * on restart, so its performer has nothing to reconcile from here.
   */
  recover(opts?: FollowOptions & { wait?: boolean }): Promise<Recovery | undefined>;

  /** The last `lines` lines of each instance's log (or of those whose id starts with `instance`), oldest first. */
  logs?(instance: string | undefined, lines: number): Promise<{ id: string; text: string }[]>;
  scale?(instances: number, note?: ChangeNote): Promise<{ instances: number; running?: number }>;
  promote?(note?: ChangeNote): Promise<RolloutView>;
  pause?(note?: ChangeNote): Promise<RolloutView>;
  resume?(opts?: FollowOptions): Promise<RolloutView>;
  abort?(note?: ChangeNote): Promise<RolloutView>;
}

export type OptionalVerb = "scale" | "promote" | "pause" | "resume" | "abort" | "logs";

/**
 * The performer's member for `verb`, or a usage error (exit 2) that says plainly this
 * performer does not do it and what to do instead. Checked before anything is changed.
 */
export function requireCapability<V extends OptionalVerb>(p: RolloutPerformer, verb: V): NonNullable<RolloutPerformer[V]> {
  const member = p[verb];
  if (typeof member === "function") return member.bind(p) as NonNullable<RolloutPerformer[V]>;
  throw unsupported(p, verb);
}

export function unsupported(p: RolloutPerformer, verb: OptionalVerb): KilnError {
  return new KilnError("KILN_E_USAGE", `\`kiln ${verb}\` does not apply to ${p.name === "swarm" ? "native Swarm rollouts (`swarm: { rollouts: native }`): Swarm performs the rollout itself" : "this fleet"}`, {
    hint: p.instead[verb] ?? "see `kiln --help`",
  });
}

/** Event lines as the CLI prints them while following a rollout. */
export function eventLine(e: Pick<EventRecord, "at" | "message">): string {
  return `${new Date(e.at).toISOString().slice(11, 19)} ${e.message}`;
}

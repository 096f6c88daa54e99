import type { InstancePhase, Phase, RolloutProgress, Routing, StrategyName } from "../rollout/types.js";
import type { InstanceRecordState, PromotedFrom, ReleaseStatus, RolloutKind, RolloutState } from "../state/db.js";
import type { ReleaseSettings } from "../state/release-settings.js";

// The controller's API speaks of the spec a release records; it is defined where state reads it.
export type { ReleaseSettings };

/**
 * Who asked for a change, with which command and why: sent with every command to the
 * controller and recorded in the audit trail (`kiln history`).
 */
export interface ChangeNote {
  /** user@host, the CI's identity or KILN_ACTOR (src/actor.ts) */
  actor: string;
  /** the command line */
  command: string;
  /** `--reason`, when given */
  reason?: string;
  /** the environment (staging, production…); absent where none is named */
  env?: string;
}

export interface DeployRequest {
  /** who deploys and why (recorded in the audit trail) */
  note?: ChangeNote;
  ref: string;
  version: string;
  digest: string;
  configHash: string;
  spec: ReleaseSettings;
  strategy?: StrategyName;
  /** `kiln promote-release`: the source environment's live release this one is */
  promotedFrom?: PromotedFrom;
  /**
   * The values of spec.secrets, by name: held in the controller's memory only, never recorded
   * (absent: the controller reads them from their sources at launch).
   */
  secretValues?: Record<string, string>;
}

export interface InstanceView {
  id: string;
  pid?: number;
  address?: string;
  release: string;
  version?: string;
  digest: string;
  health: InstancePhase;
  routing: Routing;
  inRotation: boolean;
  inflight: number;
  launchedAt: number;
  state: InstanceRecordState;
  /** how the provider networks it, when it says (local: "private, egress: none", "host (pasta is not installed…)") */
  network?: string;
}

export interface ReleaseView {
  id: string;
  version: string;
  ref: string;
  digest: string;
  configHash: string;
  strategy: StrategyName;
  status: ReleaseStatus;
  reason?: string;
  createdAt: string;
  liveAt?: string;
  finishedAt?: string;
  previous?: string;
  promotedFrom?: PromotedFrom;
}

export interface RolloutView {
  id: number;
  kind: RolloutKind;
  strategy: StrategyName;
  target: string;
  previous?: string;
  state: RolloutState;
  phase?: Phase;
  reason?: string;
  startedAt: string;
  finishedAt?: string;
  steps?: string[];
  /** strategy progress: canary step and weight, checkpoints, bake/guard start… */
  progress?: RolloutProgress;
}

export interface StatusView {
  schemaVersion: 1;
  service: string;
  /** `standbyFor`: on a shared state, the controller that acts while this one waits (absent when this one acts) */
  controller: { pid: number; standbyFor?: string };
  proxy: { pid?: number; address: string; reachable: boolean; tableVersion?: number };
  desiredInstances: number;
  release?: ReleaseView;
  rollout?: RolloutView;
  instances: InstanceView[];
  /**
   * The live release's `resources` and how the provider enforces them ("cgroup-v1", "rlimit"…);
   * absent when the provider enforces none (the fake).
   */
  limits?: { enforcement: string; resources: string };
  /** The local provider's sandbox ("bwrap" or "chroot": unisolated); absent for engine providers. */
  sandbox?: "bwrap" | "chroot";
}

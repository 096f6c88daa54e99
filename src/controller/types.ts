import type { BlueGreenParams, CanaryParams, RollingParams, StrategyName } from "../rollout/types.js";
import type { HealthParams } from "./health-tracker.js";

/** The runtime part of kiln.yaml a release is deployed with (durations in ms). Restored by rollback. */
export interface ReleaseSpec {
  instances: number;
  health: HealthParams;
  drainTimeout: number;
  /** canary and maxQuarantined are absent from releases recorded before they existed */
  strategy: { type: StrategyName; rolling: RollingParams; blueGreen: BlueGreenParams; canary?: CanaryParams; maxQuarantined?: number };
  volumes: { name: string; path: string }[];
  env: Record<string, string>;
}

export interface DeployRequest {
  ref: string;
  version: string;
  digest: string;
  configHash: string;
  spec: ReleaseSpec;
  strategy?: StrategyName;
}

export interface InstanceView {
  id: string;
  pid?: number;
  address?: string;
  release: string;
  version?: string;
  digest: string;
  health: "starting" | "healthy" | "unhealthy" | "exited";
  routing: "none" | "active" | "standby" | "draining";
  inRotation: boolean;
  inflight: number;
  launchedAt: number;
  state: string;
}

export interface ReleaseView {
  id: string;
  version: string;
  ref: string;
  digest: string;
  configHash: string;
  strategy: string;
  status: string;
  reason?: string;
  createdAt: string;
  liveAt?: string;
  finishedAt?: string;
  previous?: string;
}

export interface RolloutView {
  id: number;
  kind: string;
  strategy: string;
  target: string;
  previous?: string;
  state: string;
  phase?: string;
  reason?: string;
  startedAt: string;
  finishedAt?: string;
  steps?: string[];
  /** strategy progress: canary step and weight, checkpoints, bake/guard start… */
  progress?: Record<string, unknown>;
}

export interface StatusView {
  schemaVersion: 1;
  service: string;
  controller: { pid: number };
  proxy: { pid?: number; address: string; reachable: boolean; tableVersion?: number };
  desiredInstances: number;
  release?: ReleaseView;
  rollout?: RolloutView;
  instances: InstanceView[];
}

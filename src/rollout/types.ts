// Data the pure strategies read and return. No I/O, no clock: `now` is an argument.

/** Where an instance stands, as the controller observed it this tick. */
export type InstancePhase =
  | "starting" // launched, not yet healthy (or health unknown after a controller restart)
  | "healthy" // passed healthyThreshold consecutive probes
  | "unhealthy" // failed unhealthyThreshold consecutive probes after its grace period
  | "exited"; // the process is gone

/** How the router should treat an instance: the desired routing, persisted in state. */
export type Routing =
  | "none" // not in the routing table (launching, or removed)
  | "active" // in the table, receives new requests
  | "standby" // in the table with weight 0: kept warm for instant rollback (blue-green)
  | "draining"; // no new requests; in-flight ones finish

export interface FleetInstance {
  id: string;
  release: string;
  phase: InstancePhase;
  routing: Routing;
  /** the router confirmed it is eligible for new requests (read back, not assumed) */
  inRotation: boolean;
  /** requests the router still has in flight to it */
  inflight: number;
  launchedAt: number;
  /** epoch ms of the first healthy observation; undefined until then */
  healthySince?: number;
  /** epoch ms when draining began */
  drainingSince?: number;
  /** it passed its health checks at least once (a late failure, not a bad release, if it fails now) */
  everHealthy?: boolean;
}

export interface RollingParams {
  minHealthyPercent: number;
  maxHealthyPercent: number;
  instanceWarmup: number; // ms
  deadline: number; // ms, whole rollout
  autoRollback: boolean;
  /** percentages of the fleet replaced at which the rollout pauses (AWS CheckpointPercentages) */
  checkpoints?: number[];
  /** ms a checkpoint pause lasts; undefined = until `kiln resume` / `kiln promote` */
  checkpointDelay?: number;
  /** keep instances whose image digest and config already match the target (AWS SkipMatching) */
  skipMatching?: boolean;
  /** ms the completed rollout keeps watching the new fleet before it is declared live */
  bakeTime?: number;
}

export interface BlueGreenParams {
  keepPreviousFor: number; // ms
  promotion: "auto" | "manual";
  deadline: number; // ms
  autoRollback: boolean;
  /** ms after green is ready at which a manual promotion happens by itself (Argo autoPromotionSeconds) */
  autoPromoteAfter?: number;
  /** ms after green is ready by which it must be promoted, or the rollout aborts */
  promotionDeadline?: number;
  /** HTTP checks every green instance must pass before the switch */
  prePromotionChecks?: { path: string; status?: number }[];
  /** ms after the switch during which a failing green fleet flips traffic back to the warm blue one */
  guardWindow?: number;
  /** address of the proxy's preview listener (green before promotion) */
  previewListen?: string;
}

/** One canary step: send this percentage of requests to the canary, or hold (ms, or until `kiln promote`). */
export type CanaryStep = { setWeight: number } | { pause: number | "manual" };

export interface CanaryAnalysis {
  /** highest canary error rate (5xx + connect failures, 0–1) over the window */
  maxErrorRate: number;
  /** highest canary p99 latency in ms; undefined = no absolute limit */
  maxP99Ms?: number;
  /** highest ratio canary p99 / stable p99 (e.g. 2 = twice as slow) */
  maxP99Ratio?: number;
  /** fewest canary requests in the window before a verdict is drawn */
  minRequests: number;
  /** ms of traffic each comparison looks back over */
  window: number;
}

export interface CanaryParams {
  steps: CanaryStep[];
  analysis: CanaryAnalysis;
  instanceWarmup: number; // ms
  deadline: number; // ms
  autoRollback: boolean;
  /** ms after full promotion during which the previous fleet stays warm and failures flip traffic back */
  guardWindow?: number;
}

export type StrategyName = "rolling" | "blue-green" | "canary";

/** Traffic seen by one release over the analysis window, from the router's per-release counters. */
export interface WindowStats {
  requests: number;
  errors: number;
  errorRate: number;
  p99Ms?: number;
}

export interface RolloutParams {
  strategy: StrategyName;
  /** desired fleet size */
  instances: number;
  rolling: RollingParams;
  blueGreen: BlueGreenParams;
  canary?: CanaryParams;
  /** most instances that may be quarantined (taken out after a late failure and replaced) before the release is judged bad */
  maxQuarantined?: number;
  /** ms after which a draining instance may be terminated even with requests in flight */
  drainTimeout: number;
  /** ms a launched instance may take to turn healthy before it counts as failed */
  instanceDeadline: number;
}

/** The rollout as persisted: which release we move to, from which, since when. */
export interface RolloutStatus {
  target: string;
  /** release the fleet was on before; undefined for a first deploy */
  previous?: string;
  startedAt: number;
  /** blue-green: when traffic was switched to the target */
  switchedAt?: number;
  /** blue-green with manual promotion: set by `kiln promote` */
  promoteRequested?: boolean;
  /** a rollback rollout skips warmup gating beyond health (fast path) */
  fast?: boolean;
  /** this rollout returns to an earlier release (kind "rollback"): its done reason says so, not "new release"/"green" */
  rollback?: boolean;
  /** strategy-specific progress the rollout persisted through `progress` steps */
  progress?: RolloutProgress;
  /** releases whose instances already run the target's digest and config (skipMatching) */
  equivalent?: string[];
}

/** Everything a strategy remembers between ticks lives here, in state, never in memory. */
export interface RolloutProgress {
  /** an engine performer's recorded intent (the Swarm path: SwarmIntent in src/ops/swarm/recovery.ts); strategies never read it */
  swarm?: object;
  /** canary: index of the current step */
  step?: number;
  /** canary: when the current step began (epoch ms) */
  stepStartedAt?: number;
  /** canary: the weight (percent) in force */
  weight?: number;
  /** rolling: checkpoints already passed (percentages) */
  checkpointsPassed?: number[];
  /** rolling: the checkpoint being held and since when */
  holding?: { percent: number; since: number };
  /** rolling/canary: when every new instance was first confirmed (bake time / guard window start) */
  completedAt?: number;
  /** blue-green/canary: when green became ready for promotion */
  readyAt?: number;
  /** instances quarantined by this rollout */
  quarantined?: number;
  /** blue-green: pre-promotion checks passed */
  checksPassed?: boolean;
}

export interface Observed {
  instances: FleetInstance[];
  /** canary analysis input: the canary's and the stable release's traffic over the window */
  analysis?: { canary: WindowStats; stable: WindowStats };
  /** blue-green pre-promotion checks: undefined until run, then the verdict */
  checks?: { ok: true } | { ok: false; reason: string };
}

/**
 * One action. A strategy returns every action that is safe to take now;
 * the controller records each one's intent in state, then applies it.
 */
export type Step =
  | { kind: "launch"; release: string; count: number; reason: string }
  | { kind: "register"; ids: string[]; reason: string } // routing → active
  | { kind: "standby"; ids: string[]; reason: string } // routing → standby (warm, weight 0)
  | { kind: "drain"; ids: string[]; reason: string } // routing → draining
  | { kind: "terminate"; ids: string[]; reason: string } // stop and forget; only ids with no traffic
  | { kind: "switch"; to: string; standby: string[]; reason: string } // blue-green: target active, others standby, atomically
  | { kind: "mark-switched"; reason: string }
  | { kind: "quarantine"; ids: string[]; reason: string } // late failure: out of rotation, stopped, logs kept, replaced
  | { kind: "progress"; set: RolloutProgress; reason: string } // persist strategy progress (merged)
  | { kind: "check"; ids: string[]; reason: string } // run pre-promotion checks against these instances
  | { kind: "wait"; reason: string; paused?: boolean }
  | { kind: "done"; reason: string }
  | { kind: "abort"; reason: string };

export type Phase = "progressing" | "paused" | "healthy" | "aborted";

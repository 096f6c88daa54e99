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
}

export interface RollingParams {
  minHealthyPercent: number;
  maxHealthyPercent: number;
  instanceWarmup: number; // ms
  deadline: number; // ms, whole rollout
  autoRollback: boolean;
}

export interface BlueGreenParams {
  keepPreviousFor: number; // ms
  promotion: "auto" | "manual";
  deadline: number; // ms
  autoRollback: boolean;
}

export type StrategyName = "rolling" | "blue-green";

export interface RolloutSpec {
  strategy: StrategyName;
  /** desired fleet size */
  instances: number;
  rolling: RollingParams;
  blueGreen: BlueGreenParams;
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
}

export interface Observed {
  instances: FleetInstance[];
}

/**
 * One action. A strategy returns every action that is safe to take now;
 * the controller journals each, then applies it.
 */
export type Step =
  | { kind: "launch"; release: string; count: number; reason: string }
  | { kind: "register"; ids: string[]; reason: string } // routing → active
  | { kind: "standby"; ids: string[]; reason: string } // routing → standby (warm, weight 0)
  | { kind: "drain"; ids: string[]; reason: string } // routing → draining
  | { kind: "terminate"; ids: string[]; reason: string } // stop and forget; only ids with no traffic
  | { kind: "switch"; to: string; standby: string[]; reason: string } // blue-green: target active, others standby, atomically
  | { kind: "mark-switched"; reason: string }
  | { kind: "wait"; reason: string; paused?: boolean }
  | { kind: "done"; reason: string }
  | { kind: "abort"; reason: string };

export type Phase = "progressing" | "paused" | "healthy" | "degraded" | "aborted";

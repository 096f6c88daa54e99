// The one seam between the controller and the data plane.

export type TargetState = "active" | "draining";

export interface Target {
  id: string;
  release: string;
  /** "127.0.0.1:PORT" */
  address: string;
  /** relative share of new requests among active healthy targets; 0 = none */
  weight: number;
  /** draining: no new requests; in-flight ones finish until drainTimeoutMs */
  state: TargetState;
}

export interface HealthCheckConfig {
  path: string;
  intervalMs: number;
  timeoutMs: number;
  healthyThreshold: number;
  unhealthyThreshold: number;
}

export interface RoutingTable {
  /** monotonically increasing; the proxy ignores an older table than the one it holds */
  version: number;
  targets: Target[];
  health: HealthCheckConfig;
  drainTimeoutMs: number;
}

export interface Counters {
  requests: number;
  /** responses with status >= 500 returned to clients */
  errors5xx: number;
  /** attempts that could not connect / got no response from an instance */
  connectFailures: number;
}

export interface TargetStatus extends Counters {
  id: string;
  release: string;
  address: string;
  state: TargetState;
  weight: number;
  /** the proxy's own view from active + passive checks */
  healthy: boolean;
  /** active, healthy and weight > 0: eligible for new requests */
  inRotation: boolean;
  inflight: number;
  /** epoch ms when draining started */
  drainingSince?: number;
}

export interface RouterStats {
  tableVersion: number;
  targets: TargetStatus[];
  /** counters per release id, including releases whose targets were removed */
  releases: Record<string, Counters>;
  /** proxy process id */
  pid: number;
  /** "127.0.0.1:PORT" clients use */
  listen: string;
}

export interface Router {
  setTable(table: RoutingTable): Promise<void>;
  stats(): Promise<RouterStats>;
}

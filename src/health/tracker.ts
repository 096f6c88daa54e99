// The controller's view of each instance's health, from its probes. In memory: after a
// restart it is rebuilt from fresh probes, seeded from what state recorded. The threshold
// rule is nextHealth's (probe.ts), the one the proxy's active checks use too.

import type { InstancePhase } from "../rollout/types.js";
import { nextHealth } from "./probe.js";

export interface HealthParams {
  path: string;
  interval: number;
  timeout: number;
  healthyThreshold: number;
  unhealthyThreshold: number;
  grace: number;
}

export interface ProbeOutcome {
  ok: boolean;
  /** the instance answered with an HTTP status (it is up, and says how it is) */
  answered: boolean;
  reason?: string;
  /** the HTTP status, when the instance answered */
  status?: number;
}

export interface TrackedHealth {
  healthy: boolean;
  everHealthy: boolean;
  consecutiveOk: number;
  consecutiveFail: number;
  /** the last failure was an HTTP answer, not a refused connection */
  lastFailAnswered: boolean;
  lastProbeAt: number;
  lastReason?: string;
}

export function initialHealth(assumeHealthy: boolean): TrackedHealth {
  return { healthy: assumeHealthy, everHealthy: assumeHealthy, consecutiveOk: 0, consecutiveFail: 0, lastFailAnswered: false, lastProbeAt: 0, lastReason: undefined };
}

/** Fold one probe outcome into the tracked health (pure); thresholds as nextHealth counts them. */
export function recordProbe(h: TrackedHealth, o: ProbeOutcome, p: HealthParams, now: number): TrackedHealth {
  const n = nextHealth(h, o.ok, p);
  return {
    healthy: n.healthy,
    everHealthy: h.everHealthy || n.healthy,
    consecutiveOk: n.consecutiveOk,
    consecutiveFail: n.consecutiveFail,
    lastFailAnswered: o.ok ? h.lastFailAnswered : o.answered,
    lastProbeAt: now,
    lastReason: o.ok ? undefined : o.reason,
  };
}

/**
 * Phase for the strategies. A process that is still coming up (connections refused) is
 * "starting" until its deadline; one that answers its health check with a failure, or that
 * was healthy and stopped passing, is "unhealthy" once past its grace period.
 *
 *   not running                                              → exited
 *   healthy                                                  → healthy
 *   3 answered failures (threshold 3), past grace            → unhealthy
 *   3 answered failures, within grace                        → starting
 *   3 refused connections, never healthy, past grace         → starting (the deadline judges it)
 *   3 refused connections after it was healthy, past grace   → unhealthy
 */
export function phaseFrom(h: TrackedHealth, running: boolean, launchedAt: number, p: HealthParams, now: number): InstancePhase {
  if (!running) return "exited";
  if (h.healthy) return "healthy";
  const pastGrace = now - launchedAt >= p.grace;
  if (pastGrace && h.consecutiveFail >= Math.max(1, p.unhealthyThreshold) && (h.everHealthy || h.lastFailAnswered)) return "unhealthy";
  return "starting";
}

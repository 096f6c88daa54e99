// The controller's own view of each instance's health, from its probes. In memory:
// after a restart it is rebuilt from fresh probes, seeded from what state recorded.

import type { InstancePhase } from "../rollout/types.js";

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

/** Fold one probe outcome into the tracked health (pure). */
export function recordProbe(h: TrackedHealth, o: ProbeOutcome, p: HealthParams, now: number): TrackedHealth {
  if (o.ok) {
    const consecutiveOk = h.consecutiveOk + 1;
    const healthy = h.healthy || consecutiveOk >= p.healthyThreshold;
    return { ...h, healthy, everHealthy: h.everHealthy || healthy, consecutiveOk, consecutiveFail: 0, lastProbeAt: now, lastReason: undefined };
  }
  const consecutiveFail = h.consecutiveFail + 1;
  const healthy = h.healthy && consecutiveFail < p.unhealthyThreshold;
  return { ...h, healthy, consecutiveOk: 0, consecutiveFail, lastFailAnswered: o.answered, lastProbeAt: now, lastReason: o.reason };
}

/**
 * Phase for the strategies. A process that is still coming up (connections refused) is
 * "starting" until its deadline; one that answers its health check with a failure, or that
 * was healthy and stopped passing, is "unhealthy" once past its grace period.
 */
export function phaseFrom(h: TrackedHealth, running: boolean, launchedAt: number, p: HealthParams, now: number): InstancePhase {
  if (!running) return "exited";
  if (h.healthy) return "healthy";
  const pastGrace = now - launchedAt >= p.grace;
  if (pastGrace && h.consecutiveFail >= p.unhealthyThreshold && (h.everHealthy || h.lastFailAnswered)) return "unhealthy";
  return "starting";
}

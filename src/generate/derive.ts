// The arithmetic every emitter shares: kiln's strategy, health and image
// settings turned into the numbers and strings platforms take. Pure.
//
// Capacity, limits, the health-check command and the listen port come from derive/
// (the one source kiln's own rollouts and providers use too); this file maps them
// onto each platform's knobs.

import { batchOf, capacityOf, limitsOf, type Capacity, type StrategyLimits } from "../derive/index.js";
import type { Spec } from "../config/index.js";
import type { ImageInfo } from "./types.js";

/**
 * No platform kiln generates for has kiln's canary weights and analysis, so a canary kiln.yaml
 * is emitted as the rolling replacement its `strategy.rolling` settings describe (the
 * header of each file says so); rolling and blue-green map as they are.
 */
function platformStrategy(spec: Spec): Spec {
  return spec.strategy.type === "canary" ? { ...spec, strategy: { ...spec.strategy, type: "rolling" } } : spec;
}

/** The capacity the platform's rollout keeps: derive/#capacityOf of the platform's strategy. */
export function platformCapacity(spec: Spec): Capacity {
  return capacityOf(platformStrategy(spec));
}

/** Warmup, deadline and auto-rollback of the platform's strategy: derive/#limitsOf. */
export function platformLimits(spec: Spec): StrategyLimits {
  return limitsOf(platformStrategy(spec));
}

/** ms → whole seconds, rounded up (a platform that counts in seconds must not wait less than kiln). */
export function seconds(ms: number): number {
  return Math.ceil(ms / 1000);
}

/** ms → whole seconds, at least 1 (probe periods and timeouts of 0 are invalid on most platforms). */
export function secondsMin1(ms: number): number {
  return Math.max(1, seconds(ms));
}

/**
 * ms → a Go-style duration, which Docker, Compose and Nomad all read:
 * 500 → "500ms", 1000 → "1s", 90000 → "1m30s", 1500 → "1s500ms", 0 → "0s".
 */
export function goDuration(ms: number): string {
  let n = Math.max(0, Math.round(ms));
  if (n === 0) return "0s";
  let out = "";
  for (const [unit, size] of [["h", 3_600_000], ["m", 60_000], ["s", 1000], ["ms", 1]] as const) {
    const q = Math.floor(n / size);
    if (q > 0) out += `${q}${unit}`;
    n -= q * size;
  }
  return out;
}

/** "1000:1000" → {uid: 1000, gid: 1000}; "1000" → {uid: 1000, gid: 1000}. */
export function userIds(spec: Spec): { uid: number; gid: number } {
  const [u, g] = spec.image.user.split(":");
  const uid = Number(u);
  return { uid, gid: g === undefined ? uid : Number(g) };
}

export interface AwsRefresh {
  minHealthyPercentage: number;
  maxHealthyPercentage: number;
  instanceWarmup: number;
  checkpointPercentages: number[];
  checkpointDelay: number;
  skipMatching: boolean;
  autoRollback: boolean;
  bakeTime: number;
  /** why a number differs from the one in kiln.yaml */
  notes: string[];
}

const AWS_MAX_WAIT = 172_800; // CheckpointDelay and BakeTime: 0–172800 s

/**
 * Instance refresh preferences that make an Auto Scaling group replace instances
 * the way kiln would.
 *
 * AWS turns MaxHealthyPercentage into a count by rounding down, so the
 * percentage is raised when needed to give kiln's surge:
 * - 3 instances, max 150 % → kiln surges 1; AWS 150 % → 4.5 → 4: surge 1, kept as 150.
 * - 1 instance, max 150 % → kiln surges 1; AWS 150 % → 1.5 → 1: no surge, so 200 is written.
 * AWS also requires Max − Min ≤ 100; kiln's schema requires the same, but the
 * raised value is capped there (and a note says so).
 *
 * Blue-green has no instance-refresh equivalent (the old fleet is terminated as
 * the refresh goes): the nearest is 100/200 (the whole new fleet is launched
 * before any old instance goes) with BakeTime = keepPreviousFor, during which
 * AutoRollback still reverts; use the aws-blue-green target for a kept blue fleet.
 */
export function awsRefresh(spec: Spec): AwsRefresh {
  const cap = platformCapacity(spec);
  const { autoRollback } = platformLimits(spec);
  const notes: string[] = [];
  if (spec.strategy.type === "blue-green") {
    const keep = seconds(spec.strategy.blueGreen.keepPreviousFor);
    // kiln's blue-green has no warmup: green counts once healthy. The nearest AWS wait is the time the
    // load balancer takes to confirm a new instance healthy (interval × healthy threshold).
    const hc = albHealthCheck(spec);
    if (keep > AWS_MAX_WAIT) notes.push(`BakeTime is capped at ${AWS_MAX_WAIT} s (keepPreviousFor is ${keep} s)`);
    return {
      minHealthyPercentage: 100,
      maxHealthyPercentage: 200,
      instanceWarmup: hc.intervalSeconds * hc.healthyThreshold,
      checkpointPercentages: [100],
      checkpointDelay: 0,
      skipMatching: true,
      autoRollback,
      bakeTime: Math.min(keep, AWS_MAX_WAIT),
      notes: [...notes, "blue-green: the whole new fleet launches before old instances go (100/200); old instances are terminated, not kept"],
    };
  }
  const r = spec.strategy.rolling;
  let max = r.maxHealthyPercent;
  if (cap.surge > 0 && Math.floor((cap.instances * max) / 100) < cap.maxTotal) {
    const needed = Math.ceil((cap.maxTotal * 100) / cap.instances);
    const capped = Math.min(needed, r.minHealthyPercent + 100, 200);
    notes.push(
      capped === needed
        ? `MaxHealthyPercentage ${needed} (kiln.yaml says ${max}): AWS rounds ${cap.instances} × ${max} % down to ${Math.floor((cap.instances * max) / 100)} instances, kiln starts ${cap.maxTotal}`
        : `MaxHealthyPercentage ${capped}: kiln starts ${cap.maxTotal} instances, which needs ${needed} %, above AWS's limit of MinHealthyPercentage + 100`,
    );
    max = capped;
  }
  return {
    minHealthyPercentage: r.minHealthyPercent,
    maxHealthyPercentage: max,
    instanceWarmup: seconds(r.instanceWarmup),
    checkpointPercentages: [100],
    checkpointDelay: 0,
    skipMatching: true,
    autoRollback: r.autoRollback,
    bakeTime: 0,
    notes,
  };
}

/**
 * Kubernetes/Argo rolling parameters as absolute counts (percentages would be
 * rounded by Kubernetes: surge up, unavailable down, which differs from kiln).
 * Both may not be 0: an empty fleet gets maxSurge 1.
 *
 * - 3 instances, min 100 %, max 150 % → maxSurge 1, maxUnavailable 0.
 * - 4 instances, min 75 %, max 100 % → maxSurge 0, maxUnavailable 1.
 */
export function kubernetesRolling(spec: Spec): { maxSurge: number; maxUnavailable: number } {
  const cap = platformCapacity(spec);
  if (cap.surge === 0 && cap.maxUnavailable === 0) return { maxSurge: 1, maxUnavailable: 0 };
  return { maxSurge: cap.surge, maxUnavailable: cap.maxUnavailable };
}

/**
 * Docker Swarm update_config: with surge, `start-first` with parallelism = surge
 * (a new task runs and passes its healthcheck before its old one stops, so the
 * fleet never drops below its size); without surge, `stop-first` with
 * parallelism = the instances kiln may take out at once.
 *
 * - 3 instances, min 100 %, max 150 % → start-first, parallelism 1.
 * - 6 instances, min 100 %, max 150 % → start-first, parallelism 3.
 * - 4 instances, min 75 %, max 100 % → stop-first, parallelism 1.
 * - blue-green, 3 instances → start-first, parallelism 3 (all new tasks at once).
 */
export function swarmUpdate(spec: Spec): { parallelism: number; order: "start-first" | "stop-first" } {
  const cap = platformCapacity(spec);
  return batchOf(cap);
}

export interface NomadUpdate {
  maxParallel: number;
  canary: number;
  autoPromote: boolean;
  minHealthyTime: number;
  healthyDeadline: number;
  progressDeadline: number;
  autoRevert: boolean;
}

/**
 * Nomad `update`: rolling → max_parallel = surge (or the instances kiln may take
 * out at once when there is no surge); blue-green → canary = count, promoted
 * automatically unless kiln.yaml says `promotion: manual`.
 *
 * Nomad's healthy_deadline is per allocation; kiln's per-instance deadline is
 * its controller's (60 s + grace). progress_deadline must exceed it, so the
 * whole-rollout deadline is raised to healthy_deadline + 1 s when smaller.
 */
export function nomadUpdate(spec: Spec): NomadUpdate {
  const cap = platformCapacity(spec);
  const { deadline, autoRollback: autoRevert } = platformLimits(spec);
  const healthyDeadline = Math.min(60_000 + spec.health.grace, Math.max(1000, deadline - 1000));
  const base = {
    minHealthyTime: platformLimits(spec).warmup,
    healthyDeadline,
    progressDeadline: Math.max(deadline, healthyDeadline + 1000),
    autoRevert,
  };
  if (spec.strategy.type === "blue-green") {
    return { ...base, maxParallel: Math.max(1, cap.instances), canary: cap.instances, autoPromote: spec.strategy.blueGreen.promotion === "auto" };
  }
  return { ...base, maxParallel: batchOf(cap).parallelism, canary: 0, autoPromote: false };
}

/** Environment every instance gets at launch: kiln.yaml's `env`, then PORT (kiln's providers set it). */
export function launchEnv(spec: Spec): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(spec.env).sort()) out[k] = spec.env[k]!;
  out.PORT = String(spec.image.port);
  return out;
}

/** The one-line header every generated file starts with (after its own comment marker). */
export function headerLines(spec: Spec, image: ImageInfo, target: string): string[] {
  return [
    `Generated by \`kiln generate ${target}\` from kiln.yaml: ${spec.name} ${spec.version}, image ${image.reference}`,
    `(${image.timestampedName}). Change kiln.yaml and generate again rather than editing this file.`,
  ];
}


export interface AlbHealthCheck {
  path: string;
  intervalSeconds: number;
  timeoutSeconds: number;
  healthyThreshold: number;
  unhealthyThreshold: number;
  notes: string[];
}

/**
 * kiln's health check as an ALB target group's. AWS allows interval 5–300 s,
 * timeout 2–120 s and below the interval, thresholds 2–10: kiln values outside
 * are moved to the nearest allowed one, and a note says which.
 *
 * - interval 10s, timeout 2s, thresholds 2/3 → 10, 2, 2, 3 (as written).
 * - interval 500ms, timeout 1s → 5 and 2 (AWS's minimums): checks are slower than kiln's.
 */
export function albHealthCheck(spec: Spec): AlbHealthCheck {
  const h = spec.health;
  const notes: string[] = [];
  const clamp = (what: string, v: number, lo: number, hi: number, unit = "", written = `${v}${unit}`) => {
    const c = Math.min(hi, Math.max(lo, v));
    if (c !== v || (unit && written !== `${v}${unit}`)) {
      notes.push(`${what} ${c}${unit} (kiln.yaml: ${written}; AWS counts whole seconds${c !== v ? `, ${lo}–${hi}${unit}` : ""})`);
    }
    return c;
  };
  const interval = clamp("interval", secondsMin1(h.interval), 5, 300, " s", goDuration(h.interval).replace(/(\d)s$/, "$1 s"));
  let timeout = clamp("timeout", secondsMin1(h.timeout), 2, 120, " s", goDuration(h.timeout).replace(/(\d)s$/, "$1 s"));
  if (timeout >= interval) {
    notes.push(`timeout ${interval - 1} s: AWS requires it below the interval (${interval} s)`);
    timeout = interval - 1;
  }
  return {
    path: h.path,
    intervalSeconds: interval,
    timeoutSeconds: timeout,
    healthyThreshold: clamp("healthy threshold", h.healthyThreshold, 2, 10),
    unhealthyThreshold: clamp("unhealthy threshold", h.unhealthyThreshold, 2, 10),
    notes,
  };
}

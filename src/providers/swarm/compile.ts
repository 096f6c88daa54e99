// kiln.yaml + a release → the Docker Engine API's ServiceSpec for a Swarm service. Pure:
// no engine, no clock. Swarm runs the rollout; this file is where kiln's strategy becomes
// Swarm's UpdateConfig / RollbackConfig, and where what Swarm cannot do is written down
// (explainSwarmLimits).
//
// Capacity, limits, the health-check command, labels, volume names and the port come from
// derive/, the one source kiln's own rollouts and `kiln generate` use too.

import { batchOf, capacityOf, healthCheckCommand, LABEL, limitsOf, listenPort, sharedVolumeName, type Capacity } from "../../derive/index.js";
import type { Spec } from "../../config/index.js";

/** Durations in the Engine API are nanoseconds. */
const NS_PER_MS = 1_000_000;
const ns = (ms: number) => Math.max(0, Math.round(ms)) * NS_PER_MS;

/** What a deploy pins: the release kiln recorded and the image reference tasks run. */
export interface SwarmRelease {
  /** kiln release id, e.g. "r3" */
  id: string;
  version: string;
  /** image manifest digest in kiln's store, "sha256:…" */
  digest: string;
  /** "sha256:<config digest>" (the engine image ID ensureImage returns), or "REPO@sha256:<manifest digest>" once pushed */
  image: string;
  configHash: string;
}

// The slice of the Engine API (v1.41) kiln writes. Field names are the API's.
export interface SwarmUpdateConfig {
  Parallelism: number;
  /** ns between batches */
  Delay: number;
  FailureAction: "pause" | "continue" | "rollback";
  /** ns a task is watched for failure after it is updated */
  Monitor: number;
  MaxFailureRatio: number;
  Order: "stop-first" | "start-first";
}

export interface SwarmServiceSpec {
  Name: string;
  Labels: Record<string, string>;
  TaskTemplate: {
    ContainerSpec: {
      Image: string;
      Labels: Record<string, string>;
      Env: string[];
      User: string;
      ReadOnly: boolean;
      Mounts: ({ Type: "tmpfs"; Target: string; TmpfsOptions?: { Mode?: number } } | { Type: "volume"; Source: string; Target: string; ReadOnly: false; VolumeOptions: { Labels: Record<string, string> } })[];
      CapabilityDrop: string[];
      Healthcheck: { Test: string[]; Interval: number; Timeout: number; Retries: number; StartPeriod: number };
      StopGracePeriod: number;
      StopSignal: string;
    };
    RestartPolicy: { Condition: "any" | "on-failure" | "none"; Delay: number };
    ForceUpdate?: number;
  };
  Mode: { Replicated: { Replicas: number } };
  UpdateConfig: SwarmUpdateConfig;
  RollbackConfig: SwarmUpdateConfig;
  EndpointSpec: { Mode: "vip"; Ports: { Protocol: "tcp"; TargetPort: number; PublishedPort: number; PublishMode: "ingress" }[] };
}

/** The bounds a Swarm update keeps: kiln's capacity, with canary as one new task at a time. */
export type SwarmCapacity = Capacity;

/**
 * kiln's capacity (derive/#capacityOf), except canary: Swarm has no weights, so the nearest
 * is one new task at a time beside the full fleet (surge 1).
 *
 * - rolling, 3 instances, 100/150 → surge 1, minHealthy 3, unavailable 0.
 * - blue-green, 3 instances → surge 3 (a whole second fleet).
 * - canary, 3 instances → surge 1, minHealthy 3, unavailable 0.
 */
export function swarmCapacity(spec: Spec): SwarmCapacity {
  const cap = capacityOf(spec);
  if (spec.strategy.type !== "canary") return cap;
  const surge = Math.min(1, cap.instances);
  return { ...cap, surge, maxTotal: cap.instances + surge };
}

/**
 * Docker runs a health probe by starting a process in the container — on kiln's node base a
 * whole Node runtime, about 0.1 s of CPU idle and over 1 s on a busy 2-core node (measured
 * here). kiln's own prober is an in-process HTTP request, so kiln.yaml intervals like 500ms
 * are cheap for it; as Docker probes they starve the node, probes time out, and healthy tasks
 * are killed as unhealthy. So Swarm probes at most once a second.
 */
export const MIN_PROBE_INTERVAL_MS = 1000;

export function probeIntervalMs(spec: Spec): number {
  return Math.max(MIN_PROBE_INTERVAL_MS, spec.health.interval);
}

/**
 * The time Docker needs to call a healthy-looking task unhealthy: `retries` failed probes,
 * `interval` apart, the last one timing out. A Monitor window shorter than this would end
 * before a task that broke right after passing its first check is seen to fail.
 */
export function unhealthyDetectionMs(spec: Spec): number {
  const h = spec.health;
  return h.unhealthyThreshold * probeIntervalMs(spec) + h.timeout;
}

/**
 * kiln's strategy as Swarm's UpdateConfig.
 *
 * Parallelism and Order (surge/unavailable arithmetic):
 * - surge > 0 (maxHealthyPercent > 100, or blue-green) → `start-first`, Parallelism = surge:
 *   each batch starts `surge` new tasks, Swarm waits until they run and pass their
 *   healthcheck, then stops as many old ones. Never fewer than `instances` running, never
 *   more than instances + surge — kiln's own bounds.
 *   3 instances, 100/150 → start-first, 1 at a time; 6 instances, 100/150 → start-first, 3.
 * - surge = 0 → `stop-first`, Parallelism = instances − minHealthy (at least 1): Swarm stops
 *   that many old tasks, then starts their replacements. 4 instances, 75/100 → stop-first, 1.
 * - blue-green → start-first, Parallelism = instances: the whole new fleet starts beside the
 *   old one before any old task stops (but see explainSwarmLimits: the old one is not kept).
 * When kiln.yaml allows both surge and unavailability (e.g. 75/125) Swarm cannot do both in
 * one batch: start-first with Parallelism = surge keeps every old task until its
 * replacement is healthy — the safe side of kiln's bounds.
 *
 * Timing: Delay = instanceWarmup, so the next batch starts only after the previous one has
 * been up that long (kiln never drains more old instances before the new ones have warmed
 * up); Monitor = instanceWarmup + the time Docker needs to see a task go unhealthy, so a
 * task that fails during its warmup counts as a failed update.
 *
 * Failure: kiln fails a rollout on its first failed new instance → MaxFailureRatio 0;
 * FailureAction `rollback` when autoRollback, otherwise `pause` (left for a person).
 */
export function compileUpdateConfig(spec: Spec): SwarmUpdateConfig {
  const cap = swarmCapacity(spec);
  const { warmup, autoRollback } = limitsOf(spec);
  const batch = batchOf(cap);
  return {
    Parallelism: batch.parallelism,
    Delay: ns(warmup),
    FailureAction: autoRollback ? "rollback" : "pause",
    Monitor: ns(warmup + unhealthyDetectionMs(spec)),
    MaxFailureRatio: 0,
    Order: batch.order,
  };
}

/**
 * Swarm's rollback re-applies the previous spec with RollbackConfig. The previous release
 * was healthy, so there is no warmup pacing between batches (Delay 0) — a rollback is a
 * fast replacement, as kiln's own is — but the same bounds (order, parallelism) hold, and a
 * rollback that fails pauses rather than rolling back a rollback.
 */
export function compileRollbackConfig(spec: Spec): SwarmUpdateConfig {
  return { ...compileUpdateConfig(spec), Delay: 0, FailureAction: "pause" };
}

/**
 * Launch environment: kiln.yaml `env` (sorted), then what every kiln provider adds. In a
 * container the instance must listen on its own namespace's every interface (HOST) for the
 * ingress network to reach it; KILN_INSTANCE_ID is Swarm's task name, filled in per task.
 */
export function launchEnv(spec: Spec): string[] {
  const env = Object.keys(spec.env)
    .sort()
    .filter((k) => !["PORT", "HOST", "KILN_INSTANCE_ID"].includes(k))
    .map((k) => `${k}=${spec.env[k]}`);
  return [...env, `PORT=${spec.image.port}`, "HOST=0.0.0.0", "KILN_INSTANCE_ID={{.Task.Name}}"];
}

export function releaseLabels(spec: Spec, release: SwarmRelease): Record<string, string> {
  return {
    [LABEL.managedBy]: "kiln",
    [LABEL.service]: spec.name,
    [LABEL.release]: release.id,
    [LABEL.version]: release.version,
    [LABEL.digest]: release.digest,
    [LABEL.configHash]: release.configHash,
  };
}

/**
 * The whole service. Every task runs exactly `release.image` (an engine image ID or
 * REPO@sha256:…, never a tag), read-only with /tmp in memory and declared volumes the only
 * writable paths, as the image's non-root user, with every capability dropped
 * (ContainerSpec.CapabilityDrop needs Engine API ≥ 1.41, Docker 20.10).
 */
export function compileService(spec: Spec, release: SwarmRelease, opts: { replicas?: number } = {}): SwarmServiceSpec {
  if (!/^sha256:[0-9a-f]{64}$/.test(release.image) && !/^[^@\s]+@sha256:[0-9a-f]{64}$/.test(release.image)) {
    // A programming error, not a user one: callers pin images from the store or a push.
    throw new Error(`swarm image must be pinned by digest, got "${release.image}"`);
  }
  const labels = releaseLabels(spec, release);
  const h = spec.health;
  return {
    Name: spec.name,
    Labels: labels,
    TaskTemplate: {
      ContainerSpec: {
        Image: release.image,
        Labels: labels,
        Env: launchEnv(spec),
        User: spec.image.user,
        ReadOnly: true,
        Mounts: [
          { Type: "tmpfs", Target: "/tmp" },
          ...spec.volumes.map((v) => ({
            Type: "volume" as const,
            Source: sharedVolumeName(spec.name, v.name),
            Target: v.path,
            ReadOnly: false as const,
            VolumeOptions: { Labels: { [LABEL.managedBy]: "kiln", [LABEL.service]: spec.name } },
          })),
        ],
        CapabilityDrop: ["ALL"],
        Healthcheck: {
          Test: healthCheckCommand(spec),
          Interval: ns(probeIntervalMs(spec)),
          Timeout: ns(Math.max(1, h.timeout)),
          Retries: Math.max(1, h.unhealthyThreshold),
          StartPeriod: ns(h.grace),
        },
        StopGracePeriod: ns(spec.drainTimeout),
        StopSignal: "SIGTERM",
      },
      RestartPolicy: { Condition: "any", Delay: ns(1000) },
    },
    Mode: { Replicated: { Replicas: opts.replicas ?? spec.instances } },
    UpdateConfig: compileUpdateConfig(spec),
    RollbackConfig: compileRollbackConfig(spec),
    EndpointSpec: { Mode: "vip", Ports: [{ Protocol: "tcp", TargetPort: spec.image.port, PublishedPort: listenPort(spec), PublishMode: "ingress" }] },
  };
}

export interface SwarmLimit {
  /** what kiln promises with its own controller */
  promise: string;
  /** why Swarm cannot do it */
  swarm: string;
  /** the nearest safe thing kiln does instead */
  instead: string;
}

/**
 * What kiln promises that Swarm cannot do for this kiln.yaml, and what kiln does instead.
 * Always includes the limits every Swarm deploy has; strategy-specific ones when they apply.
 */
export function explainSwarmLimits(spec: Spec): SwarmLimit[] {
  const out: SwarmLimit[] = [];
  const type = spec.strategy.type as string;
  const cap = swarmCapacity(spec);
  const { deadline, autoRollback } = limitsOf(spec);
  if (type === "blue-green") {
    out.push({
      promise: "blue-green keeps the previous fleet warm for keepPreviousFor, so a rollback is an instant switch",
      swarm: "a service has one set of tasks: old tasks are stopped once the new ones run; only the previous spec (PreviousSpec) is kept",
      instead: `start-first with Parallelism = ${cap.instances} (the whole new fleet starts and passes its healthcheck before any old task stops), Monitor, and FailureAction rollback; \`kiln rollback\` re-creates the previous release's tasks (a replacement, not a switch)`,
    });
    out.push({
      promise: "blue-green switches traffic once at a load balancer and reads the switch back before retiring blue",
      swarm: "the routing mesh adds each task once it is healthy and removes it when it stops; there is no single cutover to read back",
      instead: "kiln watches UpdateStatus and the tasks' states until Swarm reports the update completed",
    });
    if (spec.strategy.blueGreen.promotion === "manual") {
      out.push({
        promise: "promotion: manual waits for `kiln promote` before switching",
        swarm: "an update cannot be held before its cutover",
        instead: "not offered: deploy when you would promote",
      });
    }
  }
  if (type === "canary") {
    out.push({
      promise: "canary shifts a weight of requests (setWeight steps) to the new release and analyses it",
      swarm: "the routing mesh balances evenly over healthy tasks: no weights, no analysis",
      instead: "start-first with Parallelism 1 and Monitor: the first new task takes roughly 1/instances of requests and a failure rolls back",
    });
  }
  out.push({
    promise: "instances of the new release join traffic only after kiln's healthyThreshold consecutive passing checks",
    swarm: "Docker's healthcheck has no healthy threshold: one passing check makes a task healthy",
    instead: `unhealthyThreshold becomes Retries; Monitor (${Math.round((limitsOf(spec).warmup + unhealthyDetectionMs(spec)) / 100) / 10} s) catches a task that fails soon after its first pass`,
  });
  if (spec.health.interval < MIN_PROBE_INTERVAL_MS) {
    out.push({
      promise: `health checks every ${spec.health.interval} ms`,
      swarm: "each Docker health probe starts a process in the container (here a Node runtime); at this rate the probes starve a busy node and healthy tasks time out",
      instead: `probes every ${MIN_PROBE_INTERVAL_MS} ms`,
    });
  }
  if (type === "rolling" && cap.surge > 0 && cap.maxUnavailable > 0) {
    out.push({
      promise: `rolling may both start ${cap.surge} extra and take ${cap.maxUnavailable} out at once`,
      swarm: "an update batch is either start-first or stop-first",
      instead: `start-first with Parallelism ${cap.surge}: no old task stops before its replacement is healthy (slower, never below ${cap.instances})`,
    });
  }
  if (type === "rolling" && cap.surge === 0 && cap.minHealthy < cap.instances && cap.instances <= 1) {
    out.push({
      promise: "a rolling deploy keeps minHealthyPercent serving",
      swarm: "stop-first on a one-task service leaves nothing serving while the new task starts",
      instead: "as kiln.yaml asks (maxHealthyPercent 100); set maxHealthyPercent above 100 for a start-first update",
    });
  }
  out.push({
    promise: `a rollout that has not finished within its deadline (${Math.round(deadline / 1000)} s) fails${autoRollback ? " and rolls back" : ""}`,
    swarm: "UpdateConfig has no deadline: an update waiting for a task that never starts waits forever",
    instead: `kiln enforces it while \`kiln deploy\` watches: past the deadline it ${autoRollback ? "asks Swarm to roll back" : "reports the release failed and leaves the update paused"}; a deploy not being watched has no deadline`,
  });
  out.push({
    promise: "kiln rollback returns to any earlier release",
    swarm: "`rollback: previous` restores only the single PreviousSpec",
    instead: "`kiln rollback` returns to the release before the live one: with Swarm's rollback when that is the PreviousSpec, else by re-applying that release's recorded spec (Swarm keeps no PreviousSpec after a rollback); `kiln deploy NAME:OLDVERSION` goes further back",
  });
  out.push({
    promise: "every instance runs exactly the baked image, on any machine",
    swarm: "a node runs an image it has or can pull; kiln loads the image into the engine it talks to, by image ID",
    instead: "tasks are pinned to the engine image ID (sha256 of the config); on more than one node push the image and pin REPO@sha256:<manifest digest>",
  });
  if (cap.surge > 0) {
    out.push({
      promise: `at most ${cap.instances + cap.surge} instances alive at once, draining ones included`,
      swarm: "Swarm counts only tasks meant to run: an old task still stopping (SIGTERM, up to StopGracePeriod) is not counted, and the next batch may start meanwhile",
      instead: `at most ${cap.instances + cap.surge} tasks serving; briefly more containers while old ones stop (Delay = warmup spaces the batches)`,
    });
  }
  out.push({
    promise: "the proxy drains an instance (no new requests, in-flight ones finish) before it is stopped",
    swarm: "the routing mesh stops sending new connections to a stopping task; in-flight requests get StopGracePeriod",
    instead: `drainTimeout becomes StopGracePeriod (${Math.round(spec.drainTimeout / 100) / 10} s) after SIGTERM`,
  });
  out.push({
    promise: `the fleet is served only at ${spec.listen}`,
    swarm: "an ingress-published port listens on every interface of every node, through the routing mesh (which needs IPVS in the node's kernel)",
    instead: `published port ${listenPort(spec)} in ingress mode; put a firewall in front of it, and \`kiln status\` reports whether ${spec.listen} answers`,
  });
  if (spec.volumes.length) {
    out.push({
      promise: "declared volumes are shared by old and new instances",
      swarm: "a `local` volume exists on one node only",
      instead: "named volumes SERVICE-NAME (local driver); on more than one node create them beforehand with a driver every node shares",
    });
  }
  return out;
}

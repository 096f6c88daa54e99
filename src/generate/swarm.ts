// kiln.yaml → a Docker Swarm stack file (`docker stack deploy -c stack.yaml NAME`):
// the image by digest, read-only, kiln's health as the container healthcheck,
// and kiln's rollout as update_config / rollback_config.

import type { Spec } from "../config/index.js";
import { healthCheckCommand, LABEL, listenPort, sharedVolumeName } from "../derive/index.js";
import { goDuration, headerLines, launchEnv, platformCapacity, platformLimits, swarmUpdate } from "./derive.js";
import type { GeneratedFile, ImageInfo } from "./types.js";
import { yamlDocument } from "./yaml-out.js";

export function emitSwarm(spec: Spec, image: ImageInfo): GeneratedFile[] {
  const h = spec.health;
  const cap = platformCapacity(spec);
  const { autoRollback } = platformLimits(spec);
  const { parallelism, order } = swarmUpdate(spec);
  const monitor = goDuration(platformLimits(spec).warmup);
  const update = { parallelism, delay: "0s", order, failure_action: autoRollback ? "rollback" : "pause", monitor, max_failure_ratio: 0 };
  const volumeName = (v: string) => sharedVolumeName(spec.name, v);
  const service: Record<string, unknown> = {
    image: image.reference,
    user: spec.image.user,
    read_only: true,
    environment: launchEnv(spec),
    ports: [{ target: spec.image.port, published: listenPort(spec), protocol: "tcp", mode: "ingress" }],
    ...(spec.volumes.length ? { volumes: spec.volumes.map((v) => ({ type: "volume", source: volumeName(v.name), target: v.path })) } : {}),
    tmpfs: ["/tmp"],
    healthcheck: {
      test: healthCheckCommand(spec),
      interval: goDuration(h.interval),
      timeout: goDuration(h.timeout),
      retries: h.unhealthyThreshold,
      start_period: goDuration(h.grace),
    },
    stop_grace_period: goDuration(spec.drainTimeout),
    labels: { [LABEL.digest]: image.digest, [LABEL.version]: spec.version },
    deploy: {
      replicas: spec.instances,
      update_config: update,
      // A rollback may not itself roll back; pausing leaves it for a person.
      rollback_config: { ...update, failure_action: "pause" },
      restart_policy: { condition: "any" },
    },
  };
  const svc = ["services", spec.name];
  const u = [...svc, "deploy", "update_config"];
  const stack = {
    version: "3.8",
    services: { [spec.name]: service },
    ...(spec.volumes.length ? { volumes: Object.fromEntries(spec.volumes.map((v) => [volumeName(v.name), { external: true, name: volumeName(v.name) }])) } : {}),
  };
  const content = yamlDocument(stack, {
    header: [
      ...headerLines(spec, image, "swarm"),
      "",
      `Deploy: docker stack deploy -c stack.yaml ${spec.name} (the image must be in a registry the nodes can pull from).`,
      spec.strategy.type === "blue-green"
        ? `kiln.yaml asks for blue-green: Swarm starts all ${cap.instances} new tasks before stopping old ones, but keeps no old fleet (rollback = \`docker service rollback\`).`
        : `Rolling: ${cap.instances} tasks, ${order === "start-first" ? `${parallelism} new started before each old one stops` : `${parallelism} at a time stopped first (no surge allowed)`}.`,
      "Docker's healthcheck has no healthy threshold: one passing check makes a task healthy (kiln needs healthyThreshold).",
    ],
    notes: [
      { path: [...svc, "image"], text: "by digest: every task runs exactly the baked image" },
      { path: [...svc, "read_only"], text: "the image is the configuration; /tmp and declared volumes are the only writable paths" },
      { path: [...svc, "healthcheck"], text: "kiln health: interval, timeout, unhealthyThreshold as retries, grace as start_period" },
      { path: [...svc, "stop_grace_period"], text: "kiln drainTimeout" },
      { path: [...u, "parallelism"], text: "from kiln's min/max healthy percent" },
      { path: [...u, "order"], text: order === "start-first" ? "launch before stopping (surge allowed)" : "no surge allowed in kiln.yaml" },
      { path: [...u, "failure_action"], text: `kiln autoRollback: ${autoRollback}` },
      { path: [...u, "monitor"], text: "kiln strategy.rolling.instanceWarmup: a new task must stay up this long" },
      ...(spec.volumes.length ? [{ path: ["volumes"], text: "state outside the image, created beforehand with a driver every node shares (NFS, a cloud volume plugin): a local volume would stay on one node" }] : []),
    ],
  });
  return [{ path: "stack.yaml", content }];
}

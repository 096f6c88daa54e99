import type { Spec } from "../config/index.js";
import { isolationOf } from "../config/network-allow.js";
import type { ReleaseSettings } from "./types.js";

/** The runtime part of a loaded kiln.yaml, as a release records it. */
export function toReleaseSettings(spec: Spec): ReleaseSettings {
  const isolation = isolationOf(spec.network);
  return {
    instances: spec.instances,
    health: { ...spec.health },
    drainTimeout: spec.drainTimeout,
    strategy: structuredClone({
      type: spec.strategy.type,
      rolling: spec.strategy.rolling,
      blueGreen: spec.strategy.blueGreen,
      canary: spec.strategy.canary,
      maxQuarantined: spec.strategy.maxQuarantined,
    }),
    volumes: spec.volumes.map((v) => ({ name: v.name, path: v.path })),
    env: { ...spec.env },
    ...(spec.docker.network === "host" ? { network: "host" as const } : {}),
    ...(spec.resources ? { resources: { ...spec.resources } } : {}),
    ...(isolation ? { isolation } : {}),
  };
}

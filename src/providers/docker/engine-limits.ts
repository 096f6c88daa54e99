// kiln.yaml `resources` in Docker Engine terms (issue 12), for the Docker and Swarm providers.
// Pure. The engine enforces them with the host's cgroups, v1 or v2, so `kiln status` names the
// enforcement "engine".

import type { ResourceLimits } from "../../config/resources.js";

/**
 * HostConfig fields of a container.
 *
 *   { memoryBytes: 268435456 } → { Memory: 268435456, MemorySwap: 268435456 } (swap cannot extend it)
 *   { pids: 64, cpu: 0.5 } → { PidsLimit: 64, NanoCpus: 500000000 }
 *   undefined → {}
 */
export function containerLimits(r: ResourceLimits | undefined): { Memory?: number; MemorySwap?: number; PidsLimit?: number; NanoCpus?: number } {
  if (!r) return {};
  return {
    ...(r.memoryBytes !== undefined ? { Memory: r.memoryBytes, MemorySwap: r.memoryBytes } : {}),
    ...(r.pids !== undefined ? { PidsLimit: r.pids } : {}),
    ...(r.cpu !== undefined ? { NanoCpus: Math.round(r.cpu * 1e9) } : {}),
  };
}

/**
 * A Swarm task's Resources (Limits; Pids needs Engine API 1.41, Docker 20.10).
 *
 *   { memoryBytes: 268435456, pids: 64, cpu: 2 } → { Limits: { MemoryBytes: 268435456, Pids: 64, NanoCPUs: 2000000000 } }
 *   undefined → undefined
 */
export function swarmResources(r: ResourceLimits | undefined): { Limits: { MemoryBytes?: number; Pids?: number; NanoCPUs?: number } } | undefined {
  if (!r) return undefined;
  return {
    Limits: {
      ...(r.memoryBytes !== undefined ? { MemoryBytes: r.memoryBytes } : {}),
      ...(r.pids !== undefined ? { Pids: r.pids } : {}),
      ...(r.cpu !== undefined ? { NanoCPUs: Math.round(r.cpu * 1e9) } : {}),
    },
  };
}

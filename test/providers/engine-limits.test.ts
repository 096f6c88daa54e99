// kiln.yaml `resources` for the Docker and Swarm providers (issue 12): the engine fields, and that
// the container and service plans carry them (and nothing when resources are absent).

import assert from "node:assert/strict";
import { test } from "node:test";
import { planContainer } from "../../src/providers/docker/container-plan.js";
import { containerLimits, swarmResources } from "../../src/providers/docker/engine-limits.js";
import { planService } from "../../src/providers/swarm-fleet/plan.js";
import type { LaunchRequest } from "../../src/providers/provider.js";

const MiB = 1024 * 1024;

test("containerLimits: the doc comment's examples", () => {
  assert.deepEqual(containerLimits({ memoryBytes: 256 * MiB }), { Memory: 256 * MiB, MemorySwap: 256 * MiB });
  assert.deepEqual(containerLimits({ pids: 64, cpu: 0.5 }), { PidsLimit: 64, NanoCpus: 500_000_000 });
  assert.deepEqual(containerLimits(undefined), {});
});

test("swarmResources: the doc comment's examples", () => {
  assert.deepEqual(swarmResources({ memoryBytes: 256 * MiB, pids: 64, cpu: 2 }), { Limits: { MemoryBytes: 256 * MiB, Pids: 64, NanoCPUs: 2_000_000_000 } });
  assert.equal(swarmResources(undefined), undefined);
});

const req: LaunchRequest = { instanceId: "hello-r1-a", service: "hello", release: "r1", digest: `sha256:${"a".repeat(64)}`, env: {}, volumes: [] };

test("the Docker container plan carries the limits in HostConfig, and none without resources", () => {
  const limited = planContainer({ req: { ...req, resources: { memoryBytes: 64 * MiB, pids: 32, cpu: 1 } }, imageId: `sha256:${"cd".repeat(32)}`, uid: 1000, gid: 1000, containerPort: 8080, tmpSizeBytes: 1024 });
  assert.equal(limited.HostConfig?.Memory, 64 * MiB);
  assert.equal(limited.HostConfig?.MemorySwap, 64 * MiB);
  assert.equal(limited.HostConfig?.PidsLimit, 32);
  assert.equal(limited.HostConfig?.NanoCpus, 1_000_000_000);
  const plain = planContainer({ req, imageId: `sha256:${"cd".repeat(32)}`, uid: 1000, gid: 1000, containerPort: 8080, tmpSizeBytes: 1024 });
  for (const k of ["Memory", "MemorySwap", "PidsLimit", "NanoCpus"]) assert.equal(k in (plain.HostConfig ?? {}), false, k);
});

test("the Swarm service plan carries them in TaskTemplate.Resources.Limits, and none without resources", () => {
  const input = { image: "img", containerPort: 8080, user: "1000:1000", constraints: [], stopGraceMs: 0, tmpSizeBytes: 1 };
  assert.deepEqual(planService({ ...input, req: { ...req, resources: { memoryBytes: 64 * MiB, pids: 32 } } }).TaskTemplate.Resources, { Limits: { MemoryBytes: 64 * MiB, Pids: 32 } });
  assert.equal("Resources" in planService({ ...input, req }).TaskTemplate, false);
});

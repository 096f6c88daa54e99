// classifyFleet (rolling.ts) computes its lists branch-free for the engine's sake; this test
// holds it to the plain reading of the rules it inlines (capacity.ts: isConfirmed, isDrained,
// isServing), on random fleets: the same lists in the same order, the same counts.

import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { isConfirmed, isDrained, isServing } from "../../src/rollout/capacity.js";
import { classifyFleet, type RollingFleet } from "../../src/rollout/rolling.js";
import type { FleetInstance } from "../../src/rollout/types.js";

/** The rules as written in capacity.ts, one branch per case: what classifyFleet must equal. */
function reference(instances: readonly FleetInstance[], target: string, equivalent: ReadonlySet<string>, warmup: number, drainTimeout: number, now: number): RollingFleet {
  const c: RollingFleet = { exited: [], alive: 0, fresh: [], freshNotHealthy: 0, old: 0, toRegister: [], confirmedNew: 0, drained: [], idle: [], noCapacity: [], oldServing: [] };
  for (const i of instances) {
    if (i.phase === "exited" && i.release !== target) {
      c.exited.push(i);
      continue;
    }
    c.alive++;
    if ((i.release === target || equivalent.has(i.release)) && i.routing !== "draining") {
      c.fresh.push(i);
      if (i.phase !== "healthy") c.freshNotHealthy++;
      else if (i.routing === "none" || i.routing === "standby") c.toRegister.push(i);
      if (isConfirmed(i, warmup, now)) c.confirmedNew++;
      continue;
    }
    c.old++;
    if (isDrained(i, drainTimeout, now)) c.drained.push(i);
    if (i.routing === "none" && i.inflight === 0) c.idle.push(i);
    if (i.routing === "standby" || (i.routing === "active" && i.phase === "unhealthy")) c.noCapacity.push(i);
    if (i.routing === "active" && isServing(i)) c.oldServing.push(i);
  }
  return c;
}

const NOW = 1_000_000;
const instance = fc.record({
  release: fc.constantFrom("r1", "r2", "r3"),
  phase: fc.constantFrom("starting", "healthy", "unhealthy", "exited") as fc.Arbitrary<FleetInstance["phase"]>,
  routing: fc.constantFrom("none", "active", "standby", "draining") as fc.Arbitrary<FleetInstance["routing"]>,
  inRotation: fc.boolean(),
  inflight: fc.constantFrom(0, 0, 1, 7),
  healthySince: fc.option(fc.integer({ min: NOW - 5000, max: NOW }), { nil: undefined }),
  drainingSince: fc.option(fc.integer({ min: NOW - 5000, max: NOW }), { nil: undefined }),
});

test("classifyFleet gives the lists and counts of the rules as written, in fleet order", () => {
  fc.assert(
    fc.property(
      fc.array(instance, { maxLength: 40 }),
      fc.constantFrom("r1", "r2", "r3"),
      fc.subarray(["r1", "r2", "r3"]),
      fc.constantFrom(0, 1000, 3000),
      fc.constantFrom(0, 1000, 10_000),
      (rows, target, equivalent, warmup, drainTimeout) => {
        const fleet: FleetInstance[] = rows.map((r, k) => ({ id: `i${k}`, launchedAt: NOW - 10_000 + k, ...r }));
        const eq = new Set(equivalent.filter((r) => r !== target));
        assert.deepEqual(classifyFleet(fleet, target, eq, warmup, drainTimeout, NOW), reference(fleet, target, eq, warmup, drainTimeout, NOW));
      },
    ),
    { numRuns: 2000, seed: 17 },
  );
});

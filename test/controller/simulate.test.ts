import assert from "node:assert/strict";
import { test } from "node:test";
import { simulateRollout } from "../../src/controller/simulate.js";
import { releaseSpec } from "./fake-world.js";

test("simulate: rolling 6 → 6 keeps 6 serving, never more than 9 alive, ends live", async () => {
  const r = await simulateRollout({ spec: releaseSpec({ instances: 6 }), current: 6, instances: 6, strategy: "rolling", failRate: 0, startMs: 300, seed: 1 });
  assert.equal(r.outcome, "live");
  assert.equal(r.minServing, 6);
  assert.equal(r.maxAlive, 9);
  const last = r.timeline[r.timeline.length - 1]!;
  assert.deepEqual(last.serving, { r2: 6 });
});

test("simulate: every new instance failing rolls back with capacity intact", async () => {
  const r = await simulateRollout({ spec: releaseSpec({ instances: 4 }), current: 4, instances: 4, strategy: "rolling", failRate: 1, startMs: 300, seed: 7 });
  assert.equal(r.outcome, "rolled-back");
  assert.match(r.reason ?? "", /health/);
  assert.equal(r.minServing, 4);
  assert.deepEqual(r.timeline[r.timeline.length - 1]!.serving, { r1: 4 });
});

test("simulate: blue-green switches in one step and is repeatable for a seed", async () => {
  const input = { spec: releaseSpec({ instances: 5 }), current: 5, instances: 5, strategy: "blue-green" as const, failRate: 0.2, startMs: 200, seed: 42 };
  // Measurements of this process (CPU, heap) differ between runs; everything simulated must not.
  const strip = ({ replacementCpuMs: _c, peakHeapMB: _h, ...rest }: Awaited<ReturnType<typeof simulateRollout>>) => rest;
  const a = strip(await simulateRollout(input));
  const b = strip(await simulateRollout(input));
  assert.deepEqual(a, b);
  if (a.outcome === "live") assert.equal(a.steps.filter((s) => s.kind === "switch").length, 1);
  assert.equal(a.minServing, 5);
});

test("plan-style simulation of a first deploy launches the whole fleet", async () => {
  const r = await simulateRollout({ spec: releaseSpec({ instances: 3 }), current: 0, instances: 3, strategy: "rolling", failRate: 0, startMs: 500, seed: 1 });
  assert.equal(r.outcome, "live");
  assert.equal(r.steps[0]!.kind, "launch");
  assert.equal(r.steps[0]!.count, 3);
});

import assert from "node:assert/strict";
import { test } from "node:test";
import { computeBounds, nextSteps, planSteady } from "../../src/rollout/index.js";
import type { FleetInstance, RolloutParams } from "../../src/rollout/types.js";

const spec = (over: Partial<RolloutParams> = {}): RolloutParams => ({
  strategy: "rolling",
  instances: 3,
  rolling: { minHealthyPercent: 100, maxHealthyPercent: 150, instanceWarmup: 1000, deadline: 60_000, autoRollback: true },
  blueGreen: { keepPreviousFor: 60_000, promotion: "auto", deadline: 60_000, autoRollback: true },
  drainTimeout: 5000,
  instanceDeadline: 10_000,
  ...over,
});

const inst = (id: string, release: string, over: Partial<FleetInstance> = {}): FleetInstance => ({
  id, release, phase: "healthy", routing: "active", inRotation: true, inflight: 0, launchedAt: 0, healthySince: 0, ...over,
});

test("computeBounds: table of percentages to counts", () => {
  const cases: [number, number, number, { maxTotal: number; minHealthy: number; surge: number }][] = [
    [6, 100, 150, { maxTotal: 9, minHealthy: 6, surge: 3 }],
    [1, 100, 150, { maxTotal: 2, minHealthy: 1, surge: 1 }], // the 1-instance rounding trap
    [4, 75, 100, { maxTotal: 4, minHealthy: 3, surge: 0 }],
    [3, 100, 100, { maxTotal: 3, minHealthy: 2, surge: 0 }],
    [0, 100, 200, { maxTotal: 0, minHealthy: 0, surge: 0 }],
    [10, 90, 110, { maxTotal: 11, minHealthy: 9, surge: 1 }],
  ];
  for (const [n, min, max, want] of cases) assert.deepEqual(computeBounds(n, min, max), want, `${n} ${min}/${max}`);
});

test("rolling: nothing new yet → launch the surge", () => {
  const steps = nextSteps(spec(), { target: "r2", startedAt: 0 }, { instances: ["a", "b", "c"].map((i) => inst(i, "r1")) }, 100);
  assert.deepEqual(steps.map((s) => s.kind), ["launch"]);
  assert.equal(steps[0]!.kind === "launch" && steps[0]!.count, 1);
});

test("rolling: a new instance not yet warm does not release an old one", () => {
  const fleet = [...["a", "b", "c"].map((i) => inst(i, "r1")), inst("n1", "r2", { healthySince: 500 })];
  const steps = nextSteps(spec(), { target: "r2", startedAt: 0 }, { instances: fleet }, 1000);
  assert.ok(!steps.some((s) => s.kind === "drain"));
});

test("rolling: a new instance healthy but not confirmed by the router does not release an old one", () => {
  const fleet = [...["a", "b", "c"].map((i) => inst(i, "r1")), inst("n1", "r2", { inRotation: false })];
  const steps = nextSteps(spec(), { target: "r2", startedAt: 0 }, { instances: fleet }, 5000);
  assert.ok(!steps.some((s) => s.kind === "drain"));
});

test("rolling: a confirmed new instance releases exactly one old one, oldest first", () => {
  const fleet = [inst("a", "r1", { launchedAt: 3 }), inst("b", "r1", { launchedAt: 1 }), inst("c", "r1", { launchedAt: 2 }), inst("n1", "r2")];
  const steps = nextSteps(spec(), { target: "r2", startedAt: 0 }, { instances: fleet }, 5000);
  const drain = steps.find((s) => s.kind === "drain");
  assert.deepEqual(drain && drain.kind === "drain" && drain.ids, ["b"]);
});

test("rolling: a draining instance with requests in flight is not terminated until its timeout", () => {
  const fleet = [inst("a", "r1", { routing: "draining", inflight: 2, drainingSince: 1000 }), inst("n1", "r2"), inst("n2", "r2"), inst("n3", "r2")];
  const early = nextSteps(spec(), { target: "r2", startedAt: 0 }, { instances: fleet }, 2000);
  assert.ok(!early.some((s) => s.kind === "terminate"));
  const late = nextSteps(spec(), { target: "r2", startedAt: 0 }, { instances: fleet }, 7000);
  assert.ok(late.some((s) => s.kind === "terminate" && s.ids.includes("a")));
});

test("rolling: a failing new instance aborts; a deadline passing aborts", () => {
  const bad = [...["a", "b", "c"].map((i) => inst(i, "r1")), inst("n1", "r2", { phase: "unhealthy", routing: "none", inRotation: false })];
  assert.equal(nextSteps(spec(), { target: "r2", startedAt: 0 }, { instances: bad }, 100)[0]!.kind, "abort");
  const slow = [...["a", "b", "c"].map((i) => inst(i, "r1")), inst("n1", "r2", { phase: "starting", routing: "none", inRotation: false, healthySince: undefined })];
  assert.equal(nextSteps(spec(), { target: "r2", startedAt: 0 }, { instances: slow }, 61_000)[0]!.kind, "abort");
});

test("blue-green: switch only when the whole green fleet is healthy; manual promotion waits", () => {
  const bg = spec({ strategy: "blue-green" });
  const blue = ["a", "b", "c"].map((i) => inst(i, "r1"));
  const green = ["x", "y", "z"].map((i) => inst(i, "r2", { routing: "none", inRotation: false }));
  const partial = nextSteps(bg, { target: "r2", startedAt: 0 }, { instances: [...blue, ...green.slice(0, 2), { ...green[2]!, phase: "starting" }] }, 100);
  assert.ok(!partial.some((s) => s.kind === "switch"));
  const all = nextSteps(bg, { target: "r2", startedAt: 0 }, { instances: [...blue, ...green] }, 100);
  const sw = all.find((s) => s.kind === "switch");
  assert.ok(sw && sw.kind === "switch" && sw.standby.length === 3);
  const manual = spec({ strategy: "blue-green", blueGreen: { ...bg.blueGreen, promotion: "manual" } });
  assert.ok(!nextSteps(manual, { target: "r2", startedAt: 0 }, { instances: [...blue, ...green] }, 100).some((s) => s.kind === "switch"));
});

test("done reasons: a rollback says it went back (no 'green' nor 'new release')", () => {
  // Blue-green: traffic switched, guard window over. For a rollback, the target r1 is the earlier fleet.
  const fleet = (release: string) => ({ instances: ["a", "b"].map((i) => inst(i, release)) });
  const doneOf = (steps: ReturnType<typeof nextSteps>) => steps.find((s) => s.kind === "done");
  const two = spec({ strategy: "blue-green", instances: 2 });
  assert.deepEqual(doneOf(nextSteps(two, { target: "r2", startedAt: 0, switchedAt: 10 }, fleet("r2"), 100)), { kind: "done", reason: "traffic switched to 2 green instance(s)" });
  assert.deepEqual(doneOf(nextSteps(two, { target: "r1", startedAt: 0, switchedAt: 10, fast: true, rollback: true }, fleet("r1"), 100)), { kind: "done", reason: "traffic switched back to 2 instance(s) of r1" });
  // Rolling: every instance of the target confirmed, nothing old left.
  const rolling = spec({ instances: 2 });
  assert.deepEqual(doneOf(nextSteps(rolling, { target: "r2", startedAt: 0 }, fleet("r2"), 5_000)), { kind: "done", reason: "2 instances of the new release in rotation" });
  assert.deepEqual(doneOf(nextSteps(rolling, { target: "r1", startedAt: 0, fast: true, rollback: true }, fleet("r1"), 5_000)), { kind: "done", reason: "2 instances in rotation" });
});

test("steady: heal launches only the live release", () => {
  const fleet = [inst("a", "r1"), inst("b", "r1", { phase: "exited" })];
  const steps = planSteady({ live: "r1", instances: 3, drainTimeout: 1000 }, { instances: fleet }, 0);
  const launch = steps.find((s) => s.kind === "launch");
  assert.ok(launch && launch.kind === "launch" && launch.release === "r1" && launch.count === 2);
});

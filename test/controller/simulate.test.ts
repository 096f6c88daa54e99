import assert from "node:assert/strict";
import { test } from "node:test";
import { alignTimes, simulateRollout, type SimulatedStep } from "../../src/controller/simulate.js";
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

test("alignTimes: steps, samples and the duration on one axis (the deploy's start); its doc comment's examples", () => {
  const st = (atMs: number, kind = "launch"): SimulatedStep => ({ atMs, kind, count: 0, reason: "" });
  const rows: { t0: number; end: number; at: number[]; want: { at: number[]; durationMs: number } }[] = [
    { t0: 2500, end: 3900, at: [2600, 3900], want: { at: [100, 1400], durationMs: 1400 } },
    { t0: 0, end: 2500, at: [100, 2500], want: { at: [100, 2500], durationMs: 2500 } },
    { t0: 2500, end: 62_500, at: [2600], want: { at: [100], durationMs: 60_000 } },
    { t0: 1000, end: 1000, at: [], want: { at: [], durationMs: 0 } },
  ];
  for (const r of rows) {
    const got = alignTimes(r.t0, r.end, r.at.map((a) => st(a)), r.at.map((a) => ({ atMs: a, serving: {}, alive: 0 })));
    assert.deepEqual({ at: got.steps.map((s) => s.atMs), durationMs: got.durationMs }, r.want);
    assert.deepEqual(got.timeline.map((p) => p.atMs), r.want.at);
  }
});

test("plan's estimate matches its steps when a fleet is already running: the done step is at t+duration", async () => {
  for (const strategy of ["rolling", "blue-green", "canary"] as const) {
    const r = await simulateRollout({ spec: releaseSpec({ instances: 3 }), current: 3, instances: 3, strategy, failRate: 0, startMs: 500, seed: 1 });
    assert.equal(r.outcome, "live", strategy);
    const done = r.steps.find((s) => s.kind === "done");
    assert.ok(done, `${strategy}: a done step`);
    assert.equal(done.atMs, r.durationMs, `${strategy}: done at t+${done.atMs} ms, estimate ${r.durationMs} ms`);
    assert.ok(r.steps[0]!.atMs > 0 && r.steps[0]!.atMs <= 1000, `${strategy}: the first step right after the start, got t+${r.steps[0]!.atMs}`);
    assert.equal(r.timeline[0]!.atMs, 0, `${strategy}: the timeline starts at the deploy`);
  }
});

test("the fake provider's runningCount is running().length through launches, exits, crashes and stops", async () => {
  const { FakeProvider, manualClock } = await import("../../src/providers/fake/index.js");
  const clock = manualClock(0);
  const p = new FakeProvider(clock);
  p.behave("dies", { exitAfter: 100 });
  const req = (id: string, release: string) => ({ instanceId: id, service: "s", release, digest: "sha256:x", env: {}, volumes: [] });
  const check = async () => {
    await p.list("s"); // exits that are due happen on observation
    assert.equal(p.runningCount(), p.running().length);
  };
  for (const id of ["a", "b", "c"]) await p.launch(req(id, "ok"));
  await p.launch(req("d", "dies"));
  await p.launch(req("a", "ok")); // launching a known id again finds it: no new instance
  await check();
  assert.equal(p.runningCount(), 4);
  clock.advance(150);
  await check();
  assert.equal(p.runningCount(), 3);
  p.crash("b");
  await check();
  await p.terminate("b"); // already exited
  await p.terminate("c");
  await p.terminate("c"); // twice
  await p.terminate("d");
  await check();
  assert.equal(p.runningCount(), 1);
});

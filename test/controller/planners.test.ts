// Table tests for the controller's pure decisions; each row is a worked example from the
// function's doc comment.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { computeAnalysisWindow, samplesToDrop, type CounterSample } from "../../src/controller/analysis-window.js";
import { planAbort, planFinish, planRollback } from "../../src/controller/lifecycle.js";
import { planPreview, planReleaseWeights, planRoutingTable, type RoutingRollout } from "../../src/controller/routing-plan.js";
import { sameTable } from "../../src/controller/router-sync.js";
import { initialHealth, phaseFrom, recordProbe, type HealthParams, type TrackedHealth } from "../../src/health/tracker.js";
import type { InstanceRecord } from "../../src/state/db.js";
import { normalizeReleaseSettings, type StoredReleaseSettings } from "../../src/state/release-settings.js";
import type { Counters } from "../../src/traffic/router.js";
import { releaseSpec } from "./fake-world.js";

const inst = (id: string, release: string, routing: InstanceRecord["routing"], extra: Partial<InstanceRecord> = {}): InstanceRecord => ({
  id, service: "svc", release, digest: "d", address: `127.0.0.1:${id.charCodeAt(0)}`, state: "running", routing, launchedAt: 0, ...extra,
});
const rollout = (r: Partial<RoutingRollout>): RoutingRollout => ({ kind: "deploy", strategy: "rolling", target: "r2", fast: false, progress: {}, ...r });

describe("planRoutingTable", () => {
  it("targets: active weight 1, standby weight 0, draining draining; none, terminating and address-less absent", () => {
    const t = planRoutingTable({
      instances: [
        inst("a", "r1", "active"), inst("b", "r1", "standby"), inst("c", "r1", "draining"), inst("d", "r1", "none"),
        inst("e", "r1", "active", { state: "terminating" }), inst("f", "r1", "active", { state: "launching", address: undefined }),
      ],
      spec: releaseSpec(),
      version: 7,
    });
    assert.deepEqual(t.targets.map((x) => [x.id, x.weight, x.state]), [["a", 1, "active"], ["b", 0, "active"], ["c", 0, "draining"]]);
    assert.equal(t.version, 7);
    assert.equal(t.releaseWeights, undefined);
    assert.equal(t.preview, undefined);
    assert.deepEqual(t.health, { path: "/healthz", intervalMs: 100, timeoutMs: 100, healthyThreshold: 2, unhealthyThreshold: 2 });
    assert.equal(t.drainTimeoutMs, 1000);
  });
  it("carries the release weights and preview it plans", () => {
    const t = planRoutingTable({ instances: [inst("a", "r1", "active")], rollout: rollout({ strategy: "blue-green" }), spec: releaseSpec(), version: 1 });
    assert.equal(t.preview, "r2");
    const c = planRoutingTable({ instances: [inst("a", "r1", "active")], rollout: rollout({ strategy: "canary", progress: { weight: 20 } }), spec: releaseSpec(), version: 1 });
    assert.deepEqual(c.releaseWeights, { r2: 20, r1: 80 });
  });
});

describe("planReleaseWeights", () => {
  const r1 = [inst("a", "r1", "active")];
  const rows: [string, RoutingRollout | undefined, Record<string, number> | undefined][] = [
    ["no rollout", undefined, undefined],
    ["rolling deploy", rollout({}), undefined],
    ["blue-green deploy", rollout({ strategy: "blue-green" }), undefined],
    ["rollback to r1", rollout({ kind: "rollback", target: "r1", fast: true }), { r1: 100 }],
    ["canary weight 20", rollout({ strategy: "canary", progress: { weight: 20 } }), { r2: 20, r1: 80 }],
    ["canary weight 150", rollout({ strategy: "canary", progress: { weight: 150 } }), { r2: 100, r1: 0 }],
    ["canary, no weight yet", rollout({ strategy: "canary" }), { r2: 0, r1: 100 }],
  ];
  for (const [name, r, want] of rows) it(name, () => assert.deepEqual(planReleaseWeights(r, r1), want));
});

describe("planPreview", () => {
  const rows: [string, RoutingRollout | undefined, string | undefined][] = [
    ["blue-green deploy, not switched", rollout({ strategy: "blue-green" }), "r2"],
    ["blue-green deploy, switched", rollout({ strategy: "blue-green", switchedAt: 5 }), undefined],
    ["blue-green rollback", rollout({ strategy: "blue-green", kind: "rollback" }), undefined],
    ["rolling", rollout({}), undefined],
    ["canary", rollout({ strategy: "canary" }), undefined],
  ];
  for (const [name, r, want] of rows) it(name, () => assert.equal(planPreview(r), want));
});

describe("sameTable", () => {
  it("ignores the version, sees a changed weight", () => {
    const base = { instances: [inst("a", "r1", "active")], spec: releaseSpec() };
    assert.equal(sameTable(planRoutingTable({ ...base, version: 1 }), planRoutingTable({ ...base, version: 2 })), true);
    assert.equal(sameTable(planRoutingTable({ ...base, version: 1 }), planRoutingTable({ instances: [inst("a", "r1", "standby")], spec: releaseSpec(), version: 1 })), false);
  });
});

describe("computeAnalysisWindow", () => {
  const c = (requests: number, errors5xx = 0): Counters => ({ requests, errors5xx, connectFailures: 0 });
  const s = (at: number, releases: Record<string, Counters> = {}): CounterSample => ({ at, releases });
  const base = { canary: "r2", previous: "r1", withInstances: new Set(["r1", "r2"]), windowMs: 30_000 };
  // The base sample is recognisable by the canary's request count in it (its `at` in seconds).
  const pick = (samples: CounterSample[], stepStartedAt: number, now: number) =>
    computeAnalysisWindow({ ...base, samples, current: { r2: c(1000) }, stepStartedAt, now })?.canary.requests;
  it("window 30 s, now 100 s, step 0, samples at 60 s and 75 s → base 60 s", () => {
    assert.equal(pick([s(60_000, { r2: c(60) }), s(75_000, { r2: c(75) })], 0, 100_000), 1000 - 60);
  });
  it("step started 90 s, samples at 80, 85, 95 s → base 85 s", () => {
    assert.equal(pick([s(80_000, { r2: c(80) }), s(85_000, { r2: c(85) }), s(95_000, { r2: c(95) })], 90_000, 100_000), 1000 - 85);
  });
  it("no sample at or before the start → the oldest", () => {
    assert.equal(pick([s(95_000, { r2: c(95) }), s(98_000, { r2: c(98) })], 90_000, 100_000), 1000 - 95);
  });
  it("no samples → undefined", () => assert.equal(pick([], 0, 100_000), undefined));
  it("canary 1,000 → 1,100 requests, 5 → 7 errors → errorRate 0.02", () => {
    const w = computeAnalysisWindow({ ...base, samples: [s(0, { r2: c(1000, 5) })], current: { r2: c(1100, 7) }, stepStartedAt: 0, now: 10_000 })!;
    assert.deepEqual(w.canary, { requests: 100, errors: 2, errorRate: 0.02 });
  });
  it("stable = previous (even with no instance left) and releases with instances", () => {
    const w = computeAnalysisWindow({ ...base, withInstances: new Set(["r2"]), samples: [s(0)], current: { r1: c(10), r0: c(1000), r2: c(5) }, stepStartedAt: 0, now: 1 })!;
    assert.equal(w.stable.requests, 10);
  });
});

describe("samplesToDrop", () => {
  const at = (...t: number[]) => t.map((x) => ({ at: x }));
  const min = 60_000;
  const rows: [string, { at: number }[], number, number][] = [
    ["3 recent samples", at(0, 1000, 2000), 2000, 0],
    ["one older than 10 minutes", at(0, 11 * min, 12 * min), 12 * min, 1],
    ["two old ones are kept", at(0, 1), 60 * min, 0],
    ["2,001 samples", Array.from({ length: 2001 }, (_, i) => ({ at: i })), 2001, 1],
  ];
  for (const [name, samples, now, want] of rows) it(name, () => assert.equal(samplesToDrop(samples, now), want));
});

describe("planFinish", () => {
  const rows: [string, Parameters<typeof planFinish>[0], ReturnType<typeof planFinish>][] = [
    ["rolling deploy r2, r1 live", { rollout: { kind: "deploy", strategy: "rolling", target: "r2" }, prevLive: { id: "r1", status: "live" }, keepPreviousFor: 600_000, now: 0 },
      { live: "r2", previous: { id: "r1", status: "superseded" } }],
    ["blue-green deploy r2, keep 10 min", { rollout: { kind: "deploy", strategy: "blue-green", target: "r2" }, prevLive: { id: "r1", status: "live" }, keepPreviousFor: 600_000, now: 0 },
      { live: "r2", previous: { id: "r1", status: "superseded" }, standbyUntil: 600_000 }],
    ["blue-green rollback to r1", { rollout: { kind: "rollback", strategy: "blue-green", target: "r1" }, prevLive: { id: "r2", status: "live" }, keepPreviousFor: 600_000, now: 0 },
      { live: "r1", previous: { id: "r2", status: "rolled-back" } }],
    ["first deploy", { rollout: { kind: "deploy", strategy: "rolling", target: "r1" }, keepPreviousFor: 0, now: 0 }, { live: "r1" }],
    ["recorded live but not 'live'", { rollout: { kind: "deploy", strategy: "rolling", target: "r2" }, prevLive: { id: "r1", status: "failed" }, keepPreviousFor: 0, now: 0 }, { live: "r2" }],
  ];
  for (const [name, input, want] of rows) it(name, () => assert.deepEqual(planFinish(input), want));
});

describe("planRollback", () => {
  const rows: [number, number, boolean][] = [[3, 3, true], [3, 5, true], [3, 2, false], [0, 0, false]];
  for (const [desired, warm, instant] of rows) {
    it(`desired ${desired}, ${warm} warm → ${instant ? "instant" : "replacement"}`, () =>
      assert.deepEqual(planRollback({ desired, warm }), { instant, strategy: instant ? "blue-green" : "rolling" }));
  }
});

describe("planAbort", () => {
  const deploy = (strategy: "rolling" | "blue-green") => ({ kind: "deploy" as const, strategy, target: "r2" });
  const rows: [string, Parameters<typeof planAbort>[0], ReturnType<typeof planAbort>][] = [
    ["rolling, autoRollback, 0 warm", { rollout: deploy("rolling"), autoRollback: true, force: false, live: "r1", desired: 3, warm: 0 },
      { targetStatus: "failed", rollback: { strategy: "rolling", instant: false, target: "r1" } }],
    ["rolling, autoRollback off", { rollout: deploy("rolling"), autoRollback: false, force: false, live: "r1", desired: 3, warm: 0 }, { targetStatus: "failed" }],
    ["rolling, autoRollback off, forced", { rollout: deploy("rolling"), autoRollback: false, force: true, live: "r1", desired: 3, warm: 0 },
      { targetStatus: "failed", rollback: { strategy: "rolling", instant: false, target: "r1" } }],
    ["blue-green, autoRollback off, 3 warm of 3", { rollout: deploy("blue-green"), autoRollback: false, force: false, live: "r1", desired: 3, warm: 3 },
      { targetStatus: "failed", rollback: { strategy: "blue-green", instant: true, target: "r1" } }],
    ["first deploy, nothing live", { rollout: { kind: "deploy", strategy: "rolling", target: "r1" }, autoRollback: true, force: false, desired: 3, warm: 0 }, { targetStatus: "failed" }],
    ["an aborted rollback", { rollout: { kind: "rollback", strategy: "rolling", target: "r1" }, autoRollback: true, force: false, live: "r2", desired: 3, warm: 0 }, {}],
  ];
  for (const [name, input, want] of rows) it(name, () => assert.deepEqual(planAbort(input), want));
});

describe("health tracker", () => {
  const p: HealthParams = { path: "/", interval: 1000, timeout: 100, healthyThreshold: 2, unhealthyThreshold: 3, grace: 5000 };
  const fold = (h: TrackedHealth, outcomes: { ok: boolean; answered: boolean }[]) => outcomes.reduce((x, o) => recordProbe(x, o, p, 0), h);
  const fail = { ok: false, answered: true };
  const refused = { ok: false, answered: false };
  const ok = { ok: true, answered: true };
  const rows: [string, TrackedHealth, boolean, number, string][] = [
    ["not running", initialHealth(true), false, 10_000, "exited"],
    ["healthy", fold(initialHealth(false), [ok, ok]), true, 10_000, "healthy"],
    ["3 answered failures, past grace", fold(initialHealth(false), [fail, fail, fail]), true, 10_000, "unhealthy"],
    ["3 answered failures, within grace", fold(initialHealth(false), [fail, fail, fail]), true, 1000, "starting"],
    ["3 refused, never healthy, past grace", fold(initialHealth(false), [refused, refused, refused]), true, 10_000, "starting"],
    ["3 refused after healthy, past grace", fold(initialHealth(true), [refused, refused, refused]), true, 10_000, "unhealthy"],
  ];
  for (const [name, h, running, now, want] of rows) it(name, () => assert.equal(phaseFrom(h, running, 0, p, now), want));
  it("thresholds below 1 count as 1 (nextHealth's rule)", () => {
    const zero = { ...p, healthyThreshold: 0, unhealthyThreshold: 0 };
    assert.equal(recordProbe(initialHealth(false), ok, zero, 0).healthy, true);
    assert.equal(recordProbe(initialHealth(true), fail, zero, 0).healthy, false);
  });
});

describe("normalizeReleaseSettings", () => {
  it("keeps a recorded maxQuarantined", () => {
    const s = releaseSpec({}, { maxQuarantined: 3 });
    assert.equal(normalizeReleaseSettings(s).strategy.maxQuarantined, 3);
  });
  it("fills maxQuarantined 1 into a release recorded before quarantine existed", () => {
    const { maxQuarantined: _, ...strategy } = releaseSpec().strategy;
    const old: StoredReleaseSettings = { ...releaseSpec(), strategy };
    assert.equal(normalizeReleaseSettings(old).strategy.maxQuarantined, 1);
  });
});

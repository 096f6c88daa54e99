import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Controller } from "../../src/controller/controller.js";
import { createControllerMetrics } from "../../src/server/metrics.js";
import { parsePrometheus, sumOf } from "../support/prometheus.js";

/** The controller members the registry reads, as a canary in its pause would show them. */
function fakeController(over: { requests?: number } = {}): Controller {
  return {
    status: async () => ({
      rollout: { phase: "paused", kind: "deploy", strategy: "canary", state: "running" },
      instances: [
        { release: "r1", version: "1.0.0", health: "healthy", inRotation: true },
        { release: "r1", version: "1.0.0", health: "unhealthy", inRotation: false },
        { release: "r2", version: "2.0.0", health: "healthy", inRotation: true },
      ],
      desiredInstances: 2,
    }),
    history: () => ({
      releases: [],
      rollouts: [
        { kind: "deploy", strategy: "rolling", state: "done", startedAt: "2026-01-01T00:00:00Z", finishedAt: "2026-01-01T00:00:40Z" },
        { kind: "rollback", strategy: "rolling", state: "done", startedAt: "2026-01-01T01:00:00Z", finishedAt: "2026-01-01T01:00:03Z" },
        { kind: "deploy", strategy: "canary", state: "running", startedAt: "2026-01-01T02:00:00Z" },
      ],
    }),
    healed: 3,
    routerStats: () => ({ releases: { r1: { requests: 90, errors5xx: 1, connectFailures: 0 }, r2: { requests: over.requests ?? 10, errors5xx: 0, connectFailures: 2 } } }),
  } as unknown as Controller;
}

describe("controller metrics", () => {
  it("phase, instances by release and health, durations, rollbacks, heals and per-release router counters", async () => {
    const s = parsePrometheus(await createControllerMetrics(fakeController(), "shop").metrics());
    assert.equal(sumOf(s, "kiln_controller_rollout_phase", { phase: "paused", strategy: "canary", service: "shop" }), 1);
    assert.equal(sumOf(s, "kiln_controller_rollout_phase"), 1, "one phase at a time");
    assert.equal(sumOf(s, "kiln_controller_rollout_running"), 1);
    assert.equal(sumOf(s, "kiln_controller_instances", { release: "r1", health: "healthy" }), 1);
    assert.equal(sumOf(s, "kiln_controller_instances", { release: "r1", health: "unhealthy", in_rotation: "false" }), 1);
    assert.equal(sumOf(s, "kiln_controller_instances", { release: "r2" }), 1);
    assert.equal(sumOf(s, "kiln_controller_desired_instances"), 2);
    assert.equal(sumOf(s, "kiln_controller_rollout_duration_seconds_count"), 2, "finished rollouts only");
    assert.equal(sumOf(s, "kiln_controller_rollout_duration_seconds_sum", { kind: "deploy" }), 40);
    assert.equal(sumOf(s, "kiln_controller_rollout_duration_seconds_bucket", { kind: "rollback", le: "5" }), 1);
    assert.equal(sumOf(s, "kiln_controller_rollbacks_total"), 1);
    assert.equal(sumOf(s, "kiln_controller_heals_total"), 3);
    assert.equal(sumOf(s, "kiln_router_release_requests_total", { release: "r2" }), 10);
    assert.equal(sumOf(s, "kiln_router_release_5xx_total", { release: "r1" }), 1);
    assert.equal(sumOf(s, "kiln_router_release_connect_failures_total", { release: "r2" }), 2);
  });
  it("counters are read at each scrape", async () => {
    let requests = 10;
    const c = fakeController();
    (c as unknown as { routerStats: () => unknown }).routerStats = () => ({ releases: { r2: { requests, errors5xx: 0, connectFailures: 0 } } });
    const reg = createControllerMetrics(c, "shop");
    assert.equal(sumOf(parsePrometheus(await reg.metrics()), "kiln_router_release_requests_total", { release: "r2" }), 10);
    requests = 25;
    assert.equal(sumOf(parsePrometheus(await reg.metrics()), "kiln_router_release_requests_total", { release: "r2" }), 25);
  });
});

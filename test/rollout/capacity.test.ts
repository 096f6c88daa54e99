// computeCapacity and computeLimits: the rows are the worked examples of their doc comments.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { computeBounds, computeCapacity, computeLimits, type StrategySettings } from "../../src/rollout/capacity.js";

const settings = (type: StrategySettings["type"], min = 100, max = 150): StrategySettings => ({
  type,
  rolling: { minHealthyPercent: min, maxHealthyPercent: max, instanceWarmup: 2000, deadline: 300_000, autoRollback: true },
  blueGreen: { deadline: 300_000, autoRollback: false },
  canary: { instanceWarmup: 2000, deadline: 1_800_000, autoRollback: true },
});

describe("computeCapacity", () => {
  const rows: { name: string; n: number; s: StrategySettings; want: { surge: number; minHealthy: number; maxUnavailable: number; maxTotal: number } }[] = [
    { name: "rolling, 3 at 100/150", n: 3, s: settings("rolling"), want: { surge: 1, minHealthy: 3, maxUnavailable: 0, maxTotal: 4 } },
    { name: "rolling, 4 at 75/100", n: 4, s: settings("rolling", 75, 100), want: { surge: 0, minHealthy: 3, maxUnavailable: 1, maxTotal: 4 } },
    { name: "rolling, 1 at 100/150: any max > 100 % surges one", n: 1, s: settings("rolling"), want: { surge: 1, minHealthy: 1, maxUnavailable: 0, maxTotal: 2 } },
    { name: "rolling, 3 at 100/100: one at a time", n: 3, s: settings("rolling", 100, 100), want: { surge: 0, minHealthy: 2, maxUnavailable: 1, maxTotal: 3 } },
    { name: "blue-green, 3: a whole second fleet", n: 3, s: settings("blue-green"), want: { surge: 3, minHealthy: 3, maxUnavailable: 0, maxTotal: 6 } },
    { name: "canary, 3: room for a full promotion", n: 3, s: settings("canary"), want: { surge: 3, minHealthy: 3, maxUnavailable: 0, maxTotal: 6 } },
    { name: "canary, 0", n: 0, s: settings("canary"), want: { surge: 0, minHealthy: 0, maxUnavailable: 0, maxTotal: 0 } },
    { name: "blue-green, 0", n: 0, s: settings("blue-green"), want: { surge: 0, minHealthy: 0, maxUnavailable: 0, maxTotal: 0 } },
  ];
  for (const r of rows) {
    test(r.name, () => {
      const c = computeCapacity(r.n, r.s);
      assert.deepEqual({ surge: c.surge, minHealthy: c.minHealthy, maxUnavailable: c.maxUnavailable, maxTotal: c.maxTotal }, r.want);
      assert.equal(c.instances, r.n);
    });
  }
  test("rolling is computeBounds of the percentages on a grid", () => {
    for (const n of [0, 1, 2, 3, 4, 6, 10, 33]) {
      for (const [min, max] of [[0, 100], [50, 150], [75, 125], [90, 110], [100, 200]] as const) {
        const c = computeCapacity(n, settings("rolling", min, max));
        assert.deepEqual({ surge: c.surge, minHealthy: c.minHealthy, maxTotal: c.maxTotal }, computeBounds(n, min, max));
      }
    }
  });
});

describe("computeLimits", () => {
  test("rolling → its warmup, deadline and autoRollback", () => {
    assert.deepEqual(computeLimits(settings("rolling")), { warmup: 2000, deadline: 300_000, autoRollback: true });
  });
  test("blue-green → no warmup, its own deadline and autoRollback", () => {
    assert.deepEqual(computeLimits(settings("blue-green")), { warmup: 0, deadline: 300_000, autoRollback: false });
  });
  test("canary → canary's own settings, not rolling's", () => {
    assert.deepEqual(computeLimits(settings("canary")), { warmup: 2000, deadline: 1_800_000, autoRollback: true });
  });
});

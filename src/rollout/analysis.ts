// Canary analysis as a pure function: the canary's traffic against the stable release's,
// over the same window, judged by the thresholds in kiln.yaml.

import type { CanaryAnalysis, WindowStats } from "./types.js";

export type AnalysisVerdict = { kind: "pass"; detail: string } | { kind: "inconclusive"; detail: string } | { kind: "fail"; reason: string };

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

/**
 * Below this p99 the ratio check sees no difference: on a busy machine a freshly started
 * canary's p99 of 200 ms against a warm stable 20 ms is JIT warm-up and scheduling noise, not a
 * regression (seen in CI). Latency regressions that matter to users stand out above it.
 */
export const P99_NOISE_FLOOR_MS = 200;

/**
 * Judge the canary.
 *
 * - 200 canary requests, 1 error (0.5 %), maxErrorRate 5 % → pass.
 * - 200 canary requests, 30 errors (15 %) → fail: error rate above 5 %.
 * - 10 canary requests (minRequests 20) → inconclusive: not enough traffic yet.
 * - canary p99 800 ms, stable p99 100 ms, maxP99Ratio 3 → fail: 8× slower.
 * - canary p99 900 ms, maxP99Ms 500 → fail whatever the stable release does.
 * - canary p99 200 ms, stable p99 20 ms → pass: both under the 200 ms noise floor.
 * - stable has no traffic in the window → the ratio check is skipped (nothing to compare with).
 */
export function judgeCanary(a: CanaryAnalysis, canary: WindowStats, stable: WindowStats): AnalysisVerdict {
  if (canary.requests < a.minRequests) return { kind: "inconclusive", detail: `${canary.requests}/${a.minRequests} canary requests so far` };
  if (canary.errorRate > a.maxErrorRate) {
    return { kind: "fail", reason: `canary error rate ${pct(canary.errorRate)} (${canary.errors}/${canary.requests}) above ${pct(a.maxErrorRate)} (stable: ${pct(stable.errorRate)})` };
  }
  if (a.maxP99Ms !== undefined && canary.p99Ms !== undefined && canary.p99Ms > a.maxP99Ms) {
    return { kind: "fail", reason: `canary p99 latency ${canary.p99Ms} ms above ${a.maxP99Ms} ms` };
  }
  if (a.maxP99Ratio !== undefined && canary.p99Ms !== undefined && stable.p99Ms !== undefined && stable.requests >= a.minRequests) {
    // Compare against at least the noise floor, so a very fast stable release cannot make noise look like a breach.
    const ratio = canary.p99Ms / Math.max(stable.p99Ms, P99_NOISE_FLOOR_MS);
    if (ratio > a.maxP99Ratio) {
      return { kind: "fail", reason: `canary p99 latency ${canary.p99Ms} ms is ${ratio.toFixed(1)}× the stable release's ${stable.p99Ms} ms (limit ${a.maxP99Ratio}×, stable counted as at least ${P99_NOISE_FLOOR_MS} ms)` };
    }
  }
  return { kind: "pass", detail: `canary ${pct(canary.errorRate)} errors, p99 ${canary.p99Ms ?? "–"} ms; stable ${pct(stable.errorRate)}, p99 ${stable.p99Ms ?? "–"} ms` };
}

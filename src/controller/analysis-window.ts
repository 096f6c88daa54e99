// Canary analysis input as a pure function of the router's counter samples.

import type { WindowStats } from "../rollout/types.js";
import { windowOf, type Counters } from "../traffic/router.js";

/** Per-release router counters at one instant (cumulative since the proxy started). */
export interface CounterSample {
  at: number;
  releases: Record<string, Counters>;
}

export interface AnalysisInput {
  /** earlier samples, oldest first */
  samples: readonly CounterSample[];
  /** the counters now */
  current: Record<string, Counters>;
  canary: string;
  /** the release that was live before the canary (always stable, even with no instance left) */
  previous?: string;
  /** releases that still have an instance */
  withInstances: ReadonlySet<string>;
  windowMs: number;
  /** when the current canary step began (its weight took effect), else when the rollout started */
  stepStartedAt: number;
  now: number;
}

/**
 * The canary's and the stable releases' traffic over the analysis window: from the newest
 * sample at or before max(now − window, step start) — a weight change restarts the window —
 * to now. Stable = every other release with counters that is the previous release or still
 * has an instance; its p99 is the worst of theirs. undefined until there is any sample.
 *
 *   window 30 s, now 100 s, step started 0, samples at 60 s and 75 s
 *     → base = 60 s sample (newest ≤ 70 s)
 *   window 30 s, now 100 s, step started 90 s, samples at 80 s, 85 s, 95 s
 *     → base = 85 s sample (newest ≤ 90 s: counts before the weight change do not count)
 *   no sample at or before the start, samples at 95 s, 98 s → base = 95 s (the oldest)
 *   no samples → undefined
 *   canary 1,000 → 1,100 requests, 5 → 7 errors5xx → canary { requests 100, errors 2, errorRate 0.02 }
 *   releases r1 (previous, no instance left), r0 (no instance, not previous) → stable = r1 only
 */
export function computeAnalysisWindow(input: AnalysisInput): { canary: WindowStats; stable: WindowStats } | undefined {
  const from = Math.max(input.now - input.windowMs, Math.min(input.stepStartedAt, input.now));
  let base: CounterSample | undefined;
  for (let i = input.samples.length - 1; i >= 0; i--) {
    if (input.samples[i]!.at <= from) {
      base = input.samples[i];
      break;
    }
  }
  base ??= input.samples[0];
  if (!base) return undefined;
  const before = base.releases;
  const win = (ids: string[]): WindowStats => {
    let requests = 0, errors = 0;
    const worst: number[] = [];
    for (const id of ids) {
      const after = input.current[id];
      if (!after) continue;
      const w = windowOf(before[id], after);
      requests += w.requests;
      errors += w.errors;
      if (w.p99Ms !== undefined) worst.push(w.p99Ms);
    }
    return { requests, errors, errorRate: requests > 0 ? Math.min(1, errors / requests) : 0, ...(worst.length ? { p99Ms: Math.max(...worst) } : {}) };
  };
  const stableIds = Object.keys(input.current).filter((id) => id !== input.canary && (id === input.previous || input.withInstances.has(id)));
  return { canary: win([input.canary]), stable: win(stableIds) };
}

/**
 * Which samples to keep: those within the horizon (10 minutes), at most 2,000, and always the
 * last two. Returns how many to drop from the front.
 *
 *   3 samples at 0, 1 s, 2 s; now 2 s        → 0
 *   samples at 0, 11 min, 12 min; now 12 min → 1 (the first is older than 10 minutes)
 *   2 samples, both older than 10 minutes    → 0 (two are always kept)
 *   2,001 samples within the horizon         → 1
 */
export function samplesToDrop(samples: readonly Pick<CounterSample, "at">[], now: number, horizonMs = 10 * 60_000, max = 2000): number {
  let drop = 0;
  while (samples.length - drop > 2 && (now - samples[drop]!.at > horizonMs || samples.length - drop > max)) drop++;
  return drop;
}

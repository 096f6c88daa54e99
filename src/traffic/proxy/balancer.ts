// Smooth weighted round robin (the nginx algorithm): deterministic, spreads a
// heavy target's turns out instead of sending it bursts, and needs one number
// of state per target.

export interface WeightedCandidate {
  readonly weight: number;
  /** the algorithm's running score; starts at 0, owned by the balancer */
  currentWeight: number;
}

/**
 * Pick one candidate and update the running scores in place.
 *
 * Each pick: every candidate's currentWeight += weight; the highest wins
 * (the first in order on a tie) and loses the sum of all weights.
 *
 *   weights a=5 b=1 c=1 → a a b a c a a, then repeats (5:1:1 in every 7 picks)
 *   weights a=1 b=1     → a b a b …
 *   weights a=2 b=1     → a b a, a b a …
 *   weights a=0 b=3     → callers filter out weight 0; if passed, a is never picked while b is
 *   no candidates       → undefined
 *
 * Candidates not passed (unhealthy, draining, already tried) keep their score
 * untouched, so a target that comes back resumes its share without a burst.
 */
export function pickSmoothWeighted<T extends WeightedCandidate>(candidates: readonly T[]): T | undefined {
  let best: T | undefined;
  let total = 0;
  for (const c of candidates) {
    if (!(c.weight > 0)) continue;
    c.currentWeight += c.weight;
    total += c.weight;
    if (best === undefined || c.currentWeight > best.currentWeight) best = c;
  }
  if (best !== undefined) best.currentWeight -= total;
  return best;
}

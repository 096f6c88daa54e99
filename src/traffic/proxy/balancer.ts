// Smooth weighted round robin (the nginx algorithm): deterministic, spreads a
// heavy target's turns out instead of sending it bursts, and needs one number
// of state per target. Used twice: among releases (canary split), then among
// one release's targets. Pure apart from the scores it owns; the proxy and
// FakeRouter both pick with it, so the fake splits traffic like the proxy.

export interface WeightedCandidate {
  readonly weight: number;
  /** the algorithm's running score; starts at 0, owned by the balancer */
  currentWeight: number;
}

/**
 * Pick one candidate and update the running scores in place.
 *
 * Each pick: every usable candidate's currentWeight += weight; the highest wins
 * (the first in order on a tie) and loses the sum of all weights.
 *
 *   weights a=5 b=1 c=1 → a a b a c a a, then repeats (5:1:1 in every 7 picks)
 *   weights a=1 b=1     → a b a b …
 *   weights a=2 b=1     → a b a, a b a …
 *   weights a=0 b=3     → a is never picked (weight 0 is never usable)
 *   no candidates       → undefined
 *
 * Candidates not usable (unhealthy, draining, already tried: `usable` says
 * false) keep their score untouched, so a target that comes back resumes its
 * share without a burst. Passing `usable` instead of a filtered copy keeps the
 * per-request pick allocation-free.
 */
export function pickSmoothWeighted<T extends WeightedCandidate>(
  candidates: readonly T[],
  usable?: (c: T) => boolean,
): T | undefined {
  let best: T | undefined;
  let total = 0;
  for (let i = 0; i < candidates.length; i++) {
    const c = candidates[i]!;
    if (!(c.weight > 0) || (usable !== undefined && !usable(c))) continue;
    c.currentWeight += c.weight;
    total += c.weight;
    if (best === undefined || c.currentWeight > best.currentWeight) best = c;
  }
  if (best !== undefined) best.currentWeight -= total;
  return best;
}

/** One release in a per-release split: its relative weight and its targets (in table order). */
export interface ReleaseGroup<T extends WeightedCandidate> extends WeightedCandidate {
  readonly release: string;
  readonly members: readonly T[];
}

/**
 * The routing rule of RoutingTable.releaseWeights (see router.ts): pick a
 * release among `groups` that has a usable member, then a member of it; with
 * no such release (or no groups: no split configured), pick among `all`.
 *
 *   groups stable=9 canary=1, all usable        → s s s s s c s s s s, repeating (9:1, the canary in mid-cycle)
 *   groups stable=9 canary=1, canary's unusable → stable every time; canary's score is untouched
 *   groups stable=1, an unlisted target usable  → the unlisted target never, while stable has one
 *   groups stable=1, stable's all unusable      → by target weight among `all`
 */
export function pickByRelease<T extends WeightedCandidate>(
  groups: readonly ReleaseGroup<T>[] | undefined,
  all: readonly T[],
  usable: (c: T) => boolean,
): T | undefined {
  if (groups !== undefined && groups.length > 0) {
    const g = pickSmoothWeighted(groups, (x) => hasUsable(x.members, usable));
    if (g !== undefined) return pickSmoothWeighted(g.members, usable);
  }
  return pickSmoothWeighted(all, usable);
}

function hasUsable<T extends WeightedCandidate>(members: readonly T[], usable: (c: T) => boolean): boolean {
  for (let i = 0; i < members.length; i++) {
    const m = members[i]!;
    if (m.weight > 0 && usable(m)) return true;
  }
  return false;
}

/**
 * Build the release groups for `releaseWeights` over `all` (the targets in
 * table order), reusing the scores of `previous` groups of the same release so
 * a new table with the same split does not restart the rotation.
 */
export function groupByRelease<T extends WeightedCandidate & { readonly release: string }>(
  releaseWeights: Readonly<Record<string, number>> | undefined,
  all: readonly T[],
  previous: readonly ReleaseGroup<T>[] | undefined,
): ReleaseGroup<T>[] | undefined {
  if (releaseWeights === undefined) return undefined;
  const scores = new Map((previous ?? []).map((g) => [g.release, g.currentWeight]));
  return Object.entries(releaseWeights).map(([release, weight]) => ({
    release,
    weight,
    currentWeight: scores.get(release) ?? 0,
    members: all.filter((t) => t.release === release),
  }));
}

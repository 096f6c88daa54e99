// "did you mean …?" for unknown keys and bad enum values.

/** Optimal string alignment distance: Levenshtein plus adjacent transpositions ("imgae" → "image" is 1). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
      }
    }
  }
  return d[a.length]![b.length]!;
}

// Case and separators are the commonest slips (drain_timeout, DrainTimeout).
function fold(s: string): string {
  return s.toLowerCase().replace(/[-_\s]/g, "");
}

/** The closest candidate, if it is close enough to be a plausible typo. */
export function closest(input: string, candidates: readonly string[]): string | undefined {
  const f = fold(input);
  let best: { c: string; d: number } | undefined;
  for (const c of candidates) {
    const fc = fold(c);
    // A truncated key ("minHealthy") is as likely a slip as a typo.
    const d = f.length >= 4 && fc.startsWith(f) ? 1 : editDistance(f, fc);
    if (best === undefined || d < best.d) best = { c, d };
  }
  if (best === undefined) return undefined;
  const limit = Math.max(1, Math.floor(Math.max(input.length, best.c.length) / 3));
  return best.d <= limit ? best.c : undefined;
}

// Change feeds (the fake provider's and the fake router's): an append-only log of
// { seq, id } entries in seq order, read from a cursor. Imports nothing.

/**
 * Index of the first entry written after `cursor` (binary search: the log is in seq order).
 *
 *   seqs [3, 5, 9], cursor 5 → 2      cursor 2 → 0      cursor 9 → 3 (nothing new)
 */
export function firstAfter(log: readonly { seq: number }[], cursor: number): number {
  let lo = 0, hi = log.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (log[mid]!.seq <= cursor) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

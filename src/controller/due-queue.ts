// Ids by due time, for probes: each tick takes only what is due, whatever the fleet's size.
// Probes fall due on few distinct instants (ticks), so ids are kept in one bucket per instant
// and a min-heap orders the instants. An id has at most one live due time; rescheduling
// leaves the old bucket entry behind, skipped when taken (lazy deletion).
//
// Each id has one small mutable entry that holds its due time, and the buckets hold entries:
// a probe taken and put back (~250,000 times in a 10,000-instance simulation) changes a field
// instead of deleting and re-adding a Map key. Entries of ids no longer queued are kept for
// their next schedule and swept when they outnumber the queued ones.

interface Entry {
  readonly id: string;
  /** the live due time; undefined when not queued */
  at: number | undefined;
}

export class DueQueue {
  private readonly times: number[] = [];
  private readonly buckets = new Map<number, Entry[]>();
  private readonly entries = new Map<string, Entry>();
  private queued = 0;

  get size(): number {
    return this.queued;
  }

  has(id: string): boolean {
    return this.entries.get(id)?.at !== undefined;
  }

  /** the bucket last scheduled into (outcomes of one tick fall due at one instant) */
  private last?: { at: number; entries: Entry[] };

  schedule(id: string, at: number): void {
    let e = this.entries.get(id);
    if (!e) {
      e = { id, at: undefined };
      this.entries.set(id, e);
    }
    if (e.at === at) return;
    if (e.at === undefined) this.queued++;
    e.at = at;
    if (this.last?.at === at) {
      this.last.entries.push(e);
      return;
    }
    let b = this.buckets.get(at);
    if (b) b.push(e);
    else {
      b = [e];
      this.buckets.set(at, b);
      this.push(at);
    }
    this.last = { at, entries: b };
  }

  cancel(id: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    if (e.at !== undefined) this.queued--;
    // A stale bucket slot may still point at the entry: it reads at === undefined and is skipped.
    e.at = undefined;
    this.entries.delete(id);
  }

  /** The earliest due time queued (an entry since cancelled or rescheduled may still hold it). */
  peek(): number | undefined {
    return this.times[0];
  }

  /** Remove and return every id due at or before `now`, earliest first. */
  popDue(now: number): string[] {
    const out: string[] = [];
    while (this.times.length && this.times[0]! <= now) {
      const at = this.pop();
      for (const e of this.buckets.get(at)!) {
        if (e.at === at) {
          e.at = undefined;
          out.push(e.id);
        }
      }
      this.buckets.delete(at);
      if (this.last?.at === at) this.last = undefined;
    }
    this.queued -= out.length;
    if (this.entries.size >= this.sweepAt) this.sweep();
    return out;
  }

  /** entries held when the next sweep runs: twice what the last one kept, so sweeping costs O(1) per schedule */
  private sweepAt = 4096;

  /** Drop the entries of ids not queued (they are made again when scheduled). */
  private sweep(): void {
    for (const [id, e] of this.entries) if (e.at === undefined) this.entries.delete(id);
    this.sweepAt = Math.max(4096, 2 * this.entries.size);
  }

  private push(at: number): void {
    const h = this.times;
    h.push(at);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]! <= at) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = at;
  }

  private pop(): number {
    const h = this.times;
    const top = h[0]!;
    const last = h.pop()!;
    const n = h.length;
    if (n) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        let v = last;
        if (l < n && h[l]! < v) (m = l), (v = h[l]!);
        if (r < n && h[r]! < v) m = r;
        if (m === i) break;
        h[i] = h[m]!;
        i = m;
      }
      h[i] = last;
    }
    return top;
  }
}

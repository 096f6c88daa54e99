// Ids by due time, for probes: each tick takes only what is due, whatever the fleet's size.
// Probes fall due on few distinct instants (ticks), so ids are kept in one bucket per instant
// and a min-heap orders the instants. An id has at most one live due time; rescheduling
// leaves the old bucket entry behind, skipped when taken (lazy deletion).

export class DueQueue {
  private readonly times: number[] = [];
  private readonly buckets = new Map<number, string[]>();
  private readonly due = new Map<string, number>();

  get size(): number {
    return this.due.size;
  }

  has(id: string): boolean {
    return this.due.has(id);
  }

  /** the bucket last scheduled into (outcomes of one tick fall due at one instant) */
  private last?: { at: number; ids: string[] };

  schedule(id: string, at: number): void {
    if (this.due.get(id) === at) return;
    this.due.set(id, at);
    if (this.last?.at === at) {
      this.last.ids.push(id);
      return;
    }
    let b = this.buckets.get(at);
    if (b) b.push(id);
    else {
      b = [id];
      this.buckets.set(at, b);
      this.push(at);
    }
    this.last = { at, ids: b };
  }

  cancel(id: string): void {
    this.due.delete(id);
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
      for (const id of this.buckets.get(at)!) {
        if (this.due.get(id) === at) {
          this.due.delete(id);
          out.push(id);
        }
      }
      this.buckets.delete(at);
      if (this.last?.at === at) this.last = undefined;
    }
    return out;
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

// Ids by due time, for probes: each tick takes only what is due, whatever the fleet's size.
// Probes fall due on few distinct instants (ticks), so ids are kept in one bucket per instant
// and a min-heap orders the instants. An id has at most one live due time; rescheduling
// leaves the old bucket entry behind, skipped when taken (lazy deletion).
//
// Each thing queued has one small mutable slot that holds its due time, and the buckets hold
// slots: a probe taken and put back (~250,000 times in a 10,000-instance simulation) changes a
// field instead of deleting and re-adding a Map key. DueSlots takes the caller's own objects
// as slots (the prober's per-instance object); DueQueue keys them by id, keeps the entries of
// ids no longer queued for their next schedule and sweeps them when they outnumber the queued ones.

/**
 * What a queue orders: a thing with a due time the queue sets, valid while `queued`. Both
 * always hold a value of one type (a time is never undefined): the queue's loops compare
 * times by the ten thousand, and a field that is sometimes a number and sometimes not makes
 * the engine throw away and redo the code that reads it.
 */
export interface DueSlot {
  at: number;
  queued: boolean;
}

/**
 * The queue over slots its caller keeps, one per thing and reused across schedules (the
 * prober's per-instance object): taking one off and putting it back changes a field, with no
 * lookup by id. DueQueue below is the same queue keyed by id.
 */
export class DueSlots<S extends DueSlot> {
  private readonly times: number[] = [];
  private readonly buckets = new Map<number, S[]>();
  private queued = 0;
  /** the bucket last scheduled into (outcomes of one tick fall due at one instant) */
  private last?: { at: number; slots: S[] };

  get size(): number {
    return this.queued;
  }

  schedule(s: S, at: number): void {
    if (s.queued) {
      if (s.at === at) return;
    } else {
      this.queued++;
      s.queued = true;
    }
    s.at = at;
    if (this.last?.at === at) {
      this.last.slots.push(s);
      return;
    }
    let b = this.buckets.get(at);
    if (b) b.push(s);
    else {
      b = [s];
      this.buckets.set(at, b);
      this.push(at);
    }
    this.last = { at, slots: b };
  }

  /** Take `s` off the queue; a stale bucket slot may still point at it: it reads not queued and is skipped. */
  cancel(s: S): void {
    if (!s.queued) return;
    this.queued--;
    s.queued = false;
  }

  /** The earliest due time queued (a slot since cancelled or rescheduled may still hold it). */
  peek(): number | undefined {
    return this.times[0];
  }

  /** Remove and return every slot due at or before `now`, earliest first (in schedule order within an instant). */
  popDue(now: number): S[] {
    const out: S[] = [];
    while (this.times.length && this.times[0]! <= now) {
      const at = this.pop();
      const bucket = this.buckets.get(at)!;
      for (let k = 0; k < bucket.length; k++) {
        const s = bucket[k]!;
        if (s.queued && s.at === at) {
          s.queued = false;
          out.push(s);
        }
      }
      this.buckets.delete(at);
      if (this.last?.at === at) this.last = undefined;
    }
    this.queued -= out.length;
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

interface Entry extends DueSlot {
  readonly id: string;
}

/** Ids by due time: one small mutable entry per id (see DueSlots). */
export class DueQueue {
  private readonly slots = new DueSlots<Entry>();
  private readonly entries = new Map<string, Entry>();

  get size(): number {
    return this.slots.size;
  }

  has(id: string): boolean {
    return this.entries.get(id)?.queued === true;
  }

  schedule(id: string, at: number): void {
    let e = this.entries.get(id);
    if (!e) {
      e = { id, at: 0, queued: false };
      this.entries.set(id, e);
    }
    this.slots.schedule(e, at);
  }

  cancel(id: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    this.slots.cancel(e);
    this.entries.delete(id);
  }

  /** The earliest due time queued (an entry since cancelled or rescheduled may still hold it). */
  peek(): number | undefined {
    return this.slots.peek();
  }

  /** Remove and return every id due at or before `now`, earliest first. */
  popDue(now: number): string[] {
    const out = this.slots.popDue(now).map((e) => e.id);
    if (this.entries.size >= this.sweepAt) this.sweep();
    return out;
  }

  /** entries held when the next sweep runs: twice what the last one kept, so sweeping costs O(1) per schedule */
  private sweepAt = 4096;

  /** Drop the entries of ids not queued (they are made again when scheduled). */
  private sweep(): void {
    for (const [id, e] of this.entries) if (!e.queued) this.entries.delete(id);
    this.sweepAt = Math.max(4096, 2 * this.entries.size);
  }
}

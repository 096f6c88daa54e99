// A min-heap of ids by due time, for probes: each tick pops only what is due, whatever the
// fleet's size. An id has at most one live entry; rescheduling leaves the old entry behind,
// skipped when popped (lazy deletion).

export class DueQueue {
  private readonly heap: { at: number; id: string }[] = [];
  private readonly due = new Map<string, number>();

  get size(): number {
    return this.due.size;
  }

  has(id: string): boolean {
    return this.due.has(id);
  }

  schedule(id: string, at: number): void {
    if (this.due.get(id) === at) return;
    this.due.set(id, at);
    this.heap.push({ at, id });
    this.up(this.heap.length - 1);
    // Stale entries pile up when ids are rescheduled often: rebuild when they dominate.
    if (this.heap.length > 2 * this.due.size + 64) this.rebuild();
  }

  cancel(id: string): void {
    this.due.delete(id);
  }

  /** Remove and return every id due at or before `now`, earliest first. */
  popDue(now: number): string[] {
    const out: string[] = [];
    while (this.heap.length && this.heap[0]!.at <= now) {
      const top = this.pop();
      if (this.due.get(top.id) === top.at) {
        this.due.delete(top.id);
        out.push(top.id);
      }
    }
    return out;
  }

  private rebuild(): void {
    this.heap.length = 0;
    for (const [id, at] of this.due) this.heap.push({ at, id });
    for (let i = (this.heap.length >> 1) - 1; i >= 0; i--) this.down(i);
  }

  private pop(): { at: number; id: string } {
    const top = this.heap[0]!;
    const last = this.heap.pop()!;
    if (this.heap.length) {
      this.heap[0] = last;
      this.down(0);
    }
    return top;
  }

  private less(a: number, b: number): boolean {
    const x = this.heap[a]!, y = this.heap[b]!;
    return x.at < y.at || (x.at === y.at && x.id < y.id);
  }

  private up(i: number): void {
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(i, p)) return;
      [this.heap[i], this.heap[p]] = [this.heap[p]!, this.heap[i]!];
      i = p;
    }
  }

  private down(i: number): void {
    const n = this.heap.length;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < n && this.less(l, m)) m = l;
      if (r < n && this.less(r, m)) m = r;
      if (m === i) return;
      [this.heap[i], this.heap[m]] = [this.heap[m]!, this.heap[i]!];
      i = m;
    }
  }
}

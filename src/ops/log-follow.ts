// `kiln logs -f` without I/O: given each pass's whole logs (the provider reads them), which
// lines are new. Logs only grow (an instance's output is appended), so a line count per
// instance is the cursor; a log that shrank was replaced and is read again from its start.

export interface LogLine {
  id: string;
  line: string;
}

export class LogFollower {
  /** complete lines already printed, per instance */
  private readonly seen = new Map<string, number>();

  /**
   * The lines to print for this pass. `tail`: on the first pass, only the last `tail` lines
   * of each log; an instance that first appears on a later pass is printed whole (it was
   * launched while following). A line without its newline yet waits for the next pass.
   *
   *   pass 1, tail 2, {a: "1\n2\n3\n"}          → a:2, a:3
   *   pass 2, {a: "1\n2\n3\n4\n"}               → a:4
   *   pass 3, {a: "1\n2\n3\n4\n5", b: "x\n"}    → b:x            (a's "5" is not finished)
   *   pass 4, {a: "1\n2\n3\n4\n5\n", b: "x\n"}  → a:5
   *   pass 5, {a: "new\n", b: "x\n"}            → a:new          (a's log was replaced)
   */
  next(logs: Array<{ id: string; text: string }>, tail?: number): LogLine[] {
    const out: LogLine[] = [];
    for (const { id, text } of logs) {
      const complete = text.split("\n");
      complete.pop(); // the part after the last newline: unfinished (or empty)
      let from = this.seen.get(id);
      if (from === undefined) from = tail === undefined ? 0 : Math.max(0, complete.length - tail);
      else if (complete.length < from) from = 0;
      for (const line of complete.slice(from)) out.push({ id, line });
      this.seen.set(id, complete.length);
    }
    return out;
  }
}

// Appending a line to a daemon's log file (the controller's, the supervisor's), in a way that
// never throws. A log write fails when the disk is full (ENOSPC), over quota, or the home was
// removed; before, that error escaped from the controller's own error handler ("tick failed: …")
// and ended the process, so a full disk took the controller down with it (issue 12). Now the
// line is dropped and counted, and the first line that can be written again is preceded by a
// note of how many were lost and why.
//
// A line equal to the one before is counted instead of written (a failing tick repeats the same
// error and stack many times a second, and would fill whatever space is freed first): the count
// is written before the next different line, or with the next repeat a minute on.

import { appendFileSync } from "node:fs";

/** A log: takes a line (no trailing newline), returns nothing, never throws. */
export type LogLine = (line: string) => void;

const REPEAT_NOTE_MS = 60_000;

/**
 * A log appending to `file`; `stamp` prefixes each line (default: an ISO time and a space).
 * `append` is the write (fs.appendFileSync; tests pass a failing one), `now` the clock.
 *
 *   writes ok                           → "T line"
 *   3 writes fail with ENOSPC, then ok  → "T (3 log lines dropped: ENOSPC)", then "T line"
 *   "x" 5 times, then "y"               → "T x", "T (the line above 4 more times)", "T y"
 *   "x" again 61 s after the first "x"  → "T (the line above 1 more time)" (and the count starts over)
 */
export function logToFile(file: string, opts: { stamp?: () => string; append?: (file: string, text: string) => void; now?: () => number } = {}): LogLine {
  const stamp = opts.stamp ?? (() => `${new Date().toISOString()} `);
  const append = opts.append ?? ((f: string, text: string) => appendFileSync(f, text));
  const now = opts.now ?? Date.now;
  let dropped = 0;
  let why = "";
  let last: string | undefined;
  let repeats = 0;
  let noted = 0;
  const write = (text: string): boolean => {
    try {
      const note = dropped > 0 ? `${stamp()}(${dropped} log line${dropped === 1 ? "" : "s"} dropped: ${why})\n` : "";
      append(file, `${note}${text}`);
      dropped = 0;
      return true;
    } catch (e) {
      dropped++;
      why = (e as NodeJS.ErrnoException).code ?? String(e);
      return false;
    }
  };
  const repeatNote = () => `${stamp()}(the line above ${repeats} more time${repeats === 1 ? "" : "s"})\n`;
  return (line) => {
    if (line === last) {
      repeats++;
      if (now() - noted < REPEAT_NOTE_MS) return;
      if (write(repeatNote())) repeats = 0;
      noted = now();
      return;
    }
    const pending = repeats > 0 ? repeatNote() : "";
    // Only a line that was written can be "the line above".
    const written = write(`${pending}${stamp()}${line}\n`);
    if (written) repeats = 0;
    last = written ? line : undefined;
    noted = now();
  };
}

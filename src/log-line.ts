// Appending a line to a daemon's log file (the controller's, the supervisor's), in a way that
// never throws. A log write fails when the disk is full (ENOSPC), over quota, or the home was
// removed; before, that error escaped from the controller's own error handler ("tick failed: …")
// and ended the process, so a full disk took the controller down with it (issue 12). Now the
// line is dropped and counted, and the first line that can be written again is preceded by a
// note of how many were lost and why.

import { appendFileSync } from "node:fs";

/** A log: takes a line (no trailing newline), returns nothing, never throws. */
export type LogLine = (line: string) => void;

/**
 * A log appending to `file`; `stamp` prefixes each line (default: an ISO time and a space).
 * `append` is the write (fs.appendFileSync; tests pass a failing one).
 *
 *   writes ok                        → "T line"
 *   3 writes fail with ENOSPC, then ok → "T (3 log lines dropped: ENOSPC)", then "T line"
 *   the note itself cannot be written → still counted, tried again before the next line
 */
export function logToFile(file: string, opts: { stamp?: () => string; append?: (file: string, text: string) => void } = {}): LogLine {
  const stamp = opts.stamp ?? (() => `${new Date().toISOString()} `);
  const append = opts.append ?? ((f: string, text: string) => appendFileSync(f, text));
  let dropped = 0;
  let why = "";
  return (line) => {
    try {
      const note = dropped > 0 ? `${stamp()}(${dropped} log line${dropped === 1 ? "" : "s"} dropped: ${why})\n` : "";
      append(file, `${note}${stamp()}${line}\n`);
      dropped = 0;
    } catch (e) {
      dropped++;
      why = (e as NodeJS.ErrnoException).code ?? String(e);
    }
  };
}

// Progress of long phases (bake layers, pushes, pulls) on stderr, under the colour policy of
// output.ts. On a terminal that wants it, a live bar per running phase (cli-progress draws and
// redraws it); anywhere else (a pipe, CI, a file, NO_COLOR, TERM=dumb) exactly one plain line
// when a phase starts and one when it ends, never a carriage return or an escape code, so a CI
// log shows what a 14 s bake spent its time on. stdout is never written: it stays for results
// and --json.

import { createRequire } from "node:module";
import type { MultiBar as MultiBarType, Options as BarOptions, SingleBar } from "cli-progress";
import type { ProgressEvent } from "../image/types.js";
import type { BlobProgress } from "../image/registry/index.js";
import { green, red, styleFor, type Style } from "./output.js";

export type ProgressMode = "off" | "plain" | "live";

/**
 * How progress is shown on a stream: nothing with --json or --quiet; a live bar only on a
 * terminal that takes escape codes; plain lines otherwise. FORCE_COLOR does not make a pipe
 * live: a carriage return in a CI log is noise whatever the colours.
 *
 *   TTY,  env {},          {}              → "live"
 *   TTY,  NO_COLOR=1,      {}              → "plain"
 *   TTY,  TERM=dumb,       {}              → "plain"
 *   pipe, env {},          {}              → "plain"
 *   pipe, FORCE_COLOR=1,   {}              → "plain"
 *   TTY,  env {},          { json: true }  → "off"
 *   pipe, env {},          { quiet: true } → "off"
 */
export function progressMode(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv, opts: { json?: boolean; quiet?: boolean }): ProgressMode {
  if (opts.json || opts.quiet) return "off";
  return stream.isTTY && !env.NO_COLOR && env.TERM !== "dumb" ? "live" : "plain";
}

/**
 * Bytes for people, decimal units like the registry's and the rest of kiln's output.
 *
 *   0 → "0 B"   999 → "999 B"   12_300 → "12.3 kB"   98_200_000 → "98.2 MB"   1_234_000_000 → "1.23 GB"
 */
export function formatBytes(n: number): string {
  if (n < 1000) return `${Math.round(n)} B`;
  if (n < 1e6) return `${(n / 1e3).toFixed(1)} kB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)} MB`;
  return `${(n / 1e9).toFixed(2)} GB`;
}

/**
 * A phase's duration.
 *
 *   42 → "42 ms"   999 → "999 ms"   16_400 → "16.4 s"   59_960 → "60.0 s"   125_000 → "2m05s"
 */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
}

/**
 * Throughput, or nothing when it would mean little (under 0.2 s, or nothing moved).
 *
 *   (98_200_000, 16_400) → "6.0 MB/s"   (12_300, 50) → undefined   (0, 5_000) → undefined
 */
export function formatRate(bytes: number, ms: number): string | undefined {
  if (ms < 200 || bytes <= 0) return undefined;
  return `${formatBytes((bytes * 1000) / ms)}/s`;
}

/** What a phase says when it ends: bytes it moved and a detail (a digest, "gzip 38.1 MB"). */
export interface PhaseSummary {
  bytes?: number;
  detail?: string;
}

/**
 * The plain line when a phase starts.
 *
 *   ("layer base", "building 412 entries") → "  layer base: building 412 entries"
 *   ("sbom", undefined)                    → "  sbom: started"
 */
export function plainStartLine(label: string, detail?: string): string {
  return `  ${label}: ${detail ?? "started"}`;
}

/**
 * The plain line when a phase ends: its duration, then its size and rate when known.
 *
 *   ("layer base", 16_400, { bytes: 98_200_000, detail: "gzip 38.1 MB" }) → "  layer base: done in 16.4 s, 98.2 MB (6.0 MB/s), gzip 38.1 MB"
 *   ("sbom", 42, { detail: "8 components" })                              → "  sbom: done in 42 ms, 8 components"
 *   ("image", 15, {})                                                     → "  image: done in 15 ms"
 */
export function plainEndLine(label: string, ms: number, s: PhaseSummary): string {
  const parts = [`done in ${formatDuration(ms)}`];
  if (s.bytes !== undefined) {
    const rate = formatRate(s.bytes, ms);
    parts.push(`${formatBytes(s.bytes)}${rate ? ` (${rate})` : ""}`);
  }
  if (s.detail) parts.push(s.detail);
  return `  ${label}: ${parts.join(", ")}`;
}

/**
 * The plain line when a phase is cut short (the verb failed while it ran).
 *
 *   ("push sha256:0123456789ab", 2_100) → "  push sha256:0123456789ab: failed after 2.1 s"
 */
export function plainFailLine(label: string, ms: number): string {
  return `  ${label}: failed after ${formatDuration(ms)}`;
}

/** The state a live line is drawn from. */
export interface LiveState {
  label: string;
  /** bytes done so far */
  done: number;
  /** bytes expected, when known */
  total?: number;
  elapsedMs: number;
}

const SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏";
const BAR_WIDTH = 20;

/**
 * The live line of a running phase on a terminal: a bar and percentage when the total is
 * known (clamped: an estimate may be passed), else a spinner; bytes, rate and elapsed time.
 *
 *   { "layer base", 49_100_000 of 98_200_000, 8_000 ms } → "  ⠼ layer base [██████████░░░░░░░░░░]  50% 49.1 MB/98.2 MB 6.1 MB/s 8.0 s"
 *   { "sbom", 0, no total, 1_250 ms }                     → "  ⠋ sbom 1.3 s"   (the spinner turns every 0.125 s)
 *   { "pull sha256:0123", 3_000_000, no total, 2_000 ms } → "  ⠦ pull sha256:0123 3.0 MB 1.5 MB/s 2.0 s"
 */
export function liveLine(s: LiveState): string {
  const spin = SPINNER[Math.floor(s.elapsedMs / 125) % SPINNER.length];
  const parts = [`  ${spin} ${s.label}`];
  if (s.total !== undefined && s.total > 0) {
    const f = Math.min(1, Math.max(0, s.done / s.total));
    const full = Math.round(f * BAR_WIDTH);
    parts.push(`[${"█".repeat(full)}${"░".repeat(BAR_WIDTH - full)}]`, `${String(Math.round(f * 100)).padStart(3)}%`);
    parts.push(`${formatBytes(Math.min(s.done, s.total))}/${formatBytes(s.total)}`);
  } else if (s.done > 0) parts.push(formatBytes(s.done));
  const rate = formatRate(s.done, s.elapsedMs);
  if (rate) parts.push(rate);
  parts.push(formatDuration(s.elapsedMs));
  return parts.join(" ");
}

/** A running phase. `end` and `fail` are idempotent: the first one counts. */
export interface Phase {
  /** bytes done so far, and the total when it became known */
  update(done: number, total?: number): void;
  end(summary?: PhaseSummary): void;
  fail(): void;
}

export interface Progress {
  readonly mode: ProgressMode;
  /** starts a phase; `detail` is what the plain start line says after the label */
  start(label: string, opts?: { detail?: string; total?: number }): Phase;
  /** a one-off line (a cached layer, a skipped blob): plain on every stream, above any bar */
  note(line: string): void;
  /** fails every phase still running and stops the bars; call it before an error is printed */
  close(): void;
}

export interface ProgressDeps {
  stream: { write(s: string): unknown; isTTY?: boolean };
  now: () => number;
  /** for the live line's ✔/✘ */
  style: Style;
  /** NO_COLOR, TERM, KILN_PROGRESS are read here */
  env: NodeJS.ProcessEnv;
}

/** Shows nothing: --json, --quiet. */
const OFF: Progress = {
  mode: "off",
  start: () => ({ update: () => undefined, end: () => undefined, fail: () => undefined }),
  note: () => undefined,
  close: () => undefined,
};

/** The progress for a verb's stderr: `progressFor({ json: opts.json })` in a verb. */
export function progressFor(opts: { json?: boolean; quiet?: boolean }, deps: Partial<ProgressDeps> = {}): Progress {
  const stream = deps.stream ?? process.stderr;
  const env = deps.env ?? process.env;
  const mode = progressMode(stream, env, { json: opts.json, quiet: opts.quiet || isQuiet(env) });
  const full: ProgressDeps = { stream, env, now: deps.now ?? Date.now, style: deps.style ?? styleFor(stream, env) };
  if (mode === "off") return OFF;
  return mode === "plain" ? plainProgress(full) : liveProgress(full);
}

/** KILN_PROGRESS=0/off/false silences progress like --quiet (for scripts that cannot pass a flag). */
function isQuiet(env: NodeJS.ProcessEnv): boolean {
  return ["0", "off", "false", "no"].includes((env.KILN_PROGRESS ?? "").toLowerCase());
}

/** One line per start and per end; nothing in between. */
export function plainProgress(deps: ProgressDeps): Progress {
  const open = new Set<() => void>();
  const write = (line: string) => void deps.stream.write(`${line}\n`);
  return {
    mode: "plain",
    start(label, opts = {}) {
      const t0 = deps.now();
      let closed = false;
      const finish = (line: () => string) => {
        if (closed) return;
        closed = true;
        open.delete(fail);
        write(line());
      };
      const fail = () => finish(() => plainFailLine(label, deps.now() - t0));
      open.add(fail);
      write(plainStartLine(label, opts.detail));
      return { update: () => undefined, end: (s = {}) => finish(() => plainEndLine(label, deps.now() - t0, s)), fail };
    },
    note: write,
    close: () => [...open].forEach((f) => f()),
  };
}

// Loaded only when a bar is drawn: a pipe never needs it.
const loadBars = (): typeof import("cli-progress") => createRequire(import.meta.url)("cli-progress") as typeof import("cli-progress");

/**
 * Live bars: one line per running phase, redrawn by cli-progress; a finished phase leaves
 * one ✔ line above the bars (its plain end line), a failed one a ✘ line.
 */
export function liveProgress(deps: ProgressDeps): Progress {
  const { MultiBar } = loadBars();
  let bars: MultiBarType | undefined;
  const running = new Map<SingleBar, LiveState & { t0: number }>();
  const failers = new Set<() => void>();
  const options: BarOptions = {
    // cli-progress writes, checks isTTY and reads columns: all a tty.WriteStream has.
    stream: deps.stream as NodeJS.WritableStream,
    clearOnComplete: true,
    hideCursor: true,
    // Its own Ctrl-C handler would stop the bars and keep the process running: ours (below)
    // gives the cursor back, then lets the signal end the process as it would without bars.
    gracefulExit: false,
    fps: 8,
    // The line is ours (liveLine); cli-progress only places and redraws it.
    format: (_o, _p, payload: { state: LiveState & { t0: number } }) => liveLine({ ...payload.state, elapsedMs: deps.now() - payload.state.t0 }),
  };
  // A persisted line: above the bars while some run, else straight to the stream.
  const persist = (line: string) => {
    if (bars) {
      bars.log(`${line}\n`);
      bars.update();
    } else deps.stream.write(`${line}\n`);
  };
  const onSignal = (signal: NodeJS.Signals) => {
    stopBars();
    process.kill(process.pid, signal);
  };
  const stopBars = () => {
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
    bars?.stop();
    bars = undefined;
  };
  const drop = (bar: SingleBar) => {
    running.delete(bar);
    bars?.remove(bar);
    if (running.size === 0) stopBars();
  };
  return {
    mode: "live",
    start(label, opts = {}) {
      if (!bars) {
        bars = new MultiBar(options);
        process.once("SIGINT", onSignal);
        process.once("SIGTERM", onSignal);
      }
      const state = { label, done: 0, total: opts.total, elapsedMs: 0, t0: deps.now() };
      const bar = bars.create(opts.total ?? 0, 0, { state });
      running.set(bar, state);
      let closed = false;
      const finish = (ok: boolean, s: PhaseSummary) => {
        if (closed) return;
        closed = true;
        failers.delete(fail);
        const ms = deps.now() - state.t0;
        const text = (ok ? plainEndLine(label, ms, s) : plainFailLine(label, ms)).replace(/^ {2}/, "");
        persist(`  ${ok ? green(deps.style, "✔") : red(deps.style, "✘")} ${text}`);
        drop(bar);
      };
      const fail = () => finish(false, {});
      failers.add(fail);
      return {
        update(done, total) {
          state.done = done;
          if (total !== undefined) state.total = total;
          bar.update(done);
        },
        end: (s = {}) => finish(true, s),
        fail,
      };
    },
    note: persist,
    close: () => [...failers].forEach((f) => f()),
  };
}

/** The image library's progress events (bake, base import), as phases and notes. */
export function imageEvents(progress: Progress): (e: ProgressEvent) => void {
  const open = new Map<string, Phase>();
  return (e) => {
    // Warnings are printed once, after the result; "collect" is covered by the layer's own phase.
    if (e.phase === "warning" || e.phase === "collect") return;
    if (e.step === "start") {
      open.get(e.phase)?.fail();
      open.set(e.phase, progress.start(e.phase, { detail: e.detail, total: e.total }));
    } else if (e.step === "update") open.get(e.phase)?.update(e.bytes ?? 0, e.total);
    else if (e.step === "end") {
      const detail = [e.stored !== undefined ? `gzip ${formatBytes(e.stored)}` : undefined, e.detail].filter((x) => x !== undefined).join(", ");
      open.get(e.phase)?.end({ bytes: e.bytes, ...(detail ? { detail } : {}) });
      open.delete(e.phase);
    } else progress.note(`  ${e.phase}${e.detail ? ` ${e.detail}` : ""}`);
  };
}

/** A registry transfer's per-blob progress (push, pull) as one phase per blob sent or fetched. */
export function blobEvents(progress: Progress, verb: "push" | "pull"): (p: BlobProgress) => void {
  const open = new Map<string, Phase>();
  return (p) => {
    const label = p.digest.slice(0, 19);
    if (p.state === "skipped") progress.note(`  ${label}: ${formatBytes(p.size)} already ${verb === "push" ? "in the registry" : "in the store"}`);
    else if (p.state === "start") open.set(p.digest, progress.start(label, { detail: `${verb === "push" ? "uploading" : "downloading"} ${formatBytes(p.size)}`, total: p.size }));
    else if (p.state === "progress") open.get(p.digest)?.update(p.done, p.size);
    else {
      open.get(p.digest)?.end({ bytes: p.size });
      open.delete(p.digest);
    }
  };
}

/**
 * Runs a verb's work with its progress, and fails (and stops drawing) the phases still open
 * when the work throws, so an error is printed on a clean line.
 */
export async function withProgress<T>(progress: Progress, work: (p: Progress) => Promise<T>): Promise<T> {
  try {
    return await work(progress);
  } finally {
    progress.close();
  }
}

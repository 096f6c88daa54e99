// Drives main.js as a child process: tests and `kiln demo` start load, take
// snapshots around each step (the difference is that step's requests and
// failures), and stop it. The child gets --stop-on-stdin-close, so load
// never outlives the process that asked for it.

import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { KilnError } from "../errors.js";
import { checkLoopbackUrl, toArgs, type LoadgenOptions } from "./options.js";
import type { FinalTotals, Totals } from "./stats.js";

export type { FinalTotals, Totals } from "./stats.js";
/** the same as Totals (the name `kiln demo` uses) */
export type LoadTotals = Totals;

export type LoadOptions = Partial<Omit<LoadgenOptions, "stopOnStdinClose">> & {
  url: string;
  /** main.js to run (default: the one next to this file) */
  mainPath?: string;
};

export interface LoadHandle {
  /** the load generator's pid */
  readonly pid: number | undefined;
  /** Fresh totals, asked of the generator now (after it stopped: the final totals). */
  snapshot(): Promise<Totals>;
  /** The latest totals received (periodic report or snapshot), without asking. */
  mark(): Totals;
  /** Asks the generator to stop; resolves with its final totals. */
  stop(): Promise<FinalTotals>;
  /** Resolves with the final totals however the run ends (bound reached, stop, signal). */
  readonly done: Promise<FinalTotals>;
}

const SNAPSHOT_TIMEOUT_MS = 5000;
const STOP_TIMEOUT_MS = 10_000;

export function emptyTotals(): Totals {
  return { t: 0, requests: 0, failed: 0, byStatus: {}, byVersion: {}, maxCounter: null, counterWentBackwards: false, latencyMs: { p50: 0, p90: 0, p99: 0, max: 0 } };
}

/** What happened between two snapshots (counts only; latency and counter are taken from `later`). */
export function diffTotals(earlier: Totals, later: Totals): Totals {
  const sub = (a: Record<string, number>, b: Record<string, number>) => {
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(b)) {
      const d = v - (a[k] ?? 0);
      if (d !== 0) out[k] = d;
    }
    return out;
  };
  return {
    ...later,
    t: later.t - earlier.t,
    requests: later.requests - earlier.requests,
    failed: later.failed - earlier.failed,
    byStatus: sub(earlier.byStatus, later.byStatus),
    byVersion: sub(earlier.byVersion, later.byVersion),
  };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string, onTimeout?: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout?.();
      reject(new KilnError("KILN_E_INTERNAL", `load generator: no ${what} within ${ms}ms`));
    }, ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export function startLoad(opts: LoadOptions): LoadHandle {
  const checked = checkLoopbackUrl(opts.url);
  if (!checked.ok) throw new KilnError("KILN_E_USAGE", checked.error, { hint: "aim load at this machine: http://127.0.0.1:PORT/" });
  const { mainPath, ...rest } = opts;
  const main = mainPath ?? new URL("./main.js", import.meta.url).pathname;
  const child: ChildProcess = spawn(process.execPath, [main, ...toArgs({ ...rest, stopOnStdinClose: true })], {
    stdio: ["pipe", "pipe", "pipe"],
  });

  let last = emptyTotals();
  let final: FinalTotals | undefined;
  let stderr = "";
  let nextId = 1;
  const waiting = new Map<number, (t: Totals) => void>();

  let resolveDone!: (f: FinalTotals) => void;
  let rejectDone!: (e: unknown) => void;
  const done = new Promise<FinalTotals>((res, rej) => {
    resolveDone = res;
    rejectDone = rej;
  });
  done.catch(() => undefined); // the caller may never look

  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (d: string) => {
    stderr = (stderr + d).slice(-4000);
  });
  child.stdin?.on("error", () => undefined); // the child may be gone already

  createInterface({ input: child.stdout! }).on("line", (text) => {
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return;
    }
    if (typeof o.error === "string") {
      rejectDone(new KilnError("KILN_E_USAGE", `load generator: ${o.error}`));
      return;
    }
    if (o.done === true) {
      final = o as unknown as FinalTotals;
      last = final;
      for (const w of waiting.values()) w(final);
      waiting.clear();
      resolveDone(final);
      return;
    }
    const { snapshot, ...totals } = o;
    last = totals as unknown as Totals;
    if (typeof snapshot === "number") {
      waiting.get(snapshot)?.(last);
      waiting.delete(snapshot);
    }
  });

  child.on("exit", (code, signal) => {
    if (final) return;
    const err = new KilnError("KILN_E_INTERNAL", `load generator exited (${signal ?? code}) without final totals: ${stderr.trim().split("\n").slice(-3).join(" | ")}`);
    for (const w of waiting.values()) w(last);
    waiting.clear();
    rejectDone(err);
  });

  const send = (cmd: object) => {
    if (child.stdin && !child.stdin.destroyed) child.stdin.write(JSON.stringify(cmd) + "\n");
  };

  return {
    pid: child.pid,
    done,
    mark: () => last,
    snapshot(): Promise<Totals> {
      if (final) return Promise.resolve(final);
      const id = nextId++;
      const p = new Promise<Totals>((res) => waiting.set(id, res));
      send({ cmd: "snapshot", id });
      return withTimeout(p, SNAPSHOT_TIMEOUT_MS, "snapshot", () => waiting.delete(id));
    },
    stop(): Promise<FinalTotals> {
      if (final) return Promise.resolve(final);
      send({ cmd: "stop" });
      child.stdin?.end();
      return withTimeout(done, STOP_TIMEOUT_MS, "final totals", () => child.kill("SIGKILL"));
    },
  };
}

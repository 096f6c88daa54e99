// Starting a detached process off the controller's event loop.
//
// Node's spawn returns only once the child has exec'd (libuv forks, then waits on a pipe for the
// exec). On a host whose cores are busy serving, the new child waits its turn on a CPU first: a
// sandbox or forwarder spawn took 75–490 ms under the bench's load, against 5 ms idle, and a
// batch of launches blocked the controller's loop — its probes, drains and router reads — for up
// to half a second. A worker thread does the fork and exec here; the loop goes on meanwhile.
//
// The child gets descriptors of ours by number (the threads share one descriptor table): the
// caller keeps them open until `spawn` settles. Bytes for a pipe (bwrap's `--args` and seccomp
// program) are written and the pipe closed by the thread that spawned.
//
// The record comes before the exec. A spawn with a record starts `/bin/sh`, held on a gate pipe
// (`gatedCommand`): the thread writes the child's pid and /proc start time into a JSON file
// (meta.json, net.json; exec keeps both), then releases the gate, and only then does sh exec the
// real program in the same process. A controller killed anywhere before the release closes the
// gate unread: sh exits without running anything. So no sandbox or forwarder runs that no record
// names. A record that cannot be written (a full disk) kills sh, again before the exec.
//
// `KILN_SPAWN_THREADS=0` (or `threads: 0`) spawns on the calling thread, as before.

import { spawn, type ChildProcess } from "node:child_process";
import type { Writable } from "node:stream";
import { Worker } from "node:worker_threads";
import { KilnError } from "../../errors.js";
import { findExecutable } from "./executable.js";
import { writeRecordFile } from "./meta.js";
import { readStat } from "./procfs.js";

export interface SpawnRequest {
  file: string;
  args: string[];
  env: Record<string, string>;
  cwd?: string;
  /** the child's descriptor i: one of ours (kept open by the caller until spawn settles), nothing, or bytes on a pipe closed after them */
  stdio: (number | "ignore" | { write: string | Uint8Array })[];
  /** written atomically as soon as the spawn returns: `fields` plus the child's `pid` and `startTime` (-1 if /proc had none) */
  record?: { dir: string; file: string; fields: Record<string, unknown>; indent?: number };
}

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Spawned {
  pid: number;
  /** /proc start time, -1 when it could not be read */
  startTime: number;
  /** settles when the child exits; never rejects */
  exit: Promise<ChildExit>;
}

export interface Spawner {
  /** Starts `req` detached (its own session and process group). Rejects (SpawnFailure) when nothing runs. */
  spawn(req: SpawnRequest): Promise<Spawned>;
}

/** The spawn failed: nothing started ("spawn"), or the child ran but its record could not be written and it was killed ("record"). */
export class SpawnFailure extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
    readonly stage: "spawn" | "record",
  ) {
    super(message);
  }
}

/** KILN_SPAWN_THREADS: absent or empty → DEFAULT_SPAWN_THREADS; 0 → the calling thread; 1–8 threads. */
export function parseSpawnThreads(text: string | undefined): number {
  if (text === undefined || text.trim() === "") return DEFAULT_SPAWN_THREADS;
  const t = text.trim();
  if (!/^\d+$/.test(t) || Number(t) > 8)
    throw new KilnError("KILN_E_USAGE", `KILN_SPAWN_THREADS=${JSON.stringify(text)} is not a number of threads from 0 to 8`, {
      hint: `give how many threads start instances (default ${DEFAULT_SPAWN_THREADS}), or 0 to start them on the controller's own thread`,
    });
  return Number(t);
}

/** Threads by default: a batch's launches (3 on two cores) spawn side by side. */
export const DEFAULT_SPAWN_THREADS = 3;

/** sh's exit code when its gate closed unread: the spawner died before the child's record was written. */
export const GATE_CLOSED_EXIT = 111;

/**
 * `file args` behind a gate on the child's descriptor `gateFd`: sh waits for one line there, then
 * execs the program with that descriptor closed (same pid, same start time). End of file instead
 * (our end closed unread) makes it exit GATE_CLOSED_EXIT, the program never run.
 *
 *   gatedCommand("/usr/bin/bwrap", ["--die-with-parent", "x"], 6)
 *     → /bin/sh -c 'read -r kiln_gate <&6 || exit 111; exec "$0" "$@" 6<&-' /usr/bin/bwrap --die-with-parent x
 */
export function gatedCommand(file: string, args: readonly string[], gateFd: number): { file: string; args: string[] } {
  if (!Number.isInteger(gateFd) || gateFd < 3 || gateFd > 9) throw new Error(`gate descriptor ${gateFd}: sh redirects only 3–9 here`);
  return { file: "/bin/sh", args: ["-c", `read -r kiln_gate <&${gateFd} || exit ${GATE_CLOSED_EXIT}; exec "$0" "$@" ${gateFd}<&-`, file, ...args] };
}

/**
 * The fork, the record and the pipes, on whichever thread calls it. `onExit` is told the child's
 * exit (on this thread). Used by both spawners; the worker thread runs it for the pool.
 */
export function spawnHere(req: SpawnRequest, onExit: (e: ChildExit) => void): Promise<{ pid: number; startTime: number }> {
  let child: ChildProcess;
  // With a record, the child waits on a gate (the descriptor after the caller's) until it is written.
  const gateFd = req.record ? Math.max(3, req.stdio.length) : undefined;
  try {
    let { file, args } = req;
    if (gateFd !== undefined) {
      const found = findExecutable(file, req.env.PATH);
      if (!found.ok) return Promise.reject(new SpawnFailure(`cannot start ${file}: spawn ${file} ${found.code}`, found.code, "spawn"));
      ({ file, args } = gatedCommand(found.file, args, gateFd));
    }
    const stdio = req.stdio.map((s) => (typeof s === "object" ? "pipe" : s)) as ("pipe" | "ignore" | number)[];
    if (gateFd !== undefined) {
      while (stdio.length < gateFd) stdio.push("ignore");
      stdio.push("pipe");
    }
    child = spawn(file, args, { detached: true, stdio, env: req.env, cwd: req.cwd ?? "/" });
  } catch (e) {
    return Promise.reject(new SpawnFailure(`cannot start ${req.file}: ${(e as Error).message}`, (e as NodeJS.ErrnoException).code, "spawn"));
  }
  const pid = child.pid;
  if (pid === undefined) {
    return new Promise((_, reject) =>
      child.once("error", (e: NodeJS.ErrnoException) => reject(new SpawnFailure(`cannot start ${req.file}: ${e.message}`, e.code, "spawn"))),
    );
  }
  child.on("error", () => undefined);
  const gate = gateFd !== undefined ? (child.stdio[gateFd] as Writable | null) : null;
  gate?.on("error", () => undefined); // sh gone before the release: its exit says so
  // A zombie still has its stat; only a reaped process has none, and this thread reaps only on a later turn.
  const startTime = readStat(pid)?.startTime ?? -1;
  if (req.record) {
    try {
      const r = req.record;
      writeRecordFile(r.dir, r.file, { ...r.fields, pid, startTime }, r.indent);
    } catch (e) {
      try {
        process.kill(-pid, "SIGKILL"); // still sh on its gate: the program never ran
      } catch {
        // gone already
      }
      gate?.destroy();
      return Promise.reject(new SpawnFailure(`cannot record ${req.file}'s pid: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, (e as NodeJS.ErrnoException).code, "record"));
    }
  }
  child.once("exit", (code, signal) => onExit({ code, signal }));
  req.stdio.forEach((s, i) => {
    if (typeof s !== "object") return;
    const pipe = child.stdio[i] as Writable | null;
    pipe?.on("error", () => undefined); // the child died before reading: its own startup check says so
    pipe?.end(s.write);
  });
  gate?.end("go\n"); // recorded: now the program may run
  child.unref();
  return Promise.resolve({ pid, startTime });
}

/** On the calling thread (KILN_SPAWN_THREADS=0): the spawn blocks its event loop until the exec. */
export class InlineSpawner implements Spawner {
  async spawn(req: SpawnRequest): Promise<Spawned> {
    let done!: (e: ChildExit) => void;
    const exit = new Promise<ChildExit>((r) => (done = r));
    const { pid, startTime } = await spawnHere(req, (e) => done(e));
    return { pid, startTime, exit };
  }
}

/** Messages between the pool and its threads (spawn-worker.ts). */
export type ToWorker = { id: number; req: SpawnRequest };
export type FromWorker =
  | { id: number; kind: "spawned"; pid: number; startTime: number }
  | { id: number; kind: "failed"; message: string; code?: string; stage: "spawn" | "record" }
  | { id: number; kind: "exit"; exit: ChildExit };

interface Job {
  req: SpawnRequest;
  resolve: (s: Spawned) => void;
  reject: (e: Error) => void;
  exited: (e: ChildExit) => void;
  exit: Promise<ChildExit>;
}

interface Thread {
  worker: Worker;
  /** spawns sent and not yet answered */
  busy: number;
  /** jobs whose child it spawned or is spawning, by id (until their exit) */
  jobs: Set<number>;
  /** it has answered once: its code loaded and ran */
  answered: boolean;
}

/**
 * Up to `threads` worker threads, started on first use and kept (holding the process up only while
 * a spawn is awaited). A spawn goes to the least busy thread. A thread that dies fails its pending spawns;
 * from then on spawns run inline, said once in the log. Children a dead thread started are not
 * lost: their records are on disk and the provider reads their exit from bwrap's status line.
 */
export class ThreadSpawner implements Spawner {
  private readonly threads: Thread[] = [];
  private readonly jobs = new Map<number, Job>();
  private nextId = 1;
  private broken: Error | undefined;
  private readonly inline = new InlineSpawner();

  constructor(
    private readonly size: number,
    private readonly log: (line: string) => void = () => undefined,
    /** the thread's code (tests give one that cannot load) */
    private readonly script: URL = new URL("./spawn-worker.js", import.meta.url),
  ) {}

  spawn(req: SpawnRequest): Promise<Spawned> {
    if (this.broken) return this.inline.spawn(req);
    const t = this.pick();
    const id = this.nextId++;
    return new Promise<Spawned>((resolve, reject) => {
      let exited!: (e: ChildExit) => void;
      const exit = new Promise<ChildExit>((r) => (exited = r));
      this.jobs.set(id, { req, resolve, reject, exited, exit });
      t.jobs.add(id);
      if (t.busy++ === 0) t.worker.ref(); // a spawn awaited holds the process up, as a spawn on the loop did
      t.worker.postMessage({ id, req } satisfies ToWorker);
    });
  }

  /** Ends the threads (tests; a controller's threads end with its process). Children keep running. */
  async close(): Promise<void> {
    const threads = this.threads.splice(0);
    await Promise.all(threads.map((t) => t.worker.terminate()));
  }

  private pick(): Thread {
    const idle = this.threads.find((t) => t.busy === 0);
    if (idle) return idle;
    if (this.threads.length < Math.max(1, this.size)) return this.start();
    return this.threads.reduce((a, b) => (b.busy < a.busy ? b : a));
  }

  private start(): Thread {
    // Not the process's own flags (`--input-type`, `--eval`…): they are not the thread's to run.
    const worker = new Worker(this.script, { execArgv: [] });
    const t: Thread = { worker, busy: 0, jobs: new Set(), answered: false };
    worker.unref();
    worker.on("message", (m: FromWorker) => this.onMessage(t, m));
    worker.on("error", (e) => this.lose(t, e));
    worker.on("exit", (code) => this.lose(t, new Error(`a spawn thread exited with code ${code}`)));
    this.threads.push(t);
    return t;
  }

  private onMessage(t: Thread, m: FromWorker): void {
    t.answered = true;
    const job = this.jobs.get(m.id);
    if (!job) return;
    if (m.kind === "spawned") {
      this.done(t);
      job.resolve({ pid: m.pid, startTime: m.startTime, exit: job.exit });
    } else if (m.kind === "failed") {
      this.done(t);
      t.jobs.delete(m.id);
      this.jobs.delete(m.id);
      job.reject(new SpawnFailure(m.message, m.code, m.stage));
    } else {
      t.jobs.delete(m.id);
      this.jobs.delete(m.id);
      job.exited(m.exit);
    }
  }

  /** One spawn answered; an idle thread never holds the process up (a child's exit did not either). */
  private done(t: Thread): void {
    if (--t.busy === 0) t.worker.unref();
  }

  /** A thread is gone: what it was spawning fails; exits it would have reported are never told. */
  private lose(t: Thread, e: Error): void {
    const i = this.threads.indexOf(t);
    if (i < 0) return; // closed, or already handled
    this.threads.splice(i, 1);
    if (!this.broken) this.log(`spawn thread failed (${e.message}): instances are now started on the controller's own thread`);
    this.broken = e;
    for (const id of t.jobs) {
      const job = this.jobs.get(id);
      this.jobs.delete(id);
      if (!job) continue;
      // A thread that never answered never ran a spawn (its code did not load): those spawns run
      // here. One that did may have forked already: a second start would leave the first unrecorded.
      if (!t.answered) void this.inline.spawn(job.req).then(job.resolve, job.reject);
      else job.reject(new SpawnFailure(`the spawn thread failed: ${e.message}`, undefined, "spawn"));
    }
    t.jobs.clear();
  }
}

/** The spawner for `threads` (0: inline). */
export function makeSpawner(threads: number, log?: (line: string) => void): Spawner {
  return threads > 0 ? new ThreadSpawner(threads, log) : new InlineSpawner();
}

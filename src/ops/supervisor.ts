// The controller's supervisor (`kiln up`): a small detached process that starts the
// controller, and starts it again when it dies of a crash or a signal, with backoff. It is
// the only process that launches the controller while it runs, so a user's `kiln up` or a
// test that restarts the controller never races it into two controllers on one state.
//
// It never touches instances or traffic: the proxy keeps serving while the controller is
// down, and the restarted controller resumes any rollout from its state.

import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { pidAlive, readPidFile } from "../home.js";
import { logToFile } from "../log-line.js";
import { ControllerClient } from "../server/client.js";
import { computeBackoff } from "./reconnect.js";

export interface RestartPolicy {
  /** wait before the first restart of a run of crashes, ms */
  initialMs: number;
  /** no wait is longer, ms */
  maxMs: number;
  /** a controller that ran this long was healthy: the next crash starts the backoff over, ms */
  stableMs: number;
  /** this many starts in a row that never answered (bad config, port taken): the supervisor gives up */
  maxFailedStarts: number;
}

// Short waits: a restart costs a second of CPU, while every second without a controller is a
// second no rollout moves and no instance is healed (the kill tests restart it dozens of times).
export const DEFAULT_RESTART: RestartPolicy = { initialMs: 200, maxMs: 2000, stableMs: 10_000, maxFailedStarts: 3 };

export type Exit = { code: number | null; signal: NodeJS.Signals | null };

export type RestartDecision = { action: "stop"; why: string } | { action: "restart"; delayMs: number; crashes: number } | { action: "give-up"; why: string };

/**
 * What to do when the controller exits. `crashes`: restarts since the last stable run;
 * `failedStarts`: starts in a row that never answered (counting this one if it did not).
 *
 *   exit 0 (shutdown, SIGTERM handled)               → stop: the controller was asked to
 *   SIGKILL after 2 s, crashes 0                      → restart in 200 ms (crashes 1)
 *   SIGKILL after 2 s, crashes 3                      → restart in 1600 ms (crashes 4)
 *   exit 1 after 60 s, crashes 5 (it ran stably)      → restart in 200 ms (crashes 1)
 *   exit 1 never answered, failedStarts 3             → give up: it cannot start
 *   SIGKILL after 1 s, crashes 9                      → restart in 2000 ms (the cap)
 */
/**
 * Starts in a row that never answered, after this exit. Only a controller that exits on its own
 * (an exit code: bad config, a port taken) before it answered failed to start; one killed by a
 * signal (SIGKILL from an operator or a test, the OOM killer) did not show it cannot start, and a
 * supervisor that gave up on it would leave the service without a controller. The supervisor polls
 * for the first answer, so a kill can land between the controller's first answer and its poll.
 *
 *   answered                         → 0
 *   exit 1 before answering, 2 before → 3 (planRestart gives up at 3)
 *   SIGKILL before answering, 2 before → 2 (unchanged: restarted with backoff)
 */
export function failedStartsAfter(previous: number, answered: boolean, exit: Exit): number {
  if (answered) return 0;
  return exit.signal !== null ? previous : previous + 1;
}

export function planRestart(p: RestartPolicy, exit: Exit, ranMs: number, crashes: number, failedStarts: number): RestartDecision {
  if (exit.signal === null && exit.code === 0) return { action: "stop", why: "the controller exited normally" };
  if (failedStarts >= p.maxFailedStarts) return { action: "give-up", why: `the controller exited ${failedStarts} times in a row before it answered` };
  const n = ranMs >= p.stableMs ? 0 : crashes;
  // the same doubling, capped, as a watcher waiting for the controller; a supervisor has no budget
  return { action: "restart", delayMs: computeBackoff({ initialMs: p.initialMs, maxMs: p.maxMs, budgetMs: Infinity }, n, 0)!, crashes: n + 1 };
}

export interface SupervisorOptions {
  /** node script and arguments of the controller */
  script: string;
  args: string[];
  socketPath: string;
  controllerPidFile: string;
  logFile: string;
  policy?: RestartPolicy;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Run until SIGTERM/SIGINT, a normal exit of the controller, or too many failed starts; resolves with the exit code for the supervisor. */
export async function supervise(o: SupervisorOptions): Promise<number> {
  const policy = o.policy ?? DEFAULT_RESTART;
  const client = new ControllerClient(o.socketPath);
  // Never throws: a full disk drops log lines, it does not end the supervisor (log-line.ts).
  const log = logToFile(o.logFile, { stamp: () => `${new Date().toISOString()} supervisor ${process.pid}: ` });
  let stopping = false;
  let wake: (() => void) | undefined;
  const stop = () => {
    stopping = true;
    wake?.();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  let crashes = 0;
  let failedStarts = 0;
  log("supervising the controller");
  while (!stopping) {
    const started = Date.now();
    // A controller still answering (the supervisor itself was restarted) is adopted, not doubled.
    const adopted = readPidFile(o.controllerPidFile);
    let exited: Promise<Exit>;
    let pid: number;
    if (adopted !== undefined && (await client.ping())) {
      pid = adopted;
      exited = (async () => {
        while (pidAlive(pid)) await sleep(200);
        return { code: null, signal: null }; // not our child: how it ended is unknown, so it is restarted
      })();
      log(`adopted controller ${pid}`);
    } else {
      const fd = openSync(o.logFile, "a");
      try {
        // Its own process group: a signal to the supervisor's group never reaches the controller.
        const child = spawn(process.execPath, [o.script, ...o.args], { detached: true, stdio: ["ignore", fd, fd] });
        exited = new Promise<Exit>((r) => child.once("exit", (code, signal) => r({ code, signal })));
        pid = child.pid ?? -1;
      } finally {
        closeSync(fd);
      }
    }
    let answered = false;
    let done: Exit | undefined;
    void exited.then((e) => {
      done = e;
      wake?.();
    });
    while (!done && !stopping) {
      if (!answered && (await client.ping())) answered = true;
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, answered ? 1000 : 200);
      });
    }
    if (stopping) break;
    const exit = done!;
    failedStarts = failedStartsAfter(failedStarts, answered, exit);
    const decision = planRestart(policy, { code: exit.code ?? (exit.signal ? null : 1), signal: exit.signal }, Date.now() - started, crashes, failedStarts);
    const how = exit.signal ? `signal ${exit.signal}` : `code ${exit.code ?? "unknown"}`;
    if (decision.action === "stop") {
      log(`controller ${pid} exited (${how}): not restarting`);
      return 0;
    }
    if (decision.action === "give-up") {
      log(`controller ${pid} exited (${how}): giving up, ${decision.why}`);
      return 1;
    }
    crashes = decision.crashes;
    log(`controller ${pid} exited (${how}) after ${((Date.now() - started) / 1000).toFixed(1)} s: restarting in ${decision.delayMs} ms`);
    await new Promise<void>((r) => {
      wake = r;
      setTimeout(r, decision.delayMs);
    });
  }
  log("stopped (the controller, if running, is left to `kiln down`)");
  return 0;
}

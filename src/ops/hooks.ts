// Hooks: the user's commands kiln runs on the deployer's side (this CLI process, never the
// controller) around a change: pre-deploy, post-deploy, pre-promotion, post-rollback. Each is
// told the release's facts in KILN_* variables; its output is streamed to the terminal and
// recorded in the fleet's events; its outcome is a row of the audit trail.
//
// A failing pre-* hook refuses the change before anything was asked of the controller
// (KILN_E_HOOK, exit 1, its exit code and last lines in the message). A failing post-* hook is
// reported and recorded, and the change stands: it already happened.
//
// For other verbs (e.g. the promotion verb): build a HookContext with hookContext(), then
//   await runHook(ctx, "pre-promotion", facts)    // throws KilnError KILN_E_HOOK when it fails
// and do nothing else when it throws.

import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import type { HookName, HooksSpec } from "../config/types.js";
import { KilnError } from "../errors.js";
import type { RecordRequest } from "../server/client.js";

export type { HookName };
export const HOOK_NAMES: readonly HookName[] = ["pre-deploy", "post-deploy", "pre-promotion", "post-rollback"];

/** What a hook is told about the change (its KILN_* environment). */
export interface ReleaseFacts {
  service: string;
  /** the environment (staging, production…); KILN_ENV is empty when none is named */
  env?: string;
  /** the target release's version, image reference and digest */
  version?: string;
  ref?: string;
  digest?: string;
  /** the digest live before the change (empty on a first deploy) */
  previousDigest?: string;
  strategy?: string;
  actor: string;
  reason?: string;
  /** the command line that asked for the change */
  command?: string;
  /** post-* hooks: the release id (r7) and how the change ended (live, rolled-back, failed) */
  release?: string;
  outcome?: string;
  /** post-rollback: "manual" (`kiln rollback`) or "automatic" (a failed deploy rolled back) */
  rollback?: "manual" | "automatic";
  /** pre-promotion: the environment the release is promoted from */
  fromEnv?: string;
}

/**
 * The variables a hook gets on top of kiln's own environment. Every name is always set (empty
 * when unknown), so a hook can rely on `${KILN_DIGEST}` under `set -u`.
 *
 *   pre-deploy of hello 2.0.0, sha256:b…, live sha256:a…, rolling, by dev@laptop
 *     → KILN_HOOK=pre-deploy KILN_SERVICE=hello KILN_ENV= KILN_VERSION=2.0.0 KILN_DIGEST=sha256:b…
 *       KILN_PREVIOUS_DIGEST=sha256:a… KILN_STRATEGY=rolling KILN_ACTOR=dev@laptop KILN_REASON= …
 *   first deploy → KILN_PREVIOUS_DIGEST=
 */
export function hookEnv(hook: HookName, f: ReleaseFacts): Record<string, string> {
  return {
    KILN_HOOK: hook,
    KILN_SERVICE: f.service,
    KILN_ENV: f.env ?? "",
    KILN_VERSION: f.version ?? "",
    KILN_REF: f.ref ?? "",
    KILN_DIGEST: f.digest ?? "",
    KILN_PREVIOUS_DIGEST: f.previousDigest ?? "",
    KILN_STRATEGY: f.strategy ?? "",
    KILN_ACTOR: f.actor,
    KILN_REASON: f.reason ?? "",
    KILN_COMMAND: f.command ?? "",
    KILN_RELEASE: f.release ?? "",
    KILN_OUTCOME: f.outcome ?? "",
    KILN_ROLLBACK: f.rollback ?? "",
    KILN_FROM_ENV: f.fromEnv ?? "",
  };
}

/**
 * How a hook is started: a list is an argv run as is; a string is a shell command line the
 * user wrote, run by /bin/sh -c (kiln adds nothing to it).
 *
 *   ["./hooks/check", "--fast"] → argv ["./hooks/check", "--fast"]
 *   "npm run migrate && echo done" → argv ["/bin/sh", "-c", "npm run migrate && echo done"]
 */
export function hookArgv(command: string | readonly string[]): string[] {
  return typeof command === "string" ? ["/bin/sh", "-c", command] : [...command];
}

/** The command as people read it in messages and the audit trail. */
export function hookText(command: string | readonly string[]): string {
  return typeof command === "string" ? command : command.map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(" ");
}

export interface HookOutcome {
  hook: HookName;
  command: string;
  ok: boolean;
  exitCode?: number;
  signal?: string;
  timedOut: boolean;
  /** it could not be started at all (not found, not executable) */
  startError?: string;
  durationMs: number;
  /** the output lines kept (stdout and stderr as they came, at most MAX_KEPT_LINES) */
  lines: string[];
  /** how many lines were not kept */
  dropped: number;
}

const MAX_KEPT_LINES = 200;
const MAX_LINE = 1000;
/** how many of the last lines a failure's message shows */
export const TAIL_LINES = 10;

/** "exit 3", "killed by SIGKILL", "timed out after 5 s", "could not start: …" */
export function describeEnd(o: Pick<HookOutcome, "exitCode" | "signal" | "timedOut" | "startError">, timeoutMs: number): string {
  if (o.startError) return `could not start: ${o.startError}`;
  if (o.timedOut) return `timed out after ${Math.round(timeoutMs / 100) / 10} s`;
  if (o.signal) return `killed by ${o.signal}`;
  return `exit ${o.exitCode}`;
}

/**
 * Run one hook process and wait for it, bounded: at the timeout its process group gets
 * SIGTERM, and SIGKILL 5 s later. Spawns nothing else; never throws for the hook's failure.
 */
export function execHook(
  hook: HookName,
  command: string | readonly string[],
  facts: ReleaseFacts,
  opts: { cwd: string; timeoutMs: number; onLine?: (line: string) => void; baseEnv?: NodeJS.ProcessEnv; killGraceMs?: number },
): Promise<HookOutcome> {
  const argv = hookArgv(command);
  const started = Date.now();
  const lines: string[] = [];
  let dropped = 0;
  const keep = (raw: string) => {
    const line = raw.length > MAX_LINE ? `${raw.slice(0, MAX_LINE)}…` : raw;
    opts.onLine?.(line);
    if (lines.length < MAX_KEPT_LINES) lines.push(line);
    else {
      // keep the first half and a sliding last half: a failure's last lines matter most
      lines.splice(MAX_KEPT_LINES / 2, 1);
      lines.push(line);
      dropped++;
    }
  };
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: opts.cwd,
      env: { ...(opts.baseEnv ?? process.env), ...hookEnv(hook, facts) },
      stdio: ["ignore", "pipe", "pipe"],
      // its own process group, so a timeout stops what the hook started too
      detached: true,
    });
    let timedOut = false;
    let killer: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      signalGroup(child.pid, "SIGTERM");
      killer = setTimeout(() => signalGroup(child.pid, "SIGKILL"), opts.killGraceMs ?? 5000);
    }, opts.timeoutMs);
    let startError: string | undefined;
    child.on("error", (e: NodeJS.ErrnoException) => {
      startError = `${argv[0]}: ${e.code ?? e.message}`;
    });
    for (const stream of [child.stdout, child.stderr]) createInterface({ input: stream, crlfDelay: Infinity }).on("line", keep);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (killer) clearTimeout(killer);
      const ok = !startError && !timedOut && code === 0;
      resolve({
        hook, command: hookText(command), ok, exitCode: code ?? undefined, signal: signal ?? undefined, timedOut, startError,
        durationMs: Date.now() - started, lines, dropped,
      });
    });
  });
}

function signalGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/** Everything runHook needs besides the hook's name and facts. */
export interface HookContext {
  hooks: HooksSpec;
  /** where hooks run: the directory of kiln.yaml */
  cwd: string;
  /** records the outcome in the fleet's state (the performer's record); a failure to record is only warned about */
  record?: (r: RecordRequest) => Promise<void>;
  /** each output line as it comes (the CLI prints it) */
  onLine?: (hook: HookName, line: string) => void;
  /** a warning for people (e.g. the outcome could not be recorded) */
  warn?: (line: string) => void;
  baseEnv?: NodeJS.ProcessEnv;
}

/**
 * Run the named hook if kiln.yaml defines it (undefined when it does not), stream and record
 * its output, and record its outcome in the audit trail. A failing pre-* hook throws
 * KILN_E_HOOK (exit 1): the caller must then change nothing. A failing post-* hook is
 * returned with ok false; the caller reports it.
 */
export async function runHook(ctx: HookContext, hook: HookName, facts: ReleaseFacts): Promise<HookOutcome | undefined> {
  const command = ctx.hooks[hook];
  if (command === undefined) return undefined;
  const timeoutMs = ctx.hooks.timeout;
  const o = await execHook(hook, command, facts, { cwd: ctx.cwd, timeoutMs, onLine: (l) => ctx.onLine?.(hook, l), baseEnv: ctx.baseEnv });
  const end = describeEnd(o, timeoutMs);
  const summary = `hook ${hook} ${o.ok ? "passed" : "failed"} (${end}, ${(o.durationMs / 1000).toFixed(1)} s): ${o.command}`;
  if (ctx.record) {
    try {
      await ctx.record({
        events: [
          ...o.lines.map((l) => ({ level: "info" as const, message: `[${hook}] ${l}`, release: facts.release })),
          ...(o.dropped ? [{ level: "info" as const, message: `[${hook}] (${o.dropped} more lines not kept)`, release: facts.release }] : []),
          { level: o.ok ? ("info" as const) : hook.startsWith("pre-") ? ("error" as const) : ("warn" as const), message: summary, release: facts.release },
        ],
        changes: [
          {
            actor: facts.actor, command: facts.command ?? `hook ${hook}`, ...(facts.reason ? { reason: facts.reason } : {}), ...(facts.env ? { env: facts.env } : {}),
            action: `hook ${hook}`, result: o.ok ? "ok" : "failed", release: facts.release, digest: facts.digest, previousDigest: facts.previousDigest,
            detail: `${end}: ${o.command}`,
          },
        ],
      });
    } catch (e) {
      ctx.warn?.(`the ${hook} hook's outcome could not be recorded: ${(e as Error).message}`);
    }
  }
  if (!o.ok && hook.startsWith("pre-")) {
    const tail = o.lines.slice(-TAIL_LINES);
    throw new KilnError("KILN_E_HOOK", `the ${hook} hook failed (${end}): nothing was changed`, {
      details: [{ where: o.command, message: tail.length ? `last lines of its output:\n    ${tail.join("\n    ")}` : "it printed nothing" }],
      hint: o.timedOut ? `make it finish sooner, or raise hooks.timeout in kiln.yaml` : `fix what the hook reports and run the command again`,
    });
  }
  return o;
}

/**
 * The HookContext of a workspace: kiln.yaml's hooks, run in its directory, recorded through
 * the fleet's performer, each output line given to `print` as "  [pre-deploy] …".
 */
export function hookContext(
  ws: { loaded: { spec: { hooks: HooksSpec }; dir: string } },
  performer: { record(r: RecordRequest): Promise<void> },
  print: (line: string) => void,
): HookContext {
  return {
    hooks: ws.loaded.spec.hooks,
    cwd: ws.loaded.dir,
    record: (r) => performer.record(r),
    onLine: (hook, line) => print(`  [${hook}] ${line}`),
    warn: (line) => print(`warning: ${line}`),
  };
}

/** Whether kiln.yaml defines any of these hooks (callers skip gathering facts otherwise). */
export function hasHooks(hooks: HooksSpec, names: readonly HookName[]): boolean {
  return names.some((n) => hooks[n] !== undefined);
}

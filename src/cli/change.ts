// What every verb that changes a fleet shares: the note of who asks and why (the audit
// trail), the --reason option, and where hook output goes.

import type { Command } from "commander";
import { commandLine, currentActor } from "../actor.js";
import type { ChangeNote } from "../controller/types.js";
import { KilnError } from "../errors.js";
import { hookContext, runHook, type HookOutcome, type ReleaseFacts } from "../ops/hooks.js";
import type { RolloutPerformer } from "../ops/performer.js";
import type { Workspace } from "../ops/workspace.js";

/** Who asks (actor), with which command line, and why; `env` is the environment the verb acts on (ctx.loaded.environment). */
export function changeNote(reason: string | undefined, env?: string): ChangeNote {
  if (reason !== undefined && (reason.trim() === "" || reason.length > 2000)) {
    throw new KilnError("KILN_E_USAGE", "--reason: expected a non-empty text of at most 2000 characters", { hint: '--reason "roll back the login bug (INC-42)"' });
  }
  return { actor: currentActor(), command: commandLine(process.argv), ...(reason !== undefined ? { reason: reason.trim() } : {}), ...(env ? { env } : {}) };
}

export function withReason(cmd: Command): Command {
  return cmd.option("--reason <text>", "why: recorded with your identity in the audit trail (`kiln history`)");
}

/** Hook output goes to stdout, or to stderr when stdout carries JSON. */
export function hookPrinter(json: boolean | undefined): (line: string) => void {
  return (line) => (json ? process.stderr : process.stdout).write(`${line}\n`);
}

/** The digest live now (for KILN_PREVIOUS_DIGEST), read only when a hook will be told it. */
export async function liveDigest(performer: RolloutPerformer): Promise<string | undefined> {
  return (await performer.history()).releases.find((r) => r.status === "live")?.digest;
}

/** Run a post-* hook after the change; its failure is reported and makes the exit status 1, the change stands. */
export async function postHook(ws: Workspace, performer: RolloutPerformer, json: boolean | undefined, hook: "post-deploy" | "post-rollback", facts: ReleaseFacts, ran: HookOutcome[]): Promise<void> {
  const o = await runHook(hookContext(ws, performer, hookPrinter(json)), hook, facts);
  if (!o) return;
  ran.push(o);
  if (!o.ok) hookPrinter(json)(`warning: the ${hook} hook failed (${o.timedOut ? "timed out" : o.startError ? o.startError : o.signal ? `killed by ${o.signal}` : `exit ${o.exitCode}`}); the ${hook === "post-deploy" ? "deploy" : "rollback"} stands`);
}

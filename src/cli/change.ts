// What every verb that changes a fleet shares: the note of who asks and why (the audit
// trail), the --reason option, and where hook output goes.

import type { Command } from "commander";
import { commandLine, currentActor } from "../actor.js";
import type { ChangeNote } from "../controller/types.js";
import { KilnError } from "../errors.js";

/** The environment a verb acts on: none yet (environments name it; KILN_ENV stays empty meanwhile). */
export function envName(): string | undefined {
  return undefined;
}

/** Who asks (actor), with which command line, and why. */
export function changeNote(reason: string | undefined): ChangeNote {
  if (reason !== undefined && (reason.trim() === "" || reason.length > 2000)) {
    throw new KilnError("KILN_E_USAGE", "--reason: expected a non-empty text of at most 2000 characters", { hint: '--reason "roll back the login bug (INC-42)"' });
  }
  const env = envName();
  return { actor: currentActor(), command: commandLine(process.argv), ...(reason !== undefined ? { reason: reason.trim() } : {}), ...(env ? { env } : {}) };
}

export function withReason(cmd: Command): Command {
  return cmd.option("--reason <text>", "why: recorded with your identity in the audit trail (`kiln history`)");
}

/** Hook output goes to stdout, or to stderr when stdout carries JSON. */
export function hookPrinter(json: boolean | undefined): (line: string) => void {
  return (line) => (json ? process.stderr : process.stdout).write(`${line}\n`);
}

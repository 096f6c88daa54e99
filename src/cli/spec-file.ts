// Which kiln.yaml and environment a verb acts on, apart from context.ts (which opens the
// workspace, and so loads the controller's client): `kiln validate` needs only these.

import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { KilnError } from "../errors.js";
import type { GlobalOptions } from "./output.js";

/** The environment a verb was asked for: `--env`, else $KILN_ENV; undefined lets kiln.yaml choose. */
export function environmentOf(opts: GlobalOptions, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return opts.env ?? (env.KILN_ENV || undefined);
}

export function specFile(opts: GlobalOptions): string {
  const file = resolve(opts.file ?? "kiln.yaml");
  if (!existsSync(file)) {
    throw new KilnError("KILN_E_USAGE", `no kiln.yaml at ${file}`, { hint: "to start one for the app in this directory: `kiln init`; or run kiln where kiln.yaml is, or pass -f PATH" });
  }
  return file;
}

// Output helpers and option types every verb shares. Kept apart from context.ts so a verb
// that needs no workspace (`kiln simulate`) loads none of what opening one imports.

import { KilnError } from "../errors.js";
import type { StrategyName } from "../rollout/types.js";

export interface GlobalOptions {
  file?: string;
  verbose?: boolean;
  /** kiln.yaml environment (`--env`, else KILN_ENV, else kiln.yaml's default) */
  env?: string;
}

/** A `--strategy` value (or kiln.yaml's strategy.type), or a usage error saying the choices. */
export function strategyName(v: string): StrategyName {
  if (v === "rolling" || v === "blue-green" || v === "canary") return v;
  throw new KilnError("KILN_E_USAGE", `unknown strategy "${v}"`, { hint: "use --strategy rolling, blue-green or canary" });
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function out(line = ""): void {
  process.stdout.write(`${line}\n`);
}

/** Short digest for people: "sha256:0123456789ab". */
export function short(digest: string | undefined): string {
  return digest ? digest.slice(0, 19) : "-";
}

export function ago(iso: string | undefined, now = Date.now()): string {
  if (!iso) return "-";
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

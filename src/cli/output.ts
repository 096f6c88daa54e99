// Output helpers and option types every verb shares. Kept apart from context.ts so a verb
// that needs no workspace (`kiln simulate`) loads none of what opening one imports.

import { createRequire } from "node:module";
import type TableType from "cli-table3";
import { closest } from "../config/suggest.js";
import { KilnError } from "../errors.js";
import type { StrategyName } from "../rollout/types.js";

export interface GlobalOptions {
  file?: string;
  verbose?: boolean;
  /** kiln.yaml environment (`--env`, else KILN_ENV, else kiln.yaml's default) */
  env?: string;
  /** `--quiet`: no progress on stderr (results, warnings and errors still print) */
  quiet?: boolean;
}

/**
 * The usage error for a flag value outside its closed set, with the nearest one when it looks like a typo.
 *
 *   ("strategy", "blue-grene", [rolling, blue-green, canary]) → unknown strategy "blue-grene"; hint: did you mean "blue-green"? (rolling, blue-green or canary)
 *   ("strategy", "fast", …)                                    → unknown strategy "fast"; hint: use rolling, blue-green or canary
 */
export function badChoice(what: string, value: string, choices: readonly string[]): KilnError {
  const near = closest(value, choices);
  const list = `${choices.slice(0, -1).join(", ")} or ${choices[choices.length - 1]}`;
  return new KilnError("KILN_E_USAGE", `unknown ${what} "${value}"`, { hint: near ? `did you mean "${near}"? (${list})` : `use ${list}` });
}

const STRATEGIES = ["rolling", "blue-green", "canary"] as const;

/** A `--strategy` value (or kiln.yaml's strategy.type), or a usage error saying the choices. */
export function strategyName(v: string): StrategyName {
  if ((STRATEGIES as readonly string[]).includes(v)) return v as StrategyName;
  throw badChoice("strategy", v, STRATEGIES);
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

/**
 * The one colour policy of the CLI: colour, ✔/✘ and box-drawn tables only on a terminal that
 * wants them. NO_COLOR (any non-empty value, https://no-color.org) and TERM=dumb turn them
 * off; FORCE_COLOR (not "0") turns them on even into a pipe; a pipe or a file gets plain text.
 *
 *   TTY, env {}                       → { colour: true,  fancy: true }
 *   TTY, NO_COLOR=1                   → { colour: false, fancy: false }
 *   TTY, NO_COLOR=""                  → { colour: true,  fancy: true }   (empty means unset)
 *   TTY, TERM=dumb                    → { colour: false, fancy: false }
 *   pipe, env {}                      → { colour: false, fancy: false }
 *   pipe, FORCE_COLOR=1               → { colour: true,  fancy: true }
 */
export interface Style {
  colour: boolean;
  /** ✔/✘ marks and box-drawing tables (else "ok"/"FAIL" and space-aligned columns) */
  fancy: boolean;
}

export function styleFor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): Style {
  const forced = env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== "0";
  const on = forced || (!!stream.isTTY && !env.NO_COLOR && env.TERM !== "dumb");
  return { colour: on, fancy: on };
}

/** How verbs that print to stdout style it. */
export const stdoutStyle = (): Style => styleFor(process.stdout);

const paint = (code: number) => (style: Style, s: string) => (style.colour ? `\x1b[${code}m${s}\x1b[0m` : s);
export const green = paint(32);
export const red = paint(31);
export const dim = paint(2);

/** The mark in front of an outcome line: ✔ / ✘ (coloured) on a terminal, "ok" / "FAIL" otherwise. */
export function mark(ok: boolean, style: Style = stdoutStyle()): string {
  if (!style.fancy) return ok ? "ok" : "FAIL";
  return ok ? green(style, "✔") : red(style, "✘");
}

const PLAIN_CHARS = Object.fromEntries(
  ["top", "top-mid", "top-left", "top-right", "bottom", "bottom-mid", "bottom-left", "bottom-right", "left", "left-mid", "mid", "mid-mid", "right", "right-mid"].map((k) => [k, ""]),
);

// Loaded when a table is drawn: every verb imports this module, few print a table.
const loadTable = (): typeof TableType => createRequire(import.meta.url)("cli-table3") as typeof TableType;

/** A table: box-drawn on a terminal; plain columns two spaces apart otherwise (greppable, no box characters). */
export function table(head: string[], style: Style = stdoutStyle()): { push(row: Array<string | number>): void; toString(): string } {
  const Table = loadTable();
  if (style.fancy) {
    const t = new Table({ head, style: { head: [], border: [] } });
    return { push: (row) => void t.push(row.map(String)), toString: () => t.toString() };
  }
  const t = new Table({ head, chars: { ...PLAIN_CHARS, middle: "  " }, style: { head: [], border: [], "padding-left": 0, "padding-right": 0, compact: true } });
  return {
    push: (row) => void t.push(row.map(String)),
    toString: () =>
      t
        .toString()
        .split("\n")
        .map((l) => l.trimEnd())
        .filter((l) => l !== "")
        .join("\n"),
  };
}

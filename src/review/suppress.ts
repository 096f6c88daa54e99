// Inline suppressions: `# kiln-ignore KR012: why` (or `// …` in HCL) on the line of a
// finding, or alone on the line above it. A suppression needs a reason; without one it
// suppresses nothing and is itself reported (KR090). One that matches nothing is KR091.

import { isRuleId } from "./rules.js";
import type { Pos, RawFinding } from "./types.js";

export interface Suppression {
  pos: Pos;
  ids: string[];
  reason: string;
  /** the lines it covers */
  lines: number[];
  used: boolean;
}

/** Longer lines are not read for suppressions (minified or generated text carries none). */
export const MAX_SUPPRESSION_LINE = 4096;

/**
 * The text after `kiln-ignore` on a line whose comment starts with `#` or `//`, or
 * undefined. Written with indexOf and single-pass checks, not a backtracking regex, so a
 * hostile line costs time linear in its length.
 */
function marker(raw: string): { col: number; rest: string; commentAt: number } | undefined {
  let from = 0;
  for (;;) {
    const at = raw.indexOf("kiln-ignore", from);
    if (at < 0) return undefined;
    from = at + 1;
    const after = raw.charAt(at + "kiln-ignore".length);
    if (/[A-Za-z0-9_]/.test(after)) continue;
    // before it: optional blanks, then `#` or `//`, which must start the line or follow a blank
    let i = at - 1;
    while (i >= 0 && (raw[i] === " " || raw[i] === "\t")) i--;
    let commentAt: number;
    if (raw[i] === "#") commentAt = i;
    else if (raw[i] === "/" && raw[i - 1] === "/") commentAt = i - 1;
    else continue;
    if (commentAt > 0 && !/\s/.test(raw[commentAt - 1]!)) continue;
    return { col: at + 1, rest: raw.slice(at + "kiln-ignore".length), commentAt };
  }
}

/** "KR001, KR002: reason" → ids and reason; undefined when no id leads. Linear time. */
function idsAndReason(rest: string): { ids: string[]; reason: string } | undefined {
  const ids: string[] = [];
  let i = 0;
  const blank = (c: string | undefined) => c === " " || c === "\t" || c === ",";
  for (;;) {
    while (blank(rest[i])) i++;
    if (rest.startsWith("KR", i) && /^\d{3}$/.test(rest.slice(i + 2, i + 5))) {
      ids.push(rest.slice(i, i + 5));
      i += 5;
      continue;
    }
    break;
  }
  if (ids.length === 0) return undefined;
  if (i === rest.length) return { ids, reason: "" };
  if (rest[i] !== ":") return undefined;
  return { ids, reason: rest.slice(i + 1).trim() };
}

export function parseSuppressions(text: string): { suppressions: Suppression[]; findings: RawFinding[] } {
  const suppressions: Suppression[] = [];
  const findings: RawFinding[] = [];
  text.split("\n").forEach((raw, i) => {
    if (raw.length > MAX_SUPPRESSION_LINE) return;
    const line = i + 1;
    const m = marker(raw.endsWith("\r") ? raw.slice(0, -1) : raw);
    if (!m) return;
    const pos = { line, col: m.col };
    const parsed = idsAndReason(m.rest);
    if (!parsed) {
      findings.push({ ruleId: "KR090", pos, message: "kiln-ignore names no rule: write `kiln-ignore KR0NN: reason`" });
      return;
    }
    const { ids, reason } = parsed;
    const unknown = ids.filter((id) => !isRuleId(id));
    if (unknown.length > 0) {
      findings.push({ ruleId: "KR090", pos, message: `kiln-ignore names unknown rule${unknown.length > 1 ? "s" : ""} ${unknown.join(", ")}` });
      return;
    }
    if (reason === "") {
      findings.push({ ruleId: "KR090", pos, message: `kiln-ignore ${ids.join(", ")} gives no reason, so it suppresses nothing` });
      return;
    }
    const commentOnly = raw.slice(0, m.commentAt).trim() === "";
    suppressions.push({ pos, ids, reason, lines: commentOnly ? [line, line + 1] : [line], used: false });
  });
  return { suppressions, findings };
}

/** The suppression that covers a finding, if any (and marks it used). */
export function suppressionFor(f: RawFinding, sups: Suppression[]): Suppression | undefined {
  if (f.ruleId === "KR090" || f.ruleId === "KR091") return undefined;
  const s = sups.find((x) => x.ids.includes(f.ruleId) && x.lines.includes(f.pos.line));
  if (s) s.used = true;
  return s;
}

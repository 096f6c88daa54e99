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

const MARK = /(?:^|\s)(?:#|\/\/)\s*kiln-ignore\b(.*)$/;

export function parseSuppressions(text: string): { suppressions: Suppression[]; findings: RawFinding[] } {
  const suppressions: Suppression[] = [];
  const findings: RawFinding[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = i + 1;
    const m = MARK.exec(raw);
    if (!m) return;
    const col = raw.indexOf("kiln-ignore") + 1;
    const pos = { line, col };
    const rest = m[1]!;
    const parsed = /^\s*((?:KR\d{3}[\s,]*)+)(?::\s*(.*?))?\s*$/.exec(rest);
    if (!parsed) {
      findings.push({ ruleId: "KR090", pos, message: "kiln-ignore names no rule: write `kiln-ignore KR0NN: reason`" });
      return;
    }
    const ids = [...parsed[1]!.matchAll(/KR\d{3}/g)].map((x) => x[0]);
    const unknown = ids.filter((id) => !isRuleId(id));
    if (unknown.length > 0) {
      findings.push({ ruleId: "KR090", pos, message: `kiln-ignore names unknown rule${unknown.length > 1 ? "s" : ""} ${unknown.join(", ")}` });
      return;
    }
    const reason = (parsed[2] ?? "").trim();
    if (reason === "") {
      findings.push({ ruleId: "KR090", pos, message: `kiln-ignore ${ids.join(", ")} gives no reason, so it suppresses nothing` });
      return;
    }
    const commentOnly = raw.slice(0, raw.search(/#|\/\//)).trim() === "";
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

// Makefiles: a target's recipe is a deploy script too. make runs each recipe line in its own
// shell and stops at the first line that fails (unless the line starts with `-`), after
// the target's prerequisites have been made. So a target is read as one script, set -e,
// after its prerequisites' recipes, and findings are kept for its own lines.
//
//   deploy: push
//   <tab>kubectl delete deployment web-blue            → KR001 (nothing checked before it)
//   <tab>kubectl rollout status deployment/web-green
//
//   $(VAR) and $$ are make's: they become ${VAR} and $ for the shell.

import { checkShell } from "../shell/check.js";
import type { Pos, RawFinding } from "../types.js";

interface Target {
  name: string;
  prereqs: string[];
  /** recipe lines: shell text and the file line each starts on */
  lines: { text: string; line: number }[];
}

export function parseMakefile(text: string): Target[] {
  const lines = text.split("\n");
  const targets: Target[] = [];
  let cur: Target | undefined;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.replace(/\r$/, "");
    if (raw.startsWith("\t") && cur) {
      let body = raw.slice(1);
      const start = i + 1;
      while (body.endsWith("\\") && i + 1 < lines.length) {
        i++;
        body = `${body}\n${lines[i]!.replace(/\r$/, "").replace(/^\t/, "")}`;
      }
      cur.lines.push({ text: body, line: start });
      continue;
    }
    if (/^\s*(#.*)?$/.test(raw)) continue;
    const m = /^([A-Za-z0-9_./%${}() -]+?)\s*::?\s*(?!=)([^=]*)$/.exec(raw);
    if (m && !raw.includes(":=")) {
      const names = m[1]!.trim().split(/\s+/);
      const prereqs = m[2]!.split(";")[0]!.trim().split(/\s+/).filter((x) => x !== "" && !x.startsWith("|"));
      cur = { name: names[0]!, prereqs, lines: [] };
      for (const n of names) if (!n.startsWith(".")) targets.push({ ...cur, name: n });
      cur = targets[targets.length - 1] ?? cur;
      for (const t of targets) if (names.includes(t.name)) t.lines = cur.lines;
      continue;
    }
    cur = undefined;
  }
  return targets;
}

/** make's expansion, as far as the shell cares: $(X)/${X} → ${X}, $$ → $, recipe prefixes dropped. */
function shellLine(text: string): { text: string; tolerant: boolean } {
  let t = text.replace(/^[\s@+-]*/, (p) => p.replace(/[@+]/g, " "));
  const tolerant = /^\s*-/.test(text.replace(/^[@+]*/, ""));
  t = t.replace(/^\s*-/, " ");
  t = t
    .replace(/\$\$/g, "\u0000")
    .replace(/\$\((?![A-Za-z0-9_]+\))[^)]*\)/g, "\u0001MAKE_EXPR}")
    .replace(/\$[({]([A-Za-z0-9_]+)[)}]/g, "\u0001$1}")
    .replace(/\u0001/g, "${")
    .replace(/\u0000/g, "$");
  return { text: t, tolerant };
}

/** `KUBECTL := kubectl --context prod` → a shell assignment, so `$(KUBECTL) delete …` reads as kubectl. */
function makeVars(text: string): { text: string; line: number }[] {
  const out: { text: string; line: number }[] = [];
  text.split("\n").forEach((raw, i) => {
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*(?::{1,3}=|\?=|\+=|=)\s*(.*?)\s*$/.exec(raw.replace(/\r$/, ""));
    if (!m || raw.startsWith("\t") || m[2]!.length > 500) return;
    const v = shellLine(m[2]!).text.trim().replace(/["\\`]/g, "");
    out.push({ text: `${m[1]}="${v}"`, line: i + 1 });
  });
  return out;
}

export function checkMakefile(text: string): RawFinding[] {
  const targets = parseMakefile(text);
  const vars = makeVars(text);
  const byName = new Map(targets.map((t) => [t.name, t]));
  const out = new Map<string, RawFinding>();
  for (const t of targets) {
    if (t.lines.length === 0) continue;
    const order: Target[] = [];
    const seen = new Set<string>([t.name]);
    const visit = (x: Target) => {
      for (const p of x.prereqs) {
        const d = byName.get(p);
        if (!d || seen.has(p)) continue;
        seen.add(p);
        visit(d);
        order.push(d);
      }
    };
    visit(t);
    const script: string[] = ["set -e", ...vars.map((v) => v.text)];
    const back: Pos[] = [{ line: t.lines[0]!.line, col: 1 }, ...vars.map((v) => ({ line: v.line, col: 1 }))];
    let ownFrom = 0;
    for (const x of [...order, t]) {
      if (x === t) ownFrom = script.length + 1;
      for (const l of x.lines) {
        const s = shellLine(l.text);
        // each line is its own shell: a tolerated line cannot stop the recipe
        const body = s.tolerant ? `{ ${s.text}\n} || true` : s.text;
        body.split("\n").forEach((part, k) => {
          script.push(part);
          back.push({ line: l.line + Math.min(k, l.text.split("\n").length - 1), col: 2 });
        });
      }
    }
    const r = checkShell(`${script.join("\n")}\n`, "Makefile.sh", "deploy");
    if ("error" in r) continue;
    for (const f of r.findings) {
      if (f.pos.line < ownFrom) continue;
      const at = back[f.pos.line - 1] ?? back[back.length - 1]!;
      const pos = { line: at.line, col: f.pos.line === ownFrom ? at.col : at.col + f.pos.col - 1 };
      const key = `${f.ruleId}@${pos.line}`;
      if (!out.has(key)) out.set(key, { ...f, pos });
    }
  }
  return [...out.values()];
}

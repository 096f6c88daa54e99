// Scoring a review against hand-written truth: per kind of mistake (rule id), how many of
// the expected findings were found (recall) and how many findings were not expected (false
// alarms), plus the two headline figures: the classic mistake (KR001) found per file that
// has it, and findings on files that must stay clean.
//
//   truth  { "a.sh": ["KR001@7"], "b.sh": [] }   found  { "a.sh": ["KR001@7", "KR030@3"], "b.sh": ["KR001@2"] }
//   → KR001 expected 1 found 1 recall 100 %, false alarms 1 (b.sh); KR030 expected 0, false alarms 1;
//     classic 1/1 files; clean files with a false alarm 1/1

export interface KindScore {
  kind: string;
  expected: number;
  found: number;
  falseAlarms: number;
}

export interface Score {
  kinds: KindScore[];
  classic: { files: number; found: number };
  clean: { files: number; withFalseAlarm: string[] };
  missed: string[];
  unexpected: string[];
}

export function scoreReview(truth: Record<string, string[]>, found: Record<string, string[]>, classic = "KR001"): Score {
  const kinds = new Map<string, KindScore>();
  const k = (id: string) => kinds.get(id) ?? kinds.set(id, { kind: id, expected: 0, found: 0, falseAlarms: 0 }).get(id)!;
  const missed: string[] = [];
  const unexpected: string[] = [];
  let classicFiles = 0;
  let classicFound = 0;
  const withFalseAlarm: string[] = [];
  let cleanFiles = 0;
  for (const [file, exp] of Object.entries(truth)) {
    const got = new Set(found[file] ?? []);
    for (const e of exp) {
      const id = e.split("@")[0]!;
      k(id).expected++;
      if (got.has(e)) k(id).found++;
      else missed.push(`${file}: ${e}`);
    }
    const extra = [...got].filter((g) => !exp.includes(g));
    for (const g of extra) {
      k(g.split("@")[0]!).falseAlarms++;
      unexpected.push(`${file}: ${g}`);
    }
    const classicExp = exp.filter((e) => e.startsWith(`${classic}@`));
    if (classicExp.length > 0) {
      classicFiles++;
      if (classicExp.every((e) => got.has(e))) classicFound++;
    }
    if (exp.length === 0) {
      cleanFiles++;
      if (got.size > 0) withFalseAlarm.push(file);
    }
  }
  return {
    kinds: [...kinds.values()].sort((a, b) => (a.kind < b.kind ? -1 : 1)),
    classic: { files: classicFiles, found: classicFound },
    clean: { files: cleanFiles, withFalseAlarm },
    missed,
    unexpected,
  };
}

export function formatScore(s: Score): string {
  const pct = (a: number, b: number) => (b === 0 ? "  -  " : `${((100 * a) / b).toFixed(0).padStart(3)} %`);
  const lines = ["kind    expected  found  recall  false alarms"];
  for (const x of s.kinds) lines.push(`${x.kind}   ${String(x.expected).padStart(8)}  ${String(x.found).padStart(5)}  ${pct(x.found, x.expected)}  ${String(x.falseAlarms).padStart(12)}`);
  lines.push(`classic mistake (KR001) found in ${s.classic.found}/${s.classic.files} files that have it (${pct(s.classic.found, s.classic.files).trim()})`);
  lines.push(`correct files with a false alarm: ${s.clean.withFalseAlarm.length}/${s.clean.files}`);
  for (const m of s.missed) lines.push(`missed      ${m}`);
  for (const u of s.unexpected) lines.push(`unexpected  ${u}`);
  return lines.join("\n");
}

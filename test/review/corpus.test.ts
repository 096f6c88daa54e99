// Every fixture under test/fixtures/review is reviewed and compared, exactly, with
// expected.json: the findings of each file ("RULE@line", in output order), the
// suppressed ones, and where each broken file's parse error is.

import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { formatJson, reviewFiles, RULES } from "../../src/review/index.js";
import { FIXTURES } from "./helpers.js";

interface Expected {
  findings: Record<string, string[]>;
  suppressed: Record<string, string[]>;
  problems: Record<string, string>;
}

const expected = JSON.parse(readFileSync(join(FIXTURES, "expected.json"), "utf8")) as Expected;
const dirs = readdirSync(FIXTURES, { withFileTypes: true })
  // broken/ holds parse errors; field/ is scored against its own truth (field-corpus.test.ts)
  .filter((d) => d.isDirectory() && d.name !== "broken" && d.name !== "field")
  .map((d) => d.name)
  .sort();

const review = reviewFiles(dirs, { cwd: FIXTURES });

test("the corpus has at least 40 fixture files, bad and clean", async () => {
  const r = await review;
  assert.ok(r.files.length >= 40, `only ${r.files.length} files`);
  const clean = Object.values(expected.findings).filter((f) => f.length === 0).length;
  assert.ok(clean >= 15, `only ${clean} clean fixtures`);
  assert.deepEqual(r.problems, []);
});

test("every fixture file is reviewed and listed in expected.json", async () => {
  const r = await review;
  assert.deepEqual(
    r.files.map((f) => f.file),
    Object.keys(expected.findings).sort(),
  );
});

test("each fixture's findings match expected.json exactly", async () => {
  const r = await review;
  const actual: Record<string, string[]> = {};
  for (const f of r.files) actual[f.file] = [];
  for (const f of r.findings) actual[f.file]!.push(`${f.ruleId}@${f.line}`);
  for (const file of Object.keys(expected.findings)) {
    assert.deepEqual(actual[file], expected.findings[file], `${file}`);
  }
});

test("suppressions with a reason hide exactly the expected findings", async () => {
  const r = await review;
  const actual: Record<string, string[]> = {};
  for (const f of r.suppressed) (actual[f.file] ??= []).push(`${f.ruleId}@${f.line}`);
  assert.deepEqual(actual, expected.suppressed);
  for (const s of r.suppressed) assert.ok(s.reason.length > 0);
});

test("every rule is exercised by at least one fixture", async () => {
  const r = await review;
  const field = await reviewFiles(["field"], { cwd: FIXTURES });
  const seen = new Set([...r.findings, ...r.suppressed, ...field.findings].map((f) => f.ruleId));
  const missing = RULES.map((x) => x.id).filter((id) => !seen.has(id));
  assert.deepEqual(missing, []);
});

test("findings are sorted by file, line, column, rule and carry a message and a fix", async () => {
  const r = await review;
  const key = (f: (typeof r.findings)[number]) => [f.file, String(f.line).padStart(6, "0"), String(f.col).padStart(6, "0"), f.ruleId].join("\0");
  const keys = r.findings.map(key);
  assert.deepEqual(keys, [...keys].sort());
  for (const f of r.findings) {
    assert.ok(f.line >= 1 && f.col >= 1, `${f.file}:${f.line}:${f.col}`);
    assert.ok(f.message.length > 10 && f.fix.length > 10, `${f.ruleId} ${f.file}:${f.line}`);
  }
});

test("the same input gives byte-identical output", async () => {
  const again = await reviewFiles([...dirs].reverse(), { cwd: FIXTURES });
  assert.equal(formatJson(again), formatJson(await review));
});

test("broken files are problems, located at their parse error", async () => {
  const r = await reviewFiles(["broken"], { cwd: FIXTURES });
  assert.deepEqual(r.files, []);
  const actual = Object.fromEntries(r.problems.map((p) => [p.file, p.where.slice(p.file.length + 1)]));
  assert.deepEqual(actual, expected.problems);
});

// The field corpus (test/fixtures/review/field): scripts, pipelines, Dockerfiles and
// playbooks written for this project in styles the first corpus lacked, half of them
// correct files built as traps for false alarms. truth.json holds, by hand, the findings
// each file should produce; the score is printed and held to the targets.
// Print the table alone: node --test dist/test/review/field-corpus.test.js

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { reviewFiles } from "../../src/review/index.js";
import { FIXTURES } from "./helpers.js";
import { formatScore, scoreReview } from "./score.js";

const DIR = join(FIXTURES, "field");
const truth = (JSON.parse(readFileSync(join(DIR, "truth.json"), "utf8")) as { expected: Record<string, string[]> }).expected;

test("scoring: recall and false alarms per kind, as in the worked example", () => {
  const s = scoreReview({ "a.sh": ["KR001@7"], "b.sh": [] }, { "a.sh": ["KR001@7", "KR030@3"], "b.sh": ["KR001@2"] });
  assert.deepEqual(s.kinds, [
    { kind: "KR001", expected: 1, found: 1, falseAlarms: 1 },
    { kind: "KR030", expected: 0, found: 0, falseAlarms: 1 },
  ]);
  assert.deepEqual(s.classic, { files: 1, found: 1 });
  assert.deepEqual(s.clean, { files: 1, withFalseAlarm: ["b.sh"] });
});

test("the field corpus has at least 40 files, at least half of them correct", () => {
  const files = Object.keys(truth);
  assert.ok(files.length >= 40, `${files.length} files`);
  assert.ok(files.filter((f) => truth[f]!.length === 0).length * 2 >= files.length);
});

test("field corpus: classic mistake ≥ 95 % of files, no false alarm on correct files, every kind ≥ 85 % recall", async (t) => {
  const r = await reviewFiles(["."], { cwd: DIR });
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.files.map((f) => f.file).sort(), Object.keys(truth).sort(), "every file is reviewed and has a truth entry");
  const found: Record<string, string[]> = {};
  for (const f of r.findings) (found[f.file] ??= []).push(`${f.ruleId}@${f.line}`);
  const s = scoreReview(truth, found);
  for (const line of formatScore(s).split("\n")) t.diagnostic(line);
  assert.ok(s.classic.found / s.classic.files >= 0.95, formatScore(s));
  assert.deepEqual(s.clean.withFalseAlarm, [], formatScore(s));
  for (const k of s.kinds) if (k.expected > 0) assert.ok(k.found / k.expected >= 0.85, `${k.kind}: ${k.found}/${k.expected}\n${formatScore(s)}`);
});

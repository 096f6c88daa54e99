// Hostile review inputs: each gives a clean result or a clean problem, never a hang or a
// crash. The only time bound asserted is a generous hang guard, not a speed.

import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { MAX_FILE_BYTES, reviewFiles } from "../../src/review/index.js";
import { checkShell } from "../../src/review/shell/check.js";
import { parseSuppressions } from "../../src/review/suppress.js";
import { longDeployScript } from "./helpers.js";

const HANG_GUARD_MS = 20_000;

function tmp(): string {
  return mkdtempSync(join(tmpdir(), "kiln-review-hostile-"));
}

test("a 160,000-character line is refused as a problem, and the suppression parser stays linear on it", async () => {
  const dir = tmp();
  try {
    const line = `# kiln-ignore KR001${" ".repeat(160_000)}x`;
    const t0 = Date.now();
    parseSuppressions(`${line}\n# kiln-ignore KR001${" ,".repeat(2000)}: reason ${" ".repeat(2000)}\n`);
    assert.ok(Date.now() - t0 < HANG_GUARD_MS);
    writeFileSync(join(dir, "long.sh"), `#!/bin/sh\necho hi\n${line}\n`);
    const r = await reviewFiles(["long.sh"], { cwd: dir });
    assert.equal(r.problems.length, 1);
    assert.match(r.problems[0]!.message, /line 3 is 160020 characters long/);
    assert.equal(r.problems[0]!.where, "long.sh:3:1");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("suppressions still parse as before: ids, reason, the line below", () => {
  const { suppressions, findings } = parseSuppressions("# kiln-ignore KR001, KR030: staging only\ndocker stop web\nx # kiln-ignore KR030\n# kiln-ignore nothing\n");
  assert.deepEqual(
    suppressions.map((s) => ({ ids: s.ids, reason: s.reason, lines: s.lines })),
    [{ ids: ["KR001", "KR030"], reason: "staging only", lines: [1, 2] }],
  );
  assert.deepEqual(findings.map((f) => `${f.ruleId}@${f.pos.line}`), ["KR090@3", "KR090@4"]);
});

test("a symlink loop in a reviewed folder is walked once, not forever", async () => {
  const dir = tmp();
  try {
    mkdirSync(join(dir, "deploy", "inner"), { recursive: true });
    writeFileSync(join(dir, "deploy", "inner", "go.sh"), "#!/bin/sh\necho ok\n");
    symlinkSync("..", join(dir, "deploy", "inner", "up"));
    symlinkSync(join(dir, "deploy"), join(dir, "deploy", "self"));
    const r = await reviewFiles(["deploy"], { cwd: dir });
    assert.deepEqual(r.files.map((f) => f.file), ["deploy/inner/go.sh"]);
    assert.deepEqual(r.problems, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a device named on the command line is a problem, not an endless read", async () => {
  const r = await reviewFiles(["/dev/zero"]);
  assert.equal(r.problems.length, 1);
  assert.match(r.problems[0]!.message, /not a regular file/);
});

test("a file larger than the cap is a problem", async () => {
  const dir = tmp();
  try {
    writeFileSync(join(dir, "huge.sh"), `#!/bin/sh\n${"echo x\n".repeat(Math.ceil(MAX_FILE_BYTES / 7) + 10)}`);
    const r = await reviewFiles(["huge.sh"], { cwd: dir });
    assert.equal(r.problems.length, 1);
    assert.match(r.problems[0]!.message, /too large to review/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a script built to explode the control-flow analysis stops at the step budget with a located problem", async () => {
  const dir = tmp();
  try {
    const fns = Array.from({ length: 12 }, (_, i) => `f${i}() { while [ "$x" ]; do f${i + 1}; f${i + 1}; f${i + 1}; done; }`);
    writeFileSync(join(dir, "bomb.sh"), `#!/bin/bash\n${fns.join("\n")}\nf12() { curl -fsS "$U"; }\nf0\n`);
    const t0 = Date.now();
    const r = await reviewFiles(["bomb.sh"], { cwd: dir });
    assert.ok(Date.now() - t0 < HANG_GUARD_MS * 3, "hang guard");
    assert.equal(r.problems.length, 1, JSON.stringify(r));
    assert.match(r.problems[0]!.message, /too complex to follow/);
    assert.match(r.problems[0]!.where, /^bomb\.sh:\d+:\d+$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a 10,000-line deploy script is reviewed completely (hang guard only; the timing is a bench figure)", () => {
  const lines = longDeployScript(9_990);
  const t0 = Date.now();
  const r = checkShell(`${lines.join("\n")}\n`, "big.sh");
  // on a loaded 2-core CI machine wall time runs several times the CPU time: the guard only catches a hang
  assert.ok(Date.now() - t0 < HANG_GUARD_MS * 3, "hang guard");
  assert.ok(!("error" in r), JSON.stringify(r).slice(0, 300));
  assert.ok(lines.length >= 9_990);
  // every service is retired only after its own gate passed: nothing to report
  assert.deepEqual(r.findings.map((f) => `${f.ruleId}@${f.pos.line}`), []);
});

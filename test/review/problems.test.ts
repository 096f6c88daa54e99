// Issue 16: a missing file given to `kiln review` is said to be missing, not a syntax error.
// The rows of describeProblems are the worked examples of its doc comment.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { describeProblems, reviewFiles, type ReviewProblem } from "../../src/review/index.js";

const p = (file: string, reason: ReviewProblem["reason"]): ReviewProblem => ({ file, where: file, message: "-", reason });
const MISSING = "check the path (relative to /w) or leave it out";
const SYNTAX = "fix the syntax error (review needs a file its real parser accepts), or leave the file out";
const OTHER = "name a regular, readable deploy file review knows, or leave it out";

test("describeProblems: the message and hint fit why the files were not reviewed", () => {
  const rows: { problems: ReviewProblem[]; message: string; hint: string }[] = [
    { problems: [p("missing.sh", "missing")], message: "missing.sh does not exist", hint: MISSING },
    { problems: [p("a.sh", "missing"), p("b.sh", "missing")], message: "2 paths do not exist", hint: MISSING },
    { problems: [p("bad.tf", "unparsable")], message: "1 file could not be reviewed", hint: SYNTAX },
    { problems: [p("gone.sh", "missing"), p("bad.tf", "unparsable")], message: "2 files could not be reviewed", hint: `${MISSING}; ${SYNTAX}` },
    { problems: [p("fifo", "unreadable")], message: "1 file could not be reviewed", hint: OTHER },
  ];
  for (const r of rows) assert.deepEqual(describeProblems(r.problems, "/w"), { message: r.message, hint: r.hint }, r.message);
});

test("reviewFiles tells a missing path (also under a file) from an unparsable one", async () => {
  const dir = mkdtempSync(join(tmpdir(), "kiln-review-problems-"));
  try {
    writeFileSync(join(dir, "bad.tf"), 'resource "aws_instance" "x" {\n');
    writeFileSync(join(dir, "file.sh"), "#!/bin/sh\necho hi\n");
    const r = await reviewFiles(["missing.sh", "file.sh/under.sh", "bad.tf"], { cwd: dir });
    assert.deepEqual(
      r.problems.map(({ file, reason }) => ({ file, reason })),
      [
        { file: "bad.tf", reason: "unparsable" },
        { file: "file.sh/under.sh", reason: "missing" },
        { file: "missing.sh", reason: "missing" },
      ],
    );
    assert.equal(r.problems.find((x) => x.file === "missing.sh")!.message, "does not exist (ENOENT)");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// `kiln review` through the real CLI: exit codes, formats, --fail-on, help.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { formatText, reviewFiles } from "../../../src/review/index.js";
import { CLI, FIXTURES } from "../helpers.js";

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

// Every invocation the tests make, started together up front: most of a run is Node
// loading the CLI, so running them concurrently keeps this file fast.
const ARGS = [
  ["review", "shell/asg-swap-safe.sh", "kiln/good"],
  ["review", "shell/asg-swap-classic.sh"],
  ["review", "shell/blue-green-no-window.sh"],
  ["review", "shell/blue-green-no-window.sh", "--fail-on", "warning"],
  ["review", "broken/unterminated-if.sh"],
  ["review", "no/such/file.sh"],
  ["review", "shell/loop-runs-out-bad.sh", "--json"],
  ["review", "compose/stack-bad.yml", "--format", "sarif"],
  ["review", "compose", "--format", "xml", "--fail-on", "bogus"],
  ["review", "terraform", "kubernetes", "--format", "json"],
  ["review", "--help"],
  ["review", "--list-rules"],
];
const runs = new Map<string, Promise<Run>>(
  ARGS.map((args) => [
    args.join(" "),
    new Promise<Run>((done) => {
      execFile(process.execPath, [CLI, ...args], { cwd: FIXTURES, encoding: "utf8", env: { ...process.env, NO_COLOR: "" } }, (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : null) : 0;
        done({ code, stdout, stderr });
      });
    }),
  ]),
);

function kiln(...args: string[]): Promise<Run> {
  const r = runs.get(args.join(" "));
  if (!r) throw new Error(`add ${args.join(" ")} to ARGS`);
  return r;
}

test("clean input exits 0", async () => {
  const r = await kiln("review", "shell/asg-swap-safe.sh", "kiln/good");
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /no findings in 2 files/);
});

test("an error finding exits 1 and is printed grouped by file with file:line:col", async () => {
  const r = await kiln("review", "shell/asg-swap-classic.sh");
  assert.equal(r.code, 1);
  assert.match(r.stdout, /^shell\/asg-swap-classic\.sh\n {2}14:1 +warning +KR003 /m);
  assert.match(r.stdout, /17:1 +error +KR001 +`aws ec2 terminate-instances`/);
  assert.match(r.stdout, /fix: /);
  assert.doesNotMatch(r.stdout, /\x1b\[/);
});

test("--fail-on: warnings pass by default and fail with --fail-on warning", async () => {
  assert.equal((await kiln("review", "shell/blue-green-no-window.sh")).code, 0);
  assert.equal((await kiln("review", "shell/blue-green-no-window.sh", "--fail-on", "warning")).code, 1);
});

test("unparsable input exits 2 with the parse error's location", async () => {
  const r = await kiln("review", "broken/unterminated-if.sh");
  assert.equal(r.code, 2);
  assert.match(r.stderr, /KILN_E_USAGE/);
  assert.match(r.stderr, /broken\/unterminated-if\.sh:2:1 +if statement must end with "fi"/);
  const missing = await kiln("review", "no/such/file.sh");
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /ENOENT/);
});

test("--json prints the result", async () => {
  for (const args of [["--json"]]) {
    const r = await kiln("review", "shell/loop-runs-out-bad.sh", ...args);
    assert.equal(r.code, 1);
    const j = JSON.parse(r.stdout) as { version: number; findings: { ruleId: string; line: number; col: number; file: string }[]; summary: { errors: number } };
    assert.equal(j.version, 1);
    assert.deepEqual(j.findings.map((f) => `${f.file}:${f.line}:${f.col} ${f.ruleId}`), ["shell/loop-runs-out-bad.sh:11:1 KR001"]);
    assert.equal(j.summary.errors, 1);
  }
});

test("--format sarif prints a SARIF 2.1.0 log", async () => {
  const r = await kiln("review", "compose/stack-bad.yml", "--format", "sarif");
  assert.equal(r.code, 1);
  const log = JSON.parse(r.stdout) as { version: string; runs: { results: unknown[] }[] };
  assert.equal(log.version, "2.1.0");
  assert.ok(log.runs[0]!.results.length > 0);
});

test("bad options exit 2", async () => {
  const r = await kiln("review", "compose", "--format", "xml", "--fail-on", "bogus");
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown --format "xml"/);
});

test("directories are walked", async () => {
  const a = await kiln("review", "terraform", "kubernetes", "--format", "json");
  assert.equal(a.code, 1);
  assert.match(a.stdout, /"file": "terraform\/asg-bad.tf"/);
  assert.match(a.stdout, /"file": "kubernetes\/api-deployment-bad.yaml"/);
});

test("help explains the verb with examples; --list-rules lists every rule", async () => {
  const h = await kiln("review", "--help");
  assert.equal(h.code, 0);
  assert.match(h.stdout, /Example/);
  assert.match(h.stdout, /kiln-ignore KR012: /);
  const l = await kiln("review", "--list-rules");
  assert.equal(l.code, 0);
  assert.ok(l.stdout.trim().split("\n").length >= 25);
  assert.match(l.stdout, /^KR001 +error +old capacity removed before the new capacity's health is confirmed$/m);
});

test("text output is coloured only when asked (the CLI asks when stdout is a TTY and NO_COLOR is unset)", async () => {
  const r = await reviewFiles([join(FIXTURES, "shell/asg-swap-classic.sh")]);
  assert.match(formatText(r, { color: true }), /\x1b\[31merror/);
  assert.doesNotMatch(formatText(r, { color: false }), /\x1b\[/);
});

// Issue 16's rough edges a new user meets without a controller, each reproduced with the real CLI.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { helloWorkspace, kiln, repoRoot } from "../../integration/support.js";

let ws: Awaited<ReturnType<typeof helloWorkspace>>;
const empty = mkdtempSync(join(tmpdir(), "kiln-rough-"));
before(async () => {
  ws = await helloWorkspace("kiln-rough-ws-");
});
after(() => {
  rmSync(ws.dir, { recursive: true, force: true });
  rmSync(empty, { recursive: true, force: true });
});

test("status with no controller says 'not running' and how to start one (exit 0; --json running: false)", async () => {
  const r = await kiln(["status"], { cwd: ws.dir });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /controller\s+not running/);
  assert.match(r.stdout, /kiln up --detach/);
  assert.doesNotMatch(r.stdout + r.stderr, /unreachable/);
  const j = await kiln(["status", "--json"], { cwd: ws.dir });
  assert.equal(j.code, 0);
  assert.deepEqual((({ running, controller, instances }) => ({ running, controller, instances }))(JSON.parse(j.stdout)), { running: false, controller: null, instances: [] });
});

test("logs with no controller and nothing run says so (exit 1, with what to do), instead of printing nothing", async () => {
  const r = await kiln(["logs"], { cwd: ws.dir });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /KILN_E_CONTROLLER: no logs: the controller is not running/);
  assert.match(r.stderr, /hint: start it with `kiln up --detach`, then `kiln deploy`/);
});

test("watchers with no controller fail at once with the kiln up hint", async () => {
  for (const args of [["rollout", "watch"], ["status", "--watch"]]) {
    const r = await kiln(args, { cwd: ws.dir, timeoutMs: 20_000 });
    assert.equal(r.code, 1, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, /the controller is not running[\s\S]*hint: start it with `kiln up --detach`/);
  }
});

test("deploy before up points at kiln up (not at kiln status)", async () => {
  const b = await kiln(["bake"], { cwd: ws.dir, env: { SOURCE_DATE_EPOCH: "1700000000" } });
  assert.equal(b.code, 0, b.stderr);
  const r = await kiln(["deploy"], { cwd: ws.dir });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /the controller is not running\n\s+hint: start it with `kiln up --detach`\n/);
  assert.doesNotMatch(r.stderr, /kiln status/);
});

test("kiln --version prints package.json's version", async () => {
  const version = (JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { version: string }).version;
  for (const flag of ["--version", "-V"]) {
    const r = await kiln([flag], { cwd: empty });
    assert.equal(r.code, 0);
    assert.match(r.stdout, new RegExp(`^kiln ${version.replace(/\./g, "\\.")} \\(node `));
  }
});

test("a missing kiln.yaml suggests kiln init", async () => {
  const r = await kiln(["status"], { cwd: empty });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /no kiln.yaml at [\s\S]*hint: .*`kiln init`/);
});

test("a flag value with a typo gets 'did you mean' (exit 2, nothing changed)", async () => {
  const r = await kiln(["deploy", "--strategy", "blue-grene"], { cwd: ws.dir });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown strategy "blue-grene"\n\s+hint: did you mean "blue-green"\?/);
  const up = await kiln(["up", "--router", "haproxi"], { cwd: ws.dir });
  assert.equal(up.code, 2);
  assert.match(up.stderr, /did you mean "haproxy"\?/);
});

test("NO_COLOR and pipes get plain ok/FAIL and tables without box characters; FORCE_COLOR brings them back", async () => {
  const box = /[┌│─└]/;
  const plain = await kiln(["images"], { cwd: ws.dir }); // a pipe, NO_COLOR=1
  assert.equal(plain.code, 0, plain.stderr);
  assert.match(plain.stdout, /^image\s+digest\s+name\s+created\s+size\n/);
  assert.doesNotMatch(plain.stdout, box);
  const pipeOnly = await kiln(["images"], { cwd: ws.dir, env: { NO_COLOR: "" } }); // a pipe is enough
  assert.doesNotMatch(pipeOnly.stdout, box);
  const forced = await kiln(["images"], { cwd: ws.dir, env: { NO_COLOR: "", FORCE_COLOR: "1" } });
  assert.match(forced.stdout, box);
  const err = await kiln(["deploy", "--strategy", "x"], { cwd: ws.dir });
  assert.doesNotMatch(err.stderr, /\x1b\[/);
  const errForced = await kiln(["deploy", "--strategy", "x"], { cwd: ws.dir, env: { NO_COLOR: "", FORCE_COLOR: "1" } });
  assert.match(errForced.stderr, /\x1b\[31merror/);
});

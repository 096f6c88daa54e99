// The audit trail end to end: examples/hello on the local provider, the real CLI and controller.
// Every change (deploy, scale, maintenance, pause, resume, promote, abort, rollback) records who
// (a CI's identity, user@host, KILN_ACTOR), the command and --reason; `kiln history` shows them;
// a rollback without a reason warns and is recorded as "no reason given".

import assert from "node:assert/strict";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname, userInfo } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { parseDocument } from "yaml";
import { homeFor, homePaths } from "../../src/home.js";
import type { ChangeRecord } from "../../src/state/db.js";
import { hasBwrap, helloWorkspace, kiln, kilnDown, kilnStatus, requireTool, type RunResult, until } from "./support.js";

let ws: Awaited<ReturnType<typeof helloWorkspace>>;
let up = false;
// No CI identity leaks in from the machine running the tests.
const plain = { KILN_ACTOR: "", GITHUB_ACTIONS: "", GITLAB_CI: "", BUILDKITE: "", CIRCLECI: "" };
const ops = { ...plain, KILN_ACTOR: "ops-oncall" };
const digests: Record<string, string> = {};

type Change = Omit<ChangeRecord, "at"> & { at: string };
async function changes(): Promise<Change[]> {
  const r = await kiln(["history", "--json", "-n", "100"], { cwd: ws.dir });
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { changes: Change[] }).changes;
}

/** The controller log's last lines (to explain a failure). */
function controllerLog(): string {
  const f = homePaths(homeFor(join(ws.dir, "kiln.yaml"))).controllerLog;
  return existsSync(f) ? readFileSync(f, "utf8").split("\n").slice(-60).join("\n") : "(none)";
}

async function bake(version: string): Promise<void> {
  ws.release(version);
  const b = await kiln(["bake", "--json"], { cwd: ws.dir });
  assert.equal(b.code, 0, b.stderr);
  digests[version] = JSON.parse(b.stdout).digest;
}

before(async () => {
  ws = await helloWorkspace("kiln-audit-");
  const f = join(ws.dir, "kiln.yaml");
  const doc = parseDocument(readFileSync(f, "utf8"));
  doc.set("instances", 2);
  doc.setIn(["strategy", "blueGreen", "promotion"], "manual");
  writeFileSync(f, doc.toString());
});

after(async () => {
  if (ws) {
    if (up) await kilnDown([], { cwd: ws.dir });
    rmSync(ws.dir, { recursive: true, force: true });
  }
});

test("deploys record the CI's identity or user@host, the command, the reason and the digests", async (t) => {
  if (!requireTool(hasBwrap, "bubblewrap is not installed (apt-get install bubblewrap)", t)) return;
  await bake("1.0.0");
  const u = await kiln(["up", "--detach"], { cwd: ws.dir });
  assert.equal(u.code, 0, u.stderr);
  up = true;
  const d1 = await kiln(["deploy", "--reason", "first release"], { cwd: ws.dir, env: { ...plain, GITHUB_ACTIONS: "true", GITHUB_ACTOR: "octocat", GITHUB_RUN_ID: "4242" } });
  assert.equal(d1.code, 0, d1.stdout + d1.stderr);
  await bake("2.0.0");
  const d2 = await kiln(["deploy"], { cwd: ws.dir, env: plain });
  assert.equal(d2.code, 0, d2.stdout + d2.stderr);
  const [c2, c1] = await changes();
  assert.deepEqual(
    { actor: c1!.actor, action: c1!.action, reason: c1!.reason, release: c1!.release, digest: c1!.digest, previousDigest: c1!.previousDigest, result: c1!.result },
    { actor: "github:octocat (run 4242)", action: "deploy", reason: "first release", release: "r1", digest: digests["1.0.0"], previousDigest: undefined, result: "accepted" },
  );
  assert.equal(c1!.command, 'kiln deploy --reason "first release"');
  assert.equal(c2!.actor, `${userInfo().username}@${hostname()}`);
  assert.equal(c2!.reason, undefined);
  assert.equal(c2!.previousDigest, digests["1.0.0"]);
  assert.equal(c2!.digest, digests["2.0.0"]);
  assert.ok(!Number.isNaN(Date.parse(c2!.at)));
});

test("scale and maintenance record who and why", async (t) => {
  if (!up) return t.skip("no fleet");
  assert.equal((await kiln(["scale", "3", "--reason", "launch day"], { cwd: ws.dir, env: ops })).code, 0);
  assert.equal((await kiln(["maintenance", "on", "--reason", "db migration"], { cwd: ws.dir, env: ops })).code, 0);
  assert.equal((await kiln(["maintenance", "off"], { cwd: ws.dir, env: ops })).code, 0);
  const [off, on, scale] = await changes();
  assert.deepEqual([scale!.actor, scale!.action, scale!.reason, scale!.detail], ["ops-oncall", "scale", "launch day", "2 → 3 instances"]);
  assert.deepEqual([on!.action, on!.reason, on!.detail, on!.result], ["maintenance", "db migration", "on", "ok"]);
  assert.deepEqual([off!.action, off!.reason, off!.detail], ["maintenance", undefined, "off"]);
});

/**
 * Start a blue-green deploy (promotion: manual) in the background; resolves once its rollout
 * runs, with the deploy's own result inside an object (an async function returning the promise
 * itself would wait for it).
 */
async function deployInBackground(version: string): Promise<{ done: Promise<RunResult> }> {
  await bake(version);
  const done = kiln(["deploy", "--strategy", "blue-green", "--reason", `ship ${version}`], { cwd: ws.dir, env: ops, timeoutMs: 300_000 });
  await until(async () => (await kilnStatus(ws.dir)).rollout?.state === "running", 120_000, "the rollout to start");
  return { done };
}

test("pause, resume and promote a rollout, then abort another: each recorded with its reason", async (t) => {
  if (!up) return t.skip("no fleet");
  const d3 = await deployInBackground("3.0.0");
  for (const [verb, reason] of [["pause", "hold for QA"], ["resume", "QA done"], ["promote", "looks good"]] as const) {
    const r = await kiln([verb, "--reason", reason], { cwd: ws.dir, env: ops });
    assert.equal(r.code, 0, `${verb}: ${r.stdout}${r.stderr}`);
  }
  const r3 = await d3.done;
  assert.equal(r3.code, 0, `${r3.stdout}${r3.stderr}\ncontroller log:\n${controllerLog()}`);
  const d4 = await deployInBackground("4.0.0");
  const a = await kiln(["abort", "--reason", "changed my mind"], { cwd: ws.dir, env: ops });
  assert.equal(a.code, 0, a.stdout + a.stderr);
  const r4 = await d4.done;
  assert.equal(r4.code, 1, `the aborted deploy exits 1: ${r4.stdout}${r4.stderr}\ncontroller log:\n${controllerLog()}`);
  const [abort, deploy4, promote, resume, pause, deploy3] = await changes();
  assert.deepEqual(
    [deploy3, pause, resume, promote, deploy4, abort].map((c) => [c!.action, c!.reason, c!.release]),
    [["deploy", "ship 3.0.0", "r3"], ["pause", "hold for QA", "r3"], ["resume", "QA done", "r3"], ["promote", "looks good", "r3"], ["deploy", "ship 4.0.0", "r4"], ["abort", "changed my mind", "r4"]],
  );
  assert.ok([deploy3, pause, resume, promote, deploy4, abort].every((c) => c!.actor === "ops-oncall"));
  assert.equal(abort!.command, 'kiln abort --reason "changed my mind"');
});

test("a rollback without --reason warns and is recorded as \"no reason given\"; kiln history shows the trail", async (t) => {
  if (!up) return t.skip("no fleet");
  const r = await kiln(["rollback"], { cwd: ws.dir, env: ops });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stderr, /warning: rolling back without --reason: the audit trail records "no reason given"/);
  const [rb] = await changes();
  assert.deepEqual([rb!.action, rb!.reason, rb!.actor, rb!.digest, rb!.previousDigest], ["rollback", "no reason given", "ops-oncall", digests["2.0.0"], digests["3.0.0"]]);
  const text = await kiln(["history"], { cwd: ws.dir });
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /changes \(newest first\)/);
  for (const s of ["no reason given", "github:octocat (run 4242)", "ops-oncall", "hold for QA", "kiln rollback"]) assert.ok(text.stdout.includes(s), `${s} in:\n${text.stdout}`);
});

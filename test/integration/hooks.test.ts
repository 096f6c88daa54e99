// Hooks end to end: examples/hello on the local provider, the real CLI and controller. A hook
// script records the KILN_* environment it was given; failing and hanging pre-deploy hooks
// refuse the deploy with nothing changed; a failing post-deploy hook is reported and the deploy
// stands; a manual rollback runs post-rollback. Output reaches the terminal and the events.

import assert from "node:assert/strict";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { parseDocument } from "yaml";
import { homeFor, homePaths } from "../../src/home.js";
import { StateDb } from "../../src/state/db.js";
import { hasBwrap, helloWorkspace, kiln, kilnDown, kilnStatus, requireTool } from "./support.js";

let ws: Awaited<ReturnType<typeof helloWorkspace>>;
let up = false;
const env = { KILN_ACTOR: "hook-tester" };

/** KEY=value lines a hook wrote (env | grep ^KILN_) */
const seen = (hook: string): Record<string, string> =>
  Object.fromEntries(readFileSync(join(ws.dir, `${hook}.env`), "utf8").trim().split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));

function setHooks(hooks: Record<string, unknown>): void {
  const f = join(ws.dir, "kiln.yaml");
  const doc = parseDocument(readFileSync(f, "utf8"));
  doc.set("hooks", doc.createNode(hooks));
  writeFileSync(f, doc.toString());
}
const HOOKS = { "pre-deploy": "sh ./hook.sh", "post-deploy": ["/bin/sh", "./hook.sh"], "post-rollback": "sh ./hook.sh", timeout: "20s" };

/** The fleet's state, read beside the running controller. */
function withDb<T>(fn: (db: StateDb) => T): T {
  const db = new StateDb(homePaths(homeFor(join(ws.dir, "kiln.yaml"))).stateDb);
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

async function bake(version: string): Promise<string> {
  ws.release(version);
  const b = await kiln(["bake", "--json"], { cwd: ws.dir });
  assert.equal(b.code, 0, b.stderr);
  return JSON.parse(b.stdout).digest as string;
}
const digests: Record<string, string> = {};

before(async () => {
  ws = await helloWorkspace("kiln-hooks-");
  const f = join(ws.dir, "kiln.yaml");
  const doc = parseDocument(readFileSync(f, "utf8"));
  doc.set("instances", 2);
  writeFileSync(f, doc.toString());
  writeFileSync(
    join(ws.dir, "hook.sh"),
    [
      "env | grep '^KILN_' | sort > \"$KILN_HOOK.env\"",
      'echo "checking $KILN_SERVICE $KILN_VERSION"',
      'if [ -e "fail-$KILN_HOOK" ]; then echo "migration check failed" >&2; exit "$(cat "fail-$KILN_HOOK")"; fi',
      'echo "all good"',
      "",
    ].join("\n"),
  );
  setHooks(HOOKS);
});

after(async () => {
  if (ws) {
    if (up) await kilnDown([], { cwd: ws.dir });
    rmSync(ws.dir, { recursive: true, force: true });
  }
});

test("first deploy: pre-deploy and post-deploy run with the release's facts; their output is streamed", async (t) => {
  if (!requireTool(hasBwrap, "bubblewrap is not installed (apt-get install bubblewrap)", t)) return;
  digests.v1 = await bake("1.0.0");
  const u = await kiln(["up", "--detach"], { cwd: ws.dir });
  assert.equal(u.code, 0, u.stderr);
  up = true;
  const d = await kiln(["deploy", "--reason", "first release"], { cwd: ws.dir, env });
  assert.equal(d.code, 0, d.stdout + d.stderr);
  assert.match(d.stdout, /\[pre-deploy\] checking hello 1\.0\.0/);
  assert.match(d.stdout, /\[post-deploy\] all good/);
  const pre = seen("pre-deploy");
  assert.equal(pre.KILN_SERVICE, "hello");
  assert.equal(pre.KILN_ENV, "");
  assert.equal(pre.KILN_VERSION, "1.0.0");
  assert.equal(pre.KILN_DIGEST, digests.v1);
  assert.equal(pre.KILN_PREVIOUS_DIGEST, "");
  assert.equal(pre.KILN_STRATEGY, "rolling");
  assert.equal(pre.KILN_ACTOR, "hook-tester");
  assert.equal(pre.KILN_REASON, "first release");
  assert.equal(pre.KILN_RELEASE, "");
  const post = seen("post-deploy");
  assert.equal(post.KILN_RELEASE, "r1");
  assert.equal(post.KILN_OUTCOME, "live");
  assert.equal(post.KILN_DIGEST, digests.v1);
});

test("a failing pre-deploy hook refuses the deploy: exit 1, its exit code and last lines, nothing changed, recorded", async (t) => {
  if (!up) return t.skip("no fleet");
  writeFileSync(join(ws.dir, "fail-pre-deploy"), "3");
  digests.v2 = await bake("2.0.0");
  const d = await kiln(["deploy"], { cwd: ws.dir, env });
  assert.equal(d.code, 1, d.stdout + d.stderr);
  assert.match(d.stderr, /KILN_E_HOOK: the pre-deploy hook failed \(exit 3\): nothing was changed/);
  assert.match(d.stderr, /migration check failed/);
  const s = await kilnStatus(ws.dir);
  assert.equal(s.release?.version, "1.0.0");
  assert.equal(s.rollout, undefined);
  const h = JSON.parse((await kiln(["history", "--json"], { cwd: ws.dir })).stdout) as { releases: unknown[]; changes: { action: string; result: string; detail?: string }[] };
  assert.equal(h.releases.length, 1, "no release was created");
  assert.deepEqual([h.changes[0]!.action, h.changes[0]!.result], ["hook pre-deploy", "failed"]);
  const events = withDb((db) => db.events("hello").map((e) => e.message));
  assert.ok(events.includes("[pre-deploy] migration check failed"), events.slice(-10).join("\n"));
  const shown = await kiln(["events", "-n", "5"], { cwd: ws.dir });
  assert.equal(shown.code, 0, shown.stderr);
  // stdout and stderr lines of a hook may interleave either way; its outcome comes last
  assert.match(shown.stdout, /info  \[pre-deploy\] migration check failed\n/);
  assert.match(shown.stdout, /error hook pre-deploy failed \(exit 3[^\n]*\n$/);
  assert.ok(events.some((e) => /^hook pre-deploy failed \(exit 3/.test(e)));
  rmSync(join(ws.dir, "fail-pre-deploy"));
});

test("a failing post-deploy hook is reported (exit 1) and the deploy stands", async (t) => {
  if (!up) return t.skip("no fleet");
  writeFileSync(join(ws.dir, "fail-post-deploy"), "4");
  const d = await kiln(["deploy", "--json"], { cwd: ws.dir, env });
  assert.equal(d.code, 1, d.stdout + d.stderr);
  const r = JSON.parse(d.stdout) as { outcome: string; hooks: { hook: string; ok: boolean; exitCode?: number }[] };
  // Once seen in CI: the rollout itself was rolled back within seconds. Its events say why.
  if (r.outcome !== "live") assert.fail(`outcome ${r.outcome}, not live; events:\n${(await kiln(["events", "-n", "40"], { cwd: ws.dir })).stdout}\n${d.stderr}`);
  assert.deepEqual(r.hooks.map((h) => [h.hook, h.ok, h.exitCode]), [["pre-deploy", true, 0], ["post-deploy", false, 4]]);
  assert.match(d.stderr, /\[post-deploy\] migration check failed/, "with --json, hook output goes to stderr");
  assert.match(d.stderr, /warning: the post-deploy hook failed \(exit 4\); the deploy stands/);
  assert.equal((await kilnStatus(ws.dir)).release?.version, "2.0.0");
  assert.equal(seen("pre-deploy").KILN_PREVIOUS_DIGEST, digests.v1);
  rmSync(join(ws.dir, "fail-post-deploy"));
});

test("a pre-deploy hook that outlives hooks.timeout is stopped and the deploy refused", async (t) => {
  if (!up) return t.skip("no fleet");
  setHooks({ ...HOOKS, "pre-deploy": "echo waiting; sleep 30", timeout: "1s" });
  await bake("3.0.0");
  const d = await kiln(["deploy"], { cwd: ws.dir, env });
  assert.equal(d.code, 1, d.stdout + d.stderr);
  assert.match(d.stderr, /the pre-deploy hook failed \(timed out after 1 s\): nothing was changed/);
  assert.match(d.stderr, /hooks\.timeout/);
  assert.equal((await kilnStatus(ws.dir)).release?.version, "2.0.0");
  setHooks(HOOKS);
});

test("a manual rollback runs post-rollback with the digests it moved between", async (t) => {
  if (!up) return t.skip("no fleet");
  const r = await kiln(["rollback", "--reason", "v2 is slow"], { cwd: ws.dir, env });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /\[post-rollback\] all good/);
  const rb = seen("post-rollback");
  assert.equal(rb.KILN_ROLLBACK, "manual");
  assert.equal(rb.KILN_DIGEST, digests.v1);
  assert.equal(rb.KILN_PREVIOUS_DIGEST, digests.v2);
  assert.equal(rb.KILN_REASON, "v2 is slow");
  assert.equal(rb.KILN_OUTCOME, "live");
  assert.ok(existsSync(join(ws.dir, "post-rollback.env")));
});

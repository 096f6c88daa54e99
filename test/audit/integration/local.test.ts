// kiln audit with the local backend (overlayfs + bubblewrap) on the two examples:
// hello passes, stateful (baked as root) fails for every reason it was built to.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { auditImage, type AuditReport } from "../../../src/audit/index.js";
import { kiln, repoRoot, requireTool } from "../../integration/support.js";
import { bakeExamples, type Baked } from "./helpers.js";

const hasBwrap = spawnSync("bwrap", ["--version"]).status === 0;
const isRoot = process.geteuid?.() === 0;
let baked: Baked | undefined;

before(async () => {
  if (hasBwrap && isRoot) baked = await bakeExamples();
});
after(async () => baked?.cleanup());

const quiet = () => undefined;

function kinds(r: AuditReport): string[] {
  return r.findings.map((f) => `${f.severity} ${f.kind} ${"path" in f && f.path ? f.path : ""}`.trim());
}

test("local: examples/hello passes — it writes only to its /data volume", { timeout: 120_000 }, async (t) => {
  if (!requireTool(hasBwrap, "bubblewrap (bwrap) is not installed", t) || !requireTool(isRoot, "kiln audit --provider local needs root", t)) return;
  const b = baked!;
  const r = await auditImage({ store: b.store, digest: b.hello.digest, ref: b.hello.ref, spec: b.hello.loaded.spec, provider: "local", smoke: [{ method: "GET", path: "/", where: "test" }, { method: "POST", path: "/echo", body: "hi", where: "test" }], log: quiet });
  t.diagnostic(`hello (local): ${r.verdict}, ${r.durationMs} ms, findings: ${JSON.stringify(kinds(r))}`);
  assert.deepEqual(kinds(r), []);
  assert.equal(r.verdict, "pass");
  assert.equal(r.blocking, false);
  assert.deepEqual(r.runs.map((x) => [x.phase, x.healthy, x.smoke.every((s) => s.ok)]), [["first-start", true, true], ["after-restart", true, true]]);
  assert.ok(r.runs.every((x) => x.stop && !x.stop.killed), "hello drains on SIGTERM");
  assert.ok(r.observed.processes.includes("node"));
});

test("local: examples/stateful fails — writes outside volumes, root, a private key; warns on .env and state read after restart", { timeout: 120_000 }, async (t) => {
  if (!requireTool(hasBwrap, "bubblewrap (bwrap) is not installed", t) || !requireTool(isRoot, "kiln audit --provider local needs root", t)) return;
  const b = baked!;
  const r = await auditImage({ store: b.store, digest: b.stateful.digest, ref: b.stateful.ref, spec: b.stateful.loaded.spec, provider: "local", smoke: b.stateful.smoke, log: quiet });
  t.diagnostic(`stateful (local): ${r.verdict}, ${r.durationMs} ms, findings: ${JSON.stringify(kinds(r))}`);
  assert.deepEqual(kinds(r), [
    "fail write-outside-volumes /app/access.log",
    "fail write-outside-volumes /var/lib/stateful/sessions.json",
    "fail runs-as-root",
    "fail secret-file /app/config/deploy_key",
    "warn secret-file /app/config/.env",
    "warn state-across-restart /var/lib/stateful/sessions.json",
  ]);
  assert.equal(r.verdict, "fail");
  const text = JSON.stringify(r);
  for (const secret of ["not-a-real-secret-kiln-audit-fixture", "VGhpcyBpcyBub3Qg"]) assert.ok(!text.includes(secret), "the report never carries a secret");
});

test("local: the CLI exits 1 with a versioned JSON report on a failing image, 2 on a bad smoke file", { timeout: 120_000 }, async (t) => {
  if (!requireTool(hasBwrap, "bubblewrap (bwrap) is not installed", t) || !requireTool(isRoot, "kiln audit --provider local needs root", t)) return;
  const b = baked!;
  const env = { KILN_HOME: b.home };
  const spec = join(repoRoot, "examples/stateful/kiln.yaml");
  const r = await kiln(["-f", spec, "audit", b.stateful.ref, "--json", "--smoke", join(repoRoot, "examples/stateful/smoke.txt")], { cwd: b.home, env, timeoutMs: 100_000 });
  assert.equal(r.code, 1, r.stderr);
  const report = JSON.parse(r.stdout) as AuditReport;
  assert.equal(report.schema, "kiln.audit/v1");
  assert.equal(report.verdict, "fail");
  assert.match(r.stderr, /starting again/); // progress goes to stderr, the report alone to stdout

  const bad = join(b.home, "bad-smoke.txt");
  writeFileSync(bad, "GET /\nFETCH /x\n");
  const r2 = await kiln(["-f", spec, "audit", b.stateful.ref, "--smoke", bad], { cwd: b.home, env, timeoutMs: 60_000 });
  assert.equal(r2.code, 2);
  assert.match(r2.stderr, /KILN_E_USAGE.*bad smoke request[\s\S]*bad-smoke.txt:2/);
});

// `kiln demo --json`, the README's first command, exactly as a user runs it.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { existsSync } from "node:fs";
import { kiln, kilnDown, repoRoot, requireTool } from "./support.js";

// The data plane under test: kiln's built-in proxy, or HAProxy (demo-haproxy.test.ts sets it).
const ROUTER = process.env.KILN_DEMO_ROUTER === "haproxy" ? "haproxy" : "builtin";

test(`kiln demo --json --router ${ROUTER}: every step ok, 0 failed requests, the counter never goes backwards`, async (t) => {
  let bwrap = true;
  try {
    execFileSync("bwrap", ["--version"], { stdio: "ignore" });
  } catch {
    bwrap = false;
  }
  if (!requireTool(bwrap, "bubblewrap is not installed", t)) return;
  if (ROUTER === "haproxy" && !requireTool(existsSync("/usr/sbin/haproxy"), "haproxy is not installed", t)) return;
  const dir = mkdtempSync(join(tmpdir(), "kiln-demo-"));
  try {
    for (const f of ["server.js", "config", "kiln.yaml"]) cpSync(join(repoRoot, "examples/hello", f), join(dir, f), { recursive: true });
    const r = await kiln(["demo", "--json", "--router", ROUTER], { cwd: dir, timeoutMs: 8 * 60_000 });
    const result = JSON.parse(r.stdout) as { steps: { name: string; outcome: string; durationMs: number; requests: number; failed: number }[]; totals: { requests: number; failed: number }; counter: { wentBackwards: boolean } };
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(result.steps.map((s) => s.name), ["bake v1", "deploy v1 (3 instances)", "rolling v1 → v2", "broken v3 → automatic rollback", "blue-green v4", "instant rollback", "slow canary v5 → analysis aborts it", "canary v6 → promoted", "kill an instance → healed"]);
    for (const s of result.steps) {
      assert.equal(s.outcome, "ok", s.name);
      assert.equal(s.failed, 0, s.name);
      assert.equal(typeof s.durationMs, "number");
    }
    assert.ok(result.totals.requests > 500, `load ran (${result.totals.requests})`);
    assert.equal(result.totals.failed, 0);
    assert.equal(result.counter.wentBackwards, false);
  } finally {
    await kilnDown(["-f", join(dir, ".kiln/demo/workspace/kiln.yaml")], { cwd: dir });
    rmSync(dir, { recursive: true, force: true });
  }
});

// `kiln drill` on a copy of examples/hello, as a user runs it: a passing drill recorded in state,
// and a drill of a service whose health path is wrong, failing with the reason.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parseDocument } from "yaml";
import type { DrillReport } from "../../../src/ops/drill.js";
import { StateDb } from "../../../src/state/db.js";
import { helloWorkspace, kiln, kilnDown, requireTool } from "../../integration/support.js";
import { notesWorkspace, scratchDatabase } from "../../support/notes-workspace.js";
import { postgresUrl } from "../../support/services.js";

function hasBwrap(): boolean {
  try {
    execFileSync("bwrap", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

function editSpec(dir: string, fn: (d: ReturnType<typeof parseDocument>) => void): void {
  const f = join(dir, "kiln.yaml");
  const doc = parseDocument(readFileSync(f, "utf8"));
  fn(doc);
  writeFileSync(f, doc.toString());
}

describe("kiln drill (integration)", () => {
  it("on examples/hello: every step ok, 0 failed requests, Markdown written, recorded against the live release", async (t) => {
    if (!requireTool(hasBwrap(), "bubblewrap is not installed", t)) return;
    const ws = await helloWorkspace("kiln-drill-");
    try {
      const md = join(ws.dir, "drill.md");
      const r = await kiln(["drill", "--json", "--markdown", md], { cwd: ws.dir, timeoutMs: 8 * 60_000 });
      const report = JSON.parse(r.stdout) as DrillReport & { markdownFile: string };
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal(report.passed, true, report.reason);
      assert.deepEqual(report.steps.map((s) => s.name), ["bake", "deploy", "rolling replacement", "bad release → automatic rollback", "blue-green", "instant rollback", "kill an instance → healed"]);
      for (const s of report.steps) {
        assert.equal(s.outcome, "ok", `${s.name}: ${s.detail}`);
        assert.equal(s.failed, 0, s.name);
      }
      assert.ok(report.totals.requests > 200, `load ran (${report.totals.requests})`);
      assert.equal(report.totals.failed, 0);
      assert.equal(report.markdownFile, md);
      const text = readFileSync(md, "utf8");
      assert.match(text, /## kiln drill: passed/);
      assert.match(text, /\| bad release → automatic rollback \| ✅ ok \|/);

      // The environment is left live on the release the drill recorded, with kiln.yaml's config hash.
      const status = JSON.parse((await kiln(["status", "--json"], { cwd: ws.dir })).stdout) as { release?: { id: string; digest: string; configHash: string } };
      assert.equal(status.release?.id, report.release.id);
      assert.equal(status.release?.digest, report.release.digest);
      assert.equal(status.release?.configHash, report.release.configHash);
      const db = new StateDb(join(ws.dir, ".kiln", "state.db"));
      try {
        const drills = db.drills("hello", { digest: report.release.digest, configHash: report.release.configHash });
        assert.equal(drills.length, 1);
        assert.equal(drills[0]!.passed, true);
        assert.equal(drills[0]!.id, report.id);
      } finally {
        db.close();
      }
    } finally {
      await kilnDown([], { cwd: ws.dir });
      rmSync(ws.dir, { recursive: true, force: true });
    }
  });

  it("on examples/notes (state in PostgreSQL): every step ok under load on GET /notes?count, 0 failed requests", async (t) => {
    if (!requireTool(hasBwrap(), "bubblewrap is not installed", t)) return;
    const pg = postgresUrl(t);
    if (!pg) return;
    const db = await scratchDatabase(pg, `kiln_drill_${process.pid}`);
    const ws = await notesWorkspace({ databaseUrl: db.url, provider: "local" });
    try {
      const r = await kiln(["drill", "--json", "--path", "/notes?count"], { cwd: ws.dir, timeoutMs: 8 * 60_000 });
      const report = JSON.parse(r.stdout) as DrillReport;
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal(report.passed, true, report.reason);
      assert.equal(report.target, `http://127.0.0.1:${ws.port}/notes?count`);
      for (const s of report.steps) assert.equal(s.outcome, "ok", `${s.name}: ${s.detail}`);
      assert.ok(report.totals.requests > 200, `load ran (${report.totals.requests})`);
      assert.equal(report.totals.failed, 0);
    } finally {
      await kilnDown([], { cwd: ws.dir, timeoutMs: 60_000 });
      ws.remove();
      await db.drop();
    }
  });

  it("on a service whose health path is wrong: exit 1, the deploy step fails saying so, the rest skipped, recorded as failed", async (t) => {
    if (!requireTool(hasBwrap(), "bubblewrap is not installed", t)) return;
    const ws = await helloWorkspace("kiln-drill-bad-");
    try {
      editSpec(ws.dir, (d) => {
        d.setIn(["health", "path"], "/no-such-health");
        d.setIn(["strategy", "rolling", "deadline"], "8s");
      });
      const r = await kiln(["drill", "--json"], { cwd: ws.dir, timeoutMs: 5 * 60_000 });
      assert.equal(r.code, 1, r.stdout + r.stderr);
      const report = JSON.parse(r.stdout) as DrillReport & { markdownFile: string };
      assert.equal(report.passed, false);
      const deploy = report.steps.find((s) => s.name === "deploy")!;
      assert.equal(deploy.outcome, "failed");
      assert.match(deploy.detail, /the first release did not go live/);
      assert.match(deploy.detail, /health\.path \(\/no-such-health\) answers 2xx/);
      assert.match(report.reason ?? "", /^deploy: /);
      assert.deepEqual(report.steps.filter((s) => s.outcome === "skipped").map((s) => s.name), ["rolling replacement", "bad release → automatic rollback", "blue-green", "instant rollback", "kill an instance → healed"]);
      assert.ok(existsSync(report.markdownFile));
      assert.match(readFileSync(report.markdownFile, "utf8"), /## kiln drill: failed/);
      const text = await kiln(["drill"], { cwd: ws.dir, timeoutMs: 5 * 60_000 });
      assert.equal(text.code, 1);
      assert.match(text.stdout, /FAIL drill failed: deploy: the first release did not go live/);
      const db = new StateDb(join(ws.dir, ".kiln", "state.db"));
      try {
        assert.deepEqual(db.drills("hello").map((d) => d.passed), [false, false]);
      } finally {
        db.close();
      }
    } finally {
      await kilnDown([], { cwd: ws.dir });
      rmSync(ws.dir, { recursive: true, force: true });
    }
  });
});

// The controller's fake-world suites (test/controller/*.test.ts: rolling, blue-green, canary,
// controls, restarts, leases) run again with their state on PostgreSQL instead of SQLite in
// memory: a child `node --test` with KILN_TEST_WORLD_PG set, each world in a schema of its own
// (one prefix for this run, every schema with it dropped afterwards).

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import pg from "pg";
import { postgresUrl } from "../../support/services.js";

test("the controller's fake-world suites pass with their state on PostgreSQL", async (t) => {
  const base = postgresUrl(t);
  if (!base) return;
  const prefix = `kiln_world_${randomBytes(4).toString("hex")}`;
  const dir = fileURLToPath(new URL("../../controller/", import.meta.url));
  const files = readdirSync(dir).filter((f) => f.endsWith(".test.js")).sort().map((f) => `${dir}${f}`);
  assert.ok(files.length > 0, `no controller tests in ${dir}`);
  try {
    const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const p = spawn(process.execPath, ["--test", "--test-concurrency=1", "--test-reporter=tap", ...files], {
        // without NODE_TEST_CONTEXT: the child is a test runner of its own, reporting in TAP
        env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== "NODE_TEST_CONTEXT")), KILN_TEST_WORLD_PG: base, KILN_TEST_WORLD_SCHEMA: prefix },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      p.stdout.on("data", (d: Buffer) => (out += d.toString()));
      p.stderr.on("data", (d: Buffer) => (out += d.toString()));
      const timer = setTimeout(() => p.kill("SIGKILL"), 15 * 60_000);
      p.on("close", (code) => {
        clearTimeout(timer);
        resolve({ code, out });
      });
    });
    const count = (k: string) => Number(new RegExp(`^# ${k} (\\d+)$`, "m").exec(r.out)?.[1] ?? NaN);
    t.diagnostic(`controller suites on PostgreSQL: ${count("tests")} tests, ${count("pass")} pass, ${count("fail")} fail, ${count("skipped")} skipped`);
    assert.equal(r.code, 0, r.out.split("\n").filter((l) => /^\s*not ok|error:|Error/.test(l)).slice(0, 30).join("\n"));
    assert.ok(count("pass") > 0 && count("fail") === 0);
  } finally {
    // every world's schema (they are not closed by the tests that open them)
    const c = new pg.Client({ connectionString: base });
    await c.connect();
    try {
      const { rows } = await c.query("SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", [`${prefix}\\_%`]);
      for (const row of rows) await c.query(`DROP SCHEMA ${row.nspname as string} CASCADE`);
    } finally {
      await c.end();
    }
  }
});


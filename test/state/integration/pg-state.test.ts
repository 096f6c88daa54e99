// The state suite (state-suite.ts, which db.test.ts runs on SQLite) on PostgreSQL at
// KILN_TEST_PG: every case gets a schema of its own (kiln_test_<random>, through the state
// URL's ?schema=), dropped at the end, so parallel runs never meet.

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { after, describe, it, test } from "node:test";
import pg from "pg";
import { runDoctor } from "../../../src/doctor/index.js";
import { StateDb } from "../../../src/state/db.js";
import { stateSuite } from "../state-suite.js";

const base = process.env.KILN_TEST_PG;
const answers = base !== undefined && spawnSync("psql", [base, "-tAc", "select 1"], { encoding: "utf8", timeout: 10_000 }).status === 0;

if (!answers) {
  const reason = base ? `PostgreSQL at KILN_TEST_PG does not answer` : "KILN_TEST_PG is not set";
  if (process.env.KILN_REQUIRE_ALL === "1") throw new Error(`KILN_REQUIRE_ALL=1 but ${reason}`);
  test("PostgreSQL state suite", (t) => t.skip(`${reason} — run \`eval "$(scripts/services.sh)"\` as root first`));
} else {
  const fresh = async () => {
    const schema = `kiln_test_${randomBytes(6).toString("hex")}`;
    const u = new URL(base!);
    u.searchParams.set("schema", schema);
    return {
      location: u.toString(),
      async drop() {
        const c = new pg.Client({ connectionString: base, connectionTimeoutMillis: 5000 });
        await c.connect();
        try {
          await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
        } finally {
          await c.end();
        }
      },
    };
  };
  stateSuite({ name: "PostgreSQL", fresh });

  describe("PostgreSQL only", () => {
    const drops: (() => Promise<void>)[] = [];
    after(async () => {
      for (const d of drops) await d();
    });

    it("processes racing on one state: no lost update, exactly one lease holder per service", async () => {
      const f = await fresh();
      drops.push(f.drop);
      new StateDb(f.location).close(); // migrate once, so the racers start together
      const child = fileURLToPath(new URL("./race-child.js", import.meta.url));
      const INCREMENTS = 60;
      const ROUNDS = 40;
      const racers = ["p1", "p2", "p3"].map(
        (owner) =>
          new Promise<{ owner: string; won: number[] }>((resolve, reject) => {
            const p = spawn(process.execPath, [child, f.location, owner, String(INCREMENTS), String(ROUNDS)], { stdio: ["ignore", "pipe", "pipe"] });
            let out = "";
            let err = "";
            p.stdout.on("data", (d: Buffer) => (out += d.toString()));
            p.stderr.on("data", (d: Buffer) => (err += d.toString()));
            const timer = setTimeout(() => p.kill("SIGKILL"), 120_000);
            p.on("close", (code) => {
              clearTimeout(timer);
              if (code === 0) resolve(JSON.parse(out.trim()) as { owner: string; won: number[] });
              else reject(new Error(`racer ${owner} exited ${code}: ${err}`));
            });
          }),
      );
      const results = await Promise.all(racers);
      const db = new StateDb(f.location);
      try {
        assert.equal(db.getFact("race", "instances"), 3 * INCREMENTS, "every read-then-write transaction counted once");
        for (let i = 0; i < ROUNDS; i++) {
          const winners = results.filter((r) => r.won.includes(i)).map((r) => r.owner);
          assert.equal(winners.length, 1, `round ${i}: winners ${winners.join(", ") || "none"}`);
          assert.equal(db.lease(`race-${i}`)?.owner, winners[0]);
        }
      } finally {
        db.close();
      }
    });

    it("a connection PostgreSQL drops is opened again: one call fails with KILN_E_STATE, the next works", async () => {
      const f = await fresh();
      drops.push(f.drop);
      const db = new StateDb(f.location);
      try {
        db.setFact("svc", "live", "v");
        const { pid } = db.db.prepare("SELECT pg_backend_pid() AS pid").get() as { pid: number };
        const admin = new pg.Client({ connectionString: base });
        await admin.connect();
        await admin.query("SELECT pg_terminate_backend($1)", [pid]).finally(() => admin.end());
        await new Promise((r) => setTimeout(r, 300)); // the worker hears of it between calls
        let failures = 0;
        let value: string | undefined;
        for (let i = 0; i < 3 && value === undefined; i++) {
          try {
            value = db.getFact("svc", "live");
          } catch (e) {
            assert.equal((e as { code?: string }).code, "KILN_E_STATE");
            failures++;
          }
        }
        assert.equal(value, "v");
        assert.ok(failures <= 1, `${failures} calls failed after the drop`);
        const again = db.db.prepare("SELECT pg_backend_pid() AS pid").get() as { pid: number };
        assert.notEqual(again.pid, pid, "a new backend serves the connection");
        db.setFact("svc", "live", "w"); // and writes go through (the write lock and data_version too)
        assert.equal(db.getFact("svc", "live"), "w");
      } finally {
        db.close();
      }
    });

    it("kiln doctor names the PostgreSQL backend, without the password", async () => {
      const f = await fresh();
      drops.push(f.drop);
      const { mkdtempSync, rmSync } = await import("node:fs");
      const { tmpdir } = await import("node:os");
      const { join } = await import("node:path");
      const home = mkdtempSync(join(tmpdir(), "kiln-pg-doctor-"));
      try {
        const report = await runDoctor({ home, keep: 5, state: f.location, provider: "local" });
        assert.equal(report.state.backend, "postgres");
        assert.match(report.state.where, /^postgres:\/\/kiln:\*\*\*@127\.0\.0\.1/);
        assert.doesNotMatch(JSON.stringify(report), /kiln:kiln@/);
        assert.equal(report.findings.filter((x) => x.check.startsWith("state.")).length, 0, JSON.stringify(report.findings));
      } finally {
        rmSync(home, { recursive: true, force: true });
      }
    });
  });
}

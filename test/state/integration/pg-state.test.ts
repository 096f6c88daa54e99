// The state suite (state-suite.ts, which db.test.ts runs on SQLite) on PostgreSQL at
// KILN_TEST_PG: every case gets a schema of its own (kiln_test_<random>, through the state
// URL's ?schema=), dropped at the end, so parallel runs never meet.

import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import pg from "pg";
import { stateSuite } from "../state-suite.js";

const base = process.env.KILN_TEST_PG;
const answers = base !== undefined && spawnSync("psql", [base, "-tAc", "select 1"], { encoding: "utf8", timeout: 10_000 }).status === 0;

if (!answers) {
  const reason = base ? `PostgreSQL at KILN_TEST_PG does not answer` : "KILN_TEST_PG is not set";
  if (process.env.KILN_REQUIRE_ALL === "1") throw new Error(`KILN_REQUIRE_ALL=1 but ${reason}`);
  test("PostgreSQL state suite", (t) => t.skip(`${reason} — run \`eval "$(scripts/services.sh)"\` as root first`));
} else {
  stateSuite({
    name: "PostgreSQL",
    async fresh() {
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
    },
  });
}

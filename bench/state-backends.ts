// The state backends side by side: the same controller (fake provider, fake router, manual
// clock) deploys and replaces a fleet on SQLite (a file) and on PostgreSQL (KILN_TEST_PG, a
// schema of its own); what differs is only StateDb's driver. Prints ms per tick and per
// deploy and writes bench/results/state-backends.json.
//
//   node dist/bench/state-backends.js [instances]      (KILN_TEST_PG=postgres://… for the PostgreSQL row)

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { deployReq, releaseSpec, world } from "../test/controller/fake-world.js";
import { repoRoot } from "../test/integration/support.js";

const INSTANCES = Number(process.argv[2] ?? 10);

async function measure(location: string): Promise<{ deploys: number; ticks: number; msPerTick: number; msPerDeploy: number; steadyMsPerTick: number }> {
  const w = world(location);
  const settled = () => w.db.activeRollout("svc") === undefined;
  let ticks = 0;
  const t0 = performance.now();
  const versions = ["v1", "v2", "v3"];
  for (const v of versions) {
    w.controller.deploy(deployReq(v, releaseSpec({ instances: INSTANCES })));
    ticks += await w.run(settled, { maxTicks: 5000 });
  }
  const deployMs = performance.now() - t0;
  // steady state: nothing to do but observe, renew nothing (no owner), sync the router
  const s0 = performance.now();
  const STEADY = 200;
  for (let i = 0; i < STEADY; i++) {
    w.clock.advance(100);
    await w.controller.tick();
  }
  const steadyMs = performance.now() - s0;
  w.db.close();
  return { deploys: versions.length, ticks, msPerTick: deployMs / ticks, msPerDeploy: deployMs / versions.length, steadyMsPerTick: steadyMs / STEADY };
}

const rows: Record<string, unknown>[] = [];
const dir = mkdtempSync(join(tmpdir(), "kiln-bench-state-"));
try {
  const sqlite = await measure(join(dir, "state.db"));
  rows.push({ backend: "sqlite", ...sqlite });
  const base = process.env.KILN_TEST_PG;
  if (base) {
    const schema = `kiln_bench_${randomBytes(4).toString("hex")}`;
    const u = new URL(base);
    u.searchParams.set("schema", schema);
    try {
      rows.push({ backend: "postgres", ...(await measure(u.toString())) });
    } finally {
      const c = new pg.Client({ connectionString: base });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).finally(() => c.end());
    }
  } else {
    process.stdout.write("KILN_TEST_PG is not set: PostgreSQL skipped\n");
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
for (const r of rows) {
  process.stdout.write(`${String(r.backend).padEnd(9)} ${INSTANCES} instances: ${(r.msPerDeploy as number).toFixed(0)} ms per rolling deploy (${r.ticks} ticks over ${r.deploys} deploys, ${(r.msPerTick as number).toFixed(2)} ms/tick), steady ${(r.steadyMsPerTick as number).toFixed(2)} ms/tick\n`);
}
if (rows.length === 2) process.stdout.write(`postgres/sqlite: ${((rows[1]!.msPerTick as number) / (rows[0]!.msPerTick as number)).toFixed(1)}x per deploy tick, ${((rows[1]!.steadyMsPerTick as number) / (rows[0]!.steadyMsPerTick as number)).toFixed(1)}x per steady tick\n`);
const results = join(repoRoot, "bench/results");
mkdirSync(results, { recursive: true });
writeFileSync(join(results, "state-backends.json"), `${JSON.stringify({ at: new Date().toISOString(), instances: INSTANCES, rows }, null, 2)}\n`);

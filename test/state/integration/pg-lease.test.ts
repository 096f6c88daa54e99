// Two controllers, two KILN_HOMEs, one PostgreSQL state, one service: exactly one acts (it
// holds the lease and runs the fleet), the other waits on standby; SIGKILL the acting one and
// the other takes the lease once it runs out, adopts the state and brings the fleet back on
// its own side. Real processes: the kiln CLI, both controllers and proxies, sandboxed instances.
// The takeover time is measured and printed (a figure, not an assertion beyond a generous bound).

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import pg from "pg";
import { parseDocument } from "yaml";
import { homePaths, pidAlive, readPidFile } from "../../../src/home.js";
import { supervisorFile } from "../../../src/ops/daemons.js";
import { createProvider } from "../../../src/providers/registry.js";
import { StateDb } from "../../../src/state/db.js";
import { helloWorkspace, kiln, kilnDown, requireTool, until } from "../../integration/support.js";
import { postgresUrl } from "../../support/services.js";

/** The controller's lease: renewed every tick, taken over this long after its last renewal. */
const LEASE_TTL_MS = 5000;

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch((e: Error) => process.stderr.write(`cleanup: ${e.message}\n`));
});

const hasBwrap = (() => {
  try {
    execFileSync("bwrap", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

async function answers(port: number): Promise<boolean> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(1000) });
    await r.arrayBuffer();
    return r.status === 200;
  } catch {
    return false;
  }
}

test("two controllers on one PostgreSQL state: one acts, the other waits, and takes over when the first is SIGKILLed", async (t) => {
  const base = postgresUrl(t);
  if (!base) return;
  if (!requireTool(hasBwrap, "bubblewrap is not installed (apt-get install bubblewrap)", t)) return;

  const schema = `kiln_test_${randomBytes(6).toString("hex")}`;
  const u = new URL(base);
  u.searchParams.set("schema", schema);
  const stateUrl = u.toString();
  cleanups.push(async () => {
    const c = new pg.Client({ connectionString: base });
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).finally(() => c.end());
  });

  // Two hosts' worth of kiln: same service name and state, each its own home, proxy and port.
  const a = await helloWorkspace("kiln-pg-a-");
  const b = await helloWorkspace("kiln-pg-b-");
  for (const ws of [a, b]) {
    const file = join(ws.dir, "kiln.yaml");
    const doc = parseDocument(readFileSync(file, "utf8"));
    doc.set("state", stateUrl);
    doc.set("instances", 2);
    writeFileSync(file, doc.toString());
    cleanups.push(async () => {
      await kilnDown([], { cwd: ws.dir, timeoutMs: 60_000 });
      rmSync(ws.dir, { recursive: true, force: true });
    });
  }
  const run = async (ws: { dir: string }, args: string[], timeoutMs = 180_000, env?: Record<string, string>) => {
    const r = await kiln(args, { cwd: ws.dir, timeoutMs, ...(env ? { env } : {}) });
    assert.equal(r.code, 0, `kiln ${args.join(" ")} in ${ws.dir} exited ${r.code}: ${r.stderr}${r.stdout}`);
    return r;
  };
  const paths = (ws: { dir: string }) => homePaths(join(ws.dir, ".kiln"));
  const controllerPid = (ws: { dir: string }) => {
    const pid = readPidFile(paths(ws).controllerPid);
    assert.ok(pid !== undefined, `a controller runs for ${ws.dir}`);
    return pid;
  };
  const running = async (ws: { dir: string }) => (await createProvider("local", { home: join(ws.dir, ".kiln") }).list("hello")).filter((i) => i.state === "running");
  const state = new StateDb(stateUrl);
  cleanups.push(async () => state.close());

  // Both bake, A deploys. The same inputs give the same digest on either side only with the
  // same created time: without SOURCE_DATE_EPOCH it is the newest input's mtime in whole
  // seconds, and the two workspaces' files, written moments apart, can straddle a second (B
  // then has no image of A's release to launch: seen in CI as "blob … is missing from the store").
  const epoch = { SOURCE_DATE_EPOCH: String(Math.floor(Date.now() / 1000)) };
  const digestOf = (r: { stdout: string }) => /sha256:[0-9a-f]{64}/.exec(r.stdout)?.[0];
  const bakedA = digestOf(await run(a, ["bake"], undefined, epoch));
  const bakedB = digestOf(await run(b, ["bake"], undefined, epoch));
  assert.ok(bakedA !== undefined && bakedA === bakedB, `both hosts bake one image: A ${bakedA}, B ${bakedB}`);
  await run(a, ["up"]);
  await run(a, ["deploy"]);
  assert.ok(await answers(a.port), "A serves its fleet");
  const pidA = controllerPid(a);
  assert.match(state.lease("hello")?.owner ?? "", new RegExp(`^${pidA}@`), "A holds the lease");

  // B comes up on the same state: it waits, launches nothing, refuses changes.
  await run(b, ["up"]);
  const pidB = controllerPid(b);
  assert.notEqual(pidA, pidB);
  await new Promise((r) => setTimeout(r, 2 * LEASE_TTL_MS / 5));
  await until(() => readFileSync(paths(b).controllerLog, "utf8").includes("standby:"), 10_000, "B to report standby");
  assert.match(state.lease("hello")?.owner ?? "", new RegExp(`^${pidA}@`), "A still holds the lease with B up");
  assert.equal((await running(b)).length, 0, "B runs no instance while A acts");
  assert.equal((await running(a)).length, 2);
  const refused = await kiln(["scale", "3"], { cwd: b.dir, timeoutMs: 30_000 });
  assert.notEqual(refused.code, 0, "a change sent to the standby controller is refused");
  assert.match(refused.stderr + refused.stdout, /standby/);
  const standbyStatus = await kiln(["status", "--json"], { cwd: b.dir, timeoutMs: 30_000 });
  assert.equal(standbyStatus.code, 0, standbyStatus.stderr);
  assert.match((JSON.parse(standbyStatus.stdout) as { controller: { standbyFor?: string } }).controller.standbyFor ?? "", new RegExp(`^${pidA}@`), "B's status names the acting controller");

  // A's host loses its control plane: SIGKILL A's supervisor (which `kiln up` started; it would
  // restart the controller within a second, and the restarted A could win the lease back), then
  // A's controller. Its instances and proxy stay: a crash never drops the data plane.
  const supervisorA = readPidFile(supervisorFile(paths(a)));
  assert.ok(supervisorA !== undefined, "kiln up started a supervisor for A");
  process.kill(supervisorA, "SIGKILL");
  await until(() => !pidAlive(supervisorA), 5000, "A's supervisor to die");
  const killedAt = Date.now();
  process.kill(pidA, "SIGKILL");
  await until(() => !pidAlive(pidA), 5000, "A's controller to die");
  let leaseAt = 0;
  await until(() => {
    if (new RegExp(`^${pidB}@`).test(state.lease("hello")?.owner ?? "")) leaseAt ||= Date.now();
    return leaseAt > 0;
  }, 60_000, "B to take the lease");
  // On a timeout, say what B did (seen once in CI: B took the lease, its fleet never served).
  await until(async () => (await running(b)).length === 2 && (await answers(b.port)), 120_000, "B's fleet to serve").catch((e: Error) => {
    const log = readFileSync(paths(b).controllerLog, "utf8").split("\n").slice(-40).join("\n");
    throw new Error(`${e.message}\nB's controller log ends:\n${log}`);
  });
  const servingAt = Date.now();

  const leaseMs = leaseAt - killedAt;
  const servingMs = servingAt - killedAt;
  t.diagnostic(`takeover: lease taken ${leaseMs} ms after SIGKILL (lease ttl ${LEASE_TTL_MS} ms); B's fleet serving ${servingMs} ms after SIGKILL`);
  process.stdout.write(`# figure pg-lease-takeover ${JSON.stringify({ leaseMs, servingMs, ttlMs: LEASE_TTL_MS })}\n`);
  // The bound: the lease runs out TTL after A's last renewal; B tries every tick.
  assert.ok(leaseMs <= LEASE_TTL_MS + 5000, `B took the lease ${leaseMs} ms after the kill, more than ttl + 5 s`);
  assert.ok(leaseMs >= 0);
  assert.ok(pidAlive(pidB), "B's controller is alive and acting");
  const events = state.events("hello", 0, 10_000).map((e) => e.message);
  assert.ok(events.some((m) => /not acting: controller .* holds the lease/.test(m)), "B recorded that it waited");
});

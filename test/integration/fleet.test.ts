// The walking product end to end, through the real CLI, real processes (proxy, controller,
// sandboxed instances) and continuous HTTP load from a separate process. Each stage asserts
// zero failed requests during it and the fleet's final state.

import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { after, before, test } from "node:test";
import type { StatusView } from "../../src/controller/types.js";
import type { LoadHandle } from "../../src/loadgen/client.js";
import { bakeAndDeploy, hasBwrap, helloWorkspace, inRotation, kiln, kilnDown, kilnStatus, requireTool, startFleetLoad, until } from "./support.js";
import { pidAlive } from "../../src/home.js";
import { findPasta } from "../../src/providers/local/netns.js";

let ws: Awaited<ReturnType<typeof helloWorkspace>>;
let load: LoadHandle | undefined;

const status = () => kilnStatus(ws.dir);
const serving = inRotation;
/** Requests and failures since the previous call. */
let window: () => Promise<{ requests: number; failed: number }>;

before(async () => {
  ws = await helloWorkspace();
});

after(async () => {
  if (load) await load.stop();
  if (ws) {
    await kilnDown([], { cwd: ws.dir });
    rmSync(ws.dir, { recursive: true, force: true });
  }
});

test("bake and first deploy", async (t) => {
  if (!requireTool(hasBwrap, "bubblewrap is not installed (apt-get install bubblewrap)", t)) return;
  const b = await kiln(["bake", "--json"], { cwd: ws.dir });
  assert.equal(b.code, 0, b.stderr);
  assert.match(JSON.parse(b.stdout).digest, /^sha256:[0-9a-f]{64}$/);
  const up = await kiln(["up", "--detach", "--json"], { cwd: ws.dir });
  assert.equal(up.code, 0, up.stderr);
  const d = await kiln(["deploy"], { cwd: ws.dir });
  assert.equal(d.code, 0, d.stdout + d.stderr);
  const s = await status();
  assert.equal(serving(s).length, 3);
  // each instance in its own network namespace where pasta is installed (issue 12), the host's otherwise, and status says which
  const expected = findPasta() ? /^private \(own namespace\), egress: none$/ : /^host \(pasta is not installed/;
  for (const i of s.instances) assert.match(i.network ?? "", expected, JSON.stringify(i));
  ({ load, window } = await startFleetLoad(ws.port, 10_000));
});

test("rolling replacement to v2 under load: 0 failed requests, fleet on v2", async (t) => {
  if (!load) return t.skip("no fleet");
  const d = await bakeAndDeploy(ws, "2.0.0", { strategy: "rolling" });
  assert.equal(d.code, 0, d.stdout + d.stderr);
  const s = await status();
  assert.equal(s.release?.version, "2.0.0");
  assert.equal(serving(s).length, 3);
  assert.ok(s.instances.every((i) => i.version === "2.0.0"), JSON.stringify(s.instances));
  const w = await window();
  assert.ok(w.requests > 100, `load kept flowing (${w.requests})`);
  assert.equal(w.failed, 0);
});

test("a broken v3 is rolled back automatically: exit 1 with the reason, fleet on v2, history records it", async (t) => {
  if (!load) return t.skip("no fleet");
  const d = await bakeAndDeploy(ws, "3.0.0", { healthy: false });
  assert.equal(d.code, 1, d.stdout + d.stderr);
  assert.match(d.stdout, /rolled back: .*health/);
  const s = await status();
  assert.equal(s.release?.version, "2.0.0");
  assert.ok(serving(s).length === 3 && serving(s).every((i) => i.version === "2.0.0"));
  const h = JSON.parse((await kiln(["history", "--json"], { cwd: ws.dir })).stdout) as { releases: { version: string; status: string; reason?: string }[] };
  const r3 = h.releases.find((r) => r.version === "3.0.0")!;
  assert.equal(r3.status, "failed");
  assert.match(r3.reason ?? "", /health/);
  assert.equal((await window()).failed, 0);
});

test("blue-green v4, then an instant rollback onto the warm fleet with no new instance", async (t) => {
  if (!load) return t.skip("no fleet");
  const d = await bakeAndDeploy(ws, "4.0.0", { strategy: "blue-green" });
  assert.equal(d.code, 0, d.stdout + d.stderr);
  let s = await status();
  assert.ok(serving(s).length === 3 && serving(s).every((i) => i.version === "4.0.0"), `after the switch: ${JSON.stringify(s.instances.map((i) => ({ id: i.id, v: i.version, rot: i.inRotation, routing: i.routing, health: i.health })))}\n${d.stdout}`);
  const warm = s.instances.filter((i) => i.routing === "standby");
  assert.equal(warm.length, 3);
  assert.ok(warm.every((i) => i.version === "2.0.0"));
  assert.equal((await window()).failed, 0);

  const rb = await kiln(["rollback"], { cwd: ws.dir });
  assert.equal(rb.code, 0, rb.stdout + rb.stderr);
  s = await status();
  assert.equal(s.release?.version, "2.0.0");
  assert.deepEqual(new Set(serving(s).map((i) => `${i.id}/${i.pid}`)), new Set(warm.map((i) => `${i.id}/${i.pid}`)), "the same warm processes serve");
  assert.equal((await window()).failed, 0);
});

test("an instance killed with SIGKILL is replaced from the live release", async (t) => {
  if (!load) return t.skip("no fleet");
  const before = await status();
  const victim = serving(before)[0]!;
  process.kill(-victim.pid!, "SIGKILL");
  await until(async () => {
    const s = await status();
    const ok = serving(s).filter((i) => i.health === "healthy");
    return ok.length === 3 && !ok.some((i) => i.id === victim.id);
  }, 60_000, "the fleet to heal");
  const s = await status();
  assert.ok(serving(s).every((i) => i.version === "2.0.0"));
  assert.equal((await window()).failed, 0);
});

test("controller killed: the proxy keeps serving; a restarted controller adopts the same instances", async (t) => {
  if (!load) return t.skip("no fleet");
  const before = await status();
  process.kill(before.controller.pid, "SIGKILL");
  await until(() => !pidAlive(before.controller.pid), 5000, "the controller to die");
  const during = await load.snapshot();
  await until(async () => (await load!.snapshot()).requests > during.requests + 500, 30_000, "traffic while the controller is down");
  assert.equal((await window()).failed, 0, "no request failed while the controller was down");

  const up = await kiln(["up", "--detach", "--json"], { cwd: ws.dir });
  assert.equal(up.code, 0, up.stderr);
  const after = await status();
  assert.notEqual(after.controller.pid, before.controller.pid);
  assert.equal(after.proxy.pid, before.proxy.pid, "the proxy was never restarted");
  const ids = (s: StatusView) => s.instances.map((i) => `${i.id}/${i.pid}`).sort();
  assert.deepEqual(ids(after), ids(before), "the same instance processes were adopted");
  await until(async () => serving(await status()).length === 3, 10_000, "instances back in rotation");
  assert.equal((await window()).failed, 0);
});

test("down stops everything and leaves no process behind; the counter never went backwards", async (t) => {
  if (!load) return t.skip("no fleet");
  const s = await status();
  const totals = await load.stop();
  load = undefined;
  assert.equal(totals.failed, 0, JSON.stringify(totals.errors ?? []));
  assert.equal(totals.counterWentBackwards, false);
  const d = await kiln(["down"], { cwd: ws.dir });
  assert.equal(d.code, 0, d.stderr);
  const pids = [s.controller.pid, s.proxy.pid!, ...s.instances.map((i) => i.pid!)];
  await until(() => pids.every((p) => !pidAlive(p)), 15_000, "every process to exit");
  assert.ok(!existsSync(`${ws.dir}/.kiln/run/controller.pid`));
  // and no process of the fleet's that status does not list: the instances' network forwarders (pasta) name their instance's directory
  const instancesDir = `${ws.dir}/.kiln/instances/`;
  const left = readdirSync("/proc").filter((p) => /^\d+$/.test(p) && (() => { try { return readFileSync(`/proc/${p}/cmdline`, "utf8").includes(instancesDir); } catch { return false; } })());
  assert.deepEqual(left, [], "no process left that works for the fleet's instances");
});

// Kill test: SIGKILL the controller at random moments during rolling, blue-green and canary rollouts
// on a real provider under continuous load. Every rollout must converge (live or rolled back), no
// client request may fail, no instance process may be orphaned, history stays intact.
//
// The provider is the local one (bubblewrap), or with KILN_KILL_PROVIDER=swarm the three-node swarm
// of scripts/swarm-cluster.sh (one Swarm service per instance; every running service must be one
// state knows). KILN_KILL_COUNT sets the number of kills (default 30).

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { startDaemons, stopDaemons, supervisorFile } from "../../src/ops/daemons.js";
import { buildDeployRequest } from "../../src/ops/deploy-flow.js";
import { recipeOf } from "../../src/ops/recipe.js";
import { openWorkspace } from "../../src/ops/workspace.js";
import { bake, openStore } from "../../src/image/index.js";
import { startLoad, type LoadHandle } from "../../src/loadgen/client.js";
import { seededRandom } from "../../src/providers/fake/index.js";
import { helloWorkspace, requireTool, until } from "./support.js";
import { pidAlive, readPidFile } from "../../src/home.js";
import { readNetRecord } from "../../src/providers/local/netns.js";
import { parseDocument } from "yaml";
import { swarmRig } from "../support/swarm-rig.js";

const KILLS = Number(process.env.KILN_KILL_COUNT ?? 30);
// The data plane under test: kiln's built-in proxy, or HAProxy (kill-haproxy.test.ts sets it).
const ROUTER = process.env.KILN_KILL_ROUTER === "haproxy" ? "haproxy" : "builtin";
const SEED = Number(process.env.KILN_KILL_SEED ?? 424242);
const PROVIDER = process.env.KILN_KILL_PROVIDER === "swarm" ? "swarm" : "local";

let cleanup: (() => Promise<void>) | undefined;
after(async () => cleanup?.());

/** Processes whose command line mentions this workspace: instances, controller, proxy. */
function processesOf(dir: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, "utf8").includes(dir)) pids.push(Number(p));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

test(`controller SIGKILLed at ${KILLS} random moments across rolling, blue-green and canary rollouts (router ${ROUTER}, provider ${PROVIDER}): all converge, 0 failed requests, no orphans`, async (t) => {
  let bwrap = true;
  try {
    execFileSync("bwrap", ["--version"], { stdio: "ignore" });
  } catch {
    bwrap = false;
  }
  if (PROVIDER === "local" && !requireTool(bwrap, "bubblewrap is not installed", t)) return;
  if (PROVIDER === "swarm" && !swarmRig(t)) return;
  if (ROUTER === "haproxy" && !requireTool(existsSync("/usr/sbin/haproxy"), "haproxy is not installed", t)) return;
  const ws = await helloWorkspace("kiln-kill-");
  const file = join(ws.dir, "kiln.yaml");
  if (PROVIDER === "swarm") {
    // One Swarm service per instance on the rig; no volume on Swarm, so hello counts in /tmp.
    const doc = parseDocument(readFileSync(file, "utf8"));
    doc.set("name", `hellok${randomBytes(3).toString("hex")}`);
    doc.set("provider", "swarm");
    doc.set("volumes", []);
    doc.set("env", { DATA_DIR: "/tmp" });
    doc.set("swarm", { registry: `${process.env.KILN_SWARM_REGISTRY}/kiln-kill`, insecureRegistry: true });
    writeFileSync(file, doc.toString());
  }
  let ctx = openWorkspace(file);
  let load: LoadHandle | undefined;
  cleanup = async () => {
    if (load) await load.stop();
    await stopDaemons({ paths: ctx.paths, home: ctx.home, service: ctx.loaded.spec.name, provider: PROVIDER, swarm: ctx.loaded.spec.swarm });
    rmSync(ws.dir, { recursive: true, force: true });
  };
  const random = seededRandom(SEED);
  const up = () => startDaemons({ paths: ctx.paths, specFile: file, listen: ctx.loaded.spec.listen, home: ctx.home, router: ROUTER, health: ctx.loaded.spec.health, provider: PROVIDER, swarm: ctx.loaded.spec.swarm });
  const bakeVersion = async (version: string, healthy = true) => {
    ws.release(version, healthy);
    ctx = openWorkspace(file);
    await bake(recipeOf(ctx.loaded), { store: openStore(ctx.home) });
  };

  await bakeVersion("1.0.0");
  await up();
  const first = await ctx.client.deploy(await buildDeployRequest(ctx, undefined, "rolling"));
  await until(async () => (await ctx.client.rollout(first.rollout.id)).state !== "running", 120_000, "first deploy");
  {
    // The load below counts every 503 of a fleet that never came up as a failed request: say so first.
    const r1 = (await ctx.client.history()).releases.find((r) => r.id === first.release.id);
    const events = (await ctx.client.recentEvents(30)).events.map((e) => e.message);
    assert.equal(r1?.status, "live", `the first deploy ended ${r1?.status}: ${r1?.reason ?? ""}\n${events.join("\n")}`);
  }
  load = startLoad({ url: `http://127.0.0.1:${ws.port}/`, concurrency: 4, durationMs: 20 * 60_000 });
  await until(async () => (await load!.snapshot()).requests > 20, 10_000, "load");

  let kills = 0;
  let rollouts = 0;
  const outcomes: string[] = [];
  for (let v = 2; kills < KILLS && v < 60; v++) {
    const strategy = (["rolling", "blue-green", "canary"] as const)[v % 3]!;
    // Every fourth release is broken: the kill lands in a rollout that must roll back.
    const broken = v % 4 === 0;
    await bakeVersion(`${v}.0.0`, !broken);
    const { release } = await ctx.client.deploy(await buildDeployRequest(ctx, undefined, strategy));
    rollouts++;
    // Kill at 1–3 random moments while the rollout (or the rollback it turns into) runs.
    for (let k = 0; k < 3 && kills < KILLS; k++) {
      await new Promise((r) => setTimeout(r, 150 + random() * 2500));
      const s = await ctx.client.status();
      if (!s.rollout) break;
      process.kill(s.controller.pid, "SIGKILL");
      kills++;
      await until(() => !pidAlive(s.controller.pid), 5000, "controller death");
      await up();
    }
    await until(async () => !(await ctx.client.status()).rollout, 180_000, `rollout of ${release.id} to settle`);
    const h = await ctx.client.history();
    const rel = h.releases.find((r) => r.id === release.id)!;
    outcomes.push(`${release.id}:${strategy}:${rel.status}`);
    assert.equal(rel.status, broken ? "failed" : "live", `${release.id} (${strategy}, broken=${broken}) ended ${rel.status}: ${rel.reason ?? ""}`);
    const s = await ctx.client.status();
    const expected = broken ? h.releases.find((r) => r.status === "live")! : rel;
    await until(async () => {
      const st = await ctx.client.status();
      const serving = st.instances.filter((i) => i.inRotation);
      return serving.length === 3 && serving.every((i) => i.release === expected.id);
    }, 60_000, `fleet on ${expected.id}`);
    void s;
  }
  assert.ok(kills >= KILLS, `only ${kills} kills`);

  // Let drains and stops settle, then account for every process. A snapshot taken while an old
  // instance drains lists it in state and, a moment later, not in the provider: compare once the
  // two agree and nothing is starting or stopping, or after 60 s on what they say then.
  // Instance processes inside bwrap show the rootfs path, not the workspace, so the provider is asked too.
  const listed = (await import("../../src/providers/registry.js")).createProvider(PROVIDER, { home: ctx.home, swarm: ctx.loaded.spec.swarm });
  const listRunning = async () => (await listed.list(ctx.loaded.spec.name)).filter((i) => i.state === "running").map((i) => i.id).sort();
  let s = await ctx.client.status();
  let running = await listRunning();
  for (const settleBy = Date.now() + 60_000; Date.now() < settleBy; ) {
    const ids = s.instances.map((i) => i.id).sort();
    if (s.instances.every((i) => i.state === "running") && JSON.stringify(ids) === JSON.stringify(running)) break;
    await new Promise((r) => setTimeout(r, 250));
    s = await ctx.client.status();
    running = await listRunning();
  }
  const totals = await load.stop();
  load = undefined;
  // The supervisor `kiln up` starts (it restarts the controller) names the workspace too.
  const known = new Set([s.controller.pid, s.proxy.pid!, readPidFile(supervisorFile(ctx.paths)) ?? -1, ...s.instances.map((i) => i.pid!)]);
  // A live local instance's network forwarder (pasta, issue 12) is its own detached process, named in the instance's net.json;
  // a forwarder of an instance that is gone still counts as a stray.
  for (const i of s.instances) {
    const fwd = readNetRecord(join(ctx.home, "instances", i.id))?.pid;
    if (fwd !== undefined) known.add(fwd);
  }
  // An instance is a process group (launcher, bwrap, the app); its leader is the pid state records.
  const pgid = (pid: number) => {
    try {
      return Number(readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /, "").split(" ")[2]);
    } catch {
      return -1;
    }
  };
  const stray = processesOf(ws.dir).filter((p) => !known.has(p) && !known.has(pgid(p)) && p !== process.pid);
  const knownIds = new Set(s.instances.map((i) => i.id));
  const runningIds = new Set(running);
  // Running but unknown to state (an orphan), or known to state and not running.
  const unaccounted = [...running.filter((id) => !knownIds.has(id)), ...[...knownIds].filter((id) => !runningIds.has(id))];
  if (unaccounted.length > 0) {
    // Say what state and the provider recorded of each, so a failure on a CI machine explains itself.
    const events = (await ctx.client.recentEvents(5000)).events;
    for (const id of unaccounted) {
      const dir = join(ctx.home, "instances", id);
      const read = (f: string) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), "utf8").slice(-1500) : "(none)");
      t.diagnostic(`unaccounted ${id}: events ${JSON.stringify(events.filter((e) => e.message.includes(id) || e.instance === id).map((e) => `${new Date(e.at).toISOString()} ${e.message}`))}`);
      t.diagnostic(`unaccounted ${id}: meta.json ${read("meta.json")}; log ${read("log")}`);
    }
    if (existsSync(ctx.paths.controllerLog)) t.diagnostic(`controller.log (tail): ${readFileSync(ctx.paths.controllerLog, "utf8").slice(-4000)}`);
  }
  assert.deepEqual(running, s.instances.map((i) => i.id).sort(), "every running instance is one state knows, and every one state knows runs");
  const h = await ctx.client.history();
  assert.ok(h.rollouts.every((r) => r.state !== "running"));
  assert.ok(h.releases.every((r) => ["live", "superseded", "failed", "rolled-back"].includes(r.status)), JSON.stringify(h.releases.map((r) => r.status)));
  assert.equal(h.releases.filter((r) => r.status === "live").length, 1);
  t.diagnostic(`router ${ROUTER}, provider ${PROVIDER}, seed ${SEED}: ${kills} kills over ${rollouts} rollouts (${outcomes.join(", ")}); ${totals.requests} requests, ${totals.failed} failed; stray processes: ${stray.length}`);
  // `npm run bench` asks for the summary as a file (bench/results/kill.json).
  if (process.env.KILN_KILL_SUMMARY) {
    writeFileSync(
      process.env.KILN_KILL_SUMMARY,
      `${JSON.stringify({ generatedAt: new Date().toISOString(), router: ROUTER, provider: PROVIDER, seed: SEED, kills, rollouts, outcomes, requests: totals.requests, failedRequests: totals.failed, strayProcesses: stray.length, unaccountedInstances: unaccounted.length }, null, 2)}\n`,
    );
  }
  assert.equal(totals.failed, 0, JSON.stringify(totals.errors ?? []));
  assert.deepEqual(stray, []);
});

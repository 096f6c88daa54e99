// A controller that comes back (issue 16): `kiln up` supervises the controller, and `kiln
// deploy` follows its rollout across controller restarts to the rollout's true outcome.
// Real processes: the CLI, the supervisor, the controller, the proxy and the hello instances.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { parseDocument } from "yaml";
import { pidAlive, readPidFile } from "../../src/home.js";
import { supervisorFile } from "../../src/ops/daemons.js";
import { openWorkspace } from "../../src/ops/workspace.js";
import { helloWorkspace, kiln, kilnBin, kilnDown, type RunResult, until } from "./support.js";

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups) await c();
});

/** hello with a slow rolling replacement (each new instance warms up 5 s), so a rollout lasts long enough to be killed 5 times. */
async function slowHello(prefix: string) {
  const ws = await helloWorkspace(prefix);
  const file = join(ws.dir, "kiln.yaml");
  const doc = parseDocument(readFileSync(file, "utf8"));
  doc.setIn(["strategy", "rolling", "instanceWarmup"], "5s");
  writeFileSync(file, doc.toString());
  cleanups.push(async () => {
    await kilnDown([], { cwd: ws.dir, timeoutMs: 60_000 });
    rmSync(ws.dir, { recursive: true, force: true });
  });
  return ws;
}

/** `kiln deploy` in the background: its result when it exits (bounded by 5 min). */
function deployInBackground(dir: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [kilnBin, "deploy", "--strategy", "rolling"], { cwd: dir, env: { ...process.env, NO_COLOR: "1" }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 300_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, stdout, stderr });
    });
  });
}

/**
 * SIGKILL the controller whenever a rollout is running, up to `max` times, about every 1–2 s,
 * until `done` settles. Nobody restarts it but the supervisor `kiln up` started. Returns the kill count.
 */
async function killWhileRolling(dir: string, max: number, done: Promise<unknown>): Promise<number> {
  const ctx = openWorkspace(join(dir, "kiln.yaml"));
  let settled = false;
  void done.finally(() => (settled = true));
  let kills = 0;
  const end = Date.now() + 240_000;
  while (!settled && kills < max && Date.now() < end) {
    const s = await ctx.client.status().catch(() => undefined); // down: being restarted
    if (s?.rollout) {
      process.kill(s.controller.pid, "SIGKILL");
      kills++;
      await until(() => !pidAlive(s.controller.pid), 5000, "controller death");
      await new Promise((r) => setTimeout(r, 1000 + ((kills * 397) % 1000)));
    } else await new Promise((r) => setTimeout(r, 100));
  }
  return kills;
}

test("kiln deploy survives 5 controller SIGKILLs during one rollout and exits with the rollout's true outcome (live: 0; broken and rolled back: 1)", async () => {
  const ws = await slowHello("kiln-reconnect-");
  ws.release("1.0.0");
  for (const args of [["bake"], ["up", "--detach"], ["deploy"]]) {
    const r = await kiln(args, { cwd: ws.dir });
    assert.equal(r.code, 0, `kiln ${args.join(" ")}: ${r.stderr}`);
  }

  // A good release: 5 kills while it rolls, and deploy still reports it live.
  ws.release("2.0.0");
  assert.equal((await kiln(["bake"], { cwd: ws.dir })).code, 0);
  const good = deployInBackground(ws.dir);
  const kills = await killWhileRolling(ws.dir, 5, good);
  const g = await good;
  assert.equal(kills, 5, `the rollout ended after ${kills} kills: ${g.stdout}`);
  const ctx = openWorkspace(join(ws.dir, "kiln.yaml"));
  // The last kill may have landed just as the rollout ended: read once the controller is back.
  const history = async () => {
    await until(() => ctx.client.ping(), 30_000, "the controller to answer").catch((e: Error) => {
      // the supervisor's own lines say whether it restarted, waited or gave up
      const sup = readFileSync(ctx.paths.controllerLog, "utf8").split("\n").filter((l) => l.includes(" supervisor ")).slice(-8).join("\n");
      throw new Error(`${e.message}; the supervisor's last lines:\n${sup}`);
    });
    return ctx.client.history();
  };
  const h = await history();
  const r2 = h.releases.find((r) => r.version === "2.0.0")!;
  assert.equal(r2.status, "live", JSON.stringify(h.releases));
  assert.equal(g.code, 0, `deploy: ${g.stdout}\n${g.stderr}`);
  assert.match(g.stdout, new RegExp(`ok hello:2.0.0 is live as ${r2.id}`));
  assert.match(g.stdout, /controller unreachable \(restarting\?\)/);
  assert.doesNotMatch(g.stderr, /KILN_E_CONTROLLER/);

  // A broken release: killed while it fails and rolls back; deploy says so and exits 1.
  ws.release("3.0.0", false);
  assert.equal((await kiln(["bake"], { cwd: ws.dir })).code, 0);
  const broken = deployInBackground(ws.dir);
  const brokenKills = await killWhileRolling(ws.dir, 5, broken);
  const b = await broken;
  const h3 = await history();
  const r3 = h3.releases.find((r) => r.version === "3.0.0")!;
  assert.ok(brokenKills >= 1, "the broken rollout was killed at least once");
  assert.notEqual(r3.status, "live");
  assert.equal(b.code, 1, `deploy of the broken release: ${b.stdout}\n${b.stderr}`);
  assert.match(b.stdout, /FAIL hello:3.0.0 failed and was rolled back/);
  assert.equal(h3.releases.find((r) => r.status === "live")?.id, r2.id, "the fleet is back on 2.0.0");
});

test("kiln up supervises the controller: a SIGKILLed controller comes back by itself; kiln down stops both and nothing restarts", async () => {
  const ws = await slowHello("kiln-supervise-");
  const up = await kiln(["up", "--detach"], { cwd: ws.dir }); // no fleet needed: the controller alone
  assert.equal(up.code, 0, up.stderr);
  const ctx = openWorkspace(join(ws.dir, "kiln.yaml"));
  const supervisor = readPidFile(supervisorFile(ctx.paths));
  assert.ok(supervisor !== undefined && pidAlive(supervisor), "kiln up started a supervisor");
  const seen = new Set<number>();
  for (let k = 0; k < 3; k++) {
    const before = (await ctx.client.status()).controller.pid;
    seen.add(before);
    process.kill(before, "SIGKILL");
    await until(() => !pidAlive(before), 5000, "controller death");
    // Nobody calls `kiln up`: the supervisor restarts it.
    let back = 0;
    await until(async () => {
      back = (await ctx.client.status().catch(() => undefined))?.controller.pid ?? 0;
      return back !== 0 && back !== before;
    }, 30_000, `controller restarted after kill ${k + 1}`);
    assert.ok(!seen.has(back));
  }
  assert.ok(readFileSync(ctx.paths.controllerLog, "utf8").includes("exited (signal SIGKILL)"), "the supervisor logs each restart");
  const controller = (await ctx.client.status()).controller.pid;
  const down = await kiln(["down", "--json"], { cwd: ws.dir, timeoutMs: 60_000 });
  assert.equal(down.code, 0, down.stderr);
  assert.ok((JSON.parse(down.stdout) as { stopped: string[] }).stopped.includes("supervisor"), down.stdout);
  assert.ok(!pidAlive(supervisor) && !pidAlive(controller));
  await new Promise((r) => setTimeout(r, 2000));
  assert.equal(await ctx.client.ping(), false, "no controller was started again after kiln down");
  assert.equal(readPidFile(ctx.paths.controllerPid), undefined);
});

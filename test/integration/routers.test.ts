// `router: haproxy` end to end through the real CLI: kiln up starts HAProxy, the controller
// drives it, a rolling replacement under continuous load drops nothing, a killed controller
// leaves HAProxy serving and a restarted one attaches, and kiln down leaves no HAProxy behind.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { LoadHandle } from "../../src/loadgen/client.js";
import { pidAlive } from "../../src/home.js";
import { HAPROXY_BIN } from "../../src/traffic/haproxy/process.js";
import { bakeAndDeploy, helloWorkspace, inRotation, kiln, kilnDown, kilnStatus, requireTool, startFleetLoad, until } from "./support.js";

let ws: Awaited<ReturnType<typeof helloWorkspace>>;
let load: LoadHandle | undefined;
let window: () => Promise<{ requests: number; failed: number }>;
const has = (cmd: string, args: string[]) => {
  try {
    execFileSync(cmd, args, { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
};
const ready = has("bwrap", ["--version"]) && existsSync(HAPROXY_BIN);
const haproxyPidFile = () => join(ws.dir, ".kiln", "run", "haproxy", "haproxy.pid");
const haproxyPid = () => Number(readFileSync(haproxyPidFile(), "utf8").trim().split("\n")[0]);

before(async () => {
  ws = await helloWorkspace("kiln-it-routers-");
});

after(async () => {
  if (load) await load.stop();
  if (ws) {
    await kilnDown([], { cwd: ws.dir });
    rmSync(ws.dir, { recursive: true, force: true });
  }
});

test("router haproxy: up, deploy v1, HAProxy serves the fleet", { timeout: 240_000 }, async (t) => {
  if (!requireTool(ready, "needs bubblewrap and /usr/sbin/haproxy", t)) return;
  assert.equal((await kiln(["bake", "--json"], { cwd: ws.dir })).code, 0);
  const up = await kiln(["up", "--detach", "--router", "haproxy", "--json"], { cwd: ws.dir });
  assert.equal(up.code, 0, up.stderr);
  const u = JSON.parse(up.stdout) as { router: string; proxy: { pid: number } };
  assert.equal(u.router, "haproxy");
  assert.equal(u.proxy.pid, haproxyPid());
  assert.match(readFileSync(`/proc/${u.proxy.pid}/cmdline`, "utf8"), /haproxy/);
  const d = await kiln(["deploy"], { cwd: ws.dir });
  assert.equal(d.code, 0, d.stdout + d.stderr);
  const s = await kilnStatus(ws.dir);
  assert.equal(inRotation(s).length, 3);
  assert.equal(s.proxy.pid, haproxyPid(), "the controller's router is HAProxy");
  const st = await kiln(["status"], { cwd: ws.dir });
  assert.match(st.stdout, /router\s+haproxy/);
  const r = await fetch(`http://127.0.0.1:${ws.port}/`);
  assert.equal(r.status, 200);
  ({ load, window } = await startFleetLoad(ws.port, 10_000));
});

test("router haproxy: rolling replacement to v2 under load, 0 failed requests", { timeout: 240_000 }, async (t) => {
  if (!load) return t.skip("no fleet");
  const d = await bakeAndDeploy(ws, "2.0.0", { strategy: "rolling" });
  assert.equal(d.code, 0, d.stdout + d.stderr);
  const s = await kilnStatus(ws.dir);
  assert.equal(s.release?.version, "2.0.0");
  assert.ok(inRotation(s).length === 3 && inRotation(s).every((i) => i.version === "2.0.0"), JSON.stringify(s.instances));
  const w = await window();
  assert.ok(w.requests > 100, `load kept flowing (${w.requests})`);
  assert.equal(w.failed, 0);
});

test("router haproxy: a killed controller leaves HAProxy serving; kiln up attaches again", { timeout: 180_000 }, async (t) => {
  if (!load) return t.skip("no fleet");
  const hp = haproxyPid();
  const cpid = (await kilnStatus(ws.dir)).controller.pid;
  process.kill(cpid, "SIGKILL");
  await until(() => !pidAlive(cpid), 5000, "controller gone");
  await new Promise((r) => setTimeout(r, 1000));
  assert.ok(pidAlive(hp), "HAProxy still runs");
  const up = await kiln(["up", "--detach", "--json"], { cwd: ws.dir });
  assert.equal(up.code, 0, up.stderr);
  assert.equal(JSON.parse(up.stdout).router, "haproxy", "the running router is kept without --router");
  assert.equal(haproxyPid(), hp, "the same HAProxy, attached to");
  const s = await kilnStatus(ws.dir);
  assert.equal(inRotation(s).length, 3);
  assert.equal(s.release?.version, "2.0.0");
  const w = await window();
  assert.ok(w.requests > 50, `load kept flowing (${w.requests})`);
  assert.equal(w.failed, 0);
});

test("router haproxy: a killed HAProxy is started again by the controller, with the table", { timeout: 180_000 }, async (t) => {
  if (!load) return t.skip("no fleet");
  await load.stop(); // a killed data plane fails requests by definition; this checks the recovery
  load = undefined;
  const hp = haproxyPid();
  process.kill(hp, "SIGKILL");
  await until(() => existsSync(haproxyPidFile()) && haproxyPid() !== hp && pidAlive(haproxyPid()), 20_000, "HAProxy started again");
  await until(
    async () => {
      const r = await fetch(`http://127.0.0.1:${ws.port}/`).catch(() => undefined);
      await r?.text();
      return r?.status === 200;
    },
    20_000,
    "HAProxy serving the fleet again",
  );
  const s = await kilnStatus(ws.dir);
  assert.equal(s.proxy.pid, haproxyPid());
  ({ load, window } = await startFleetLoad(ws.port, 10_000));
});

test("router haproxy: kiln maintenance on answers 503 with Retry-After, off serves again", { timeout: 180_000 }, async (t) => {
  if (!load) return t.skip("no fleet");
  await load.stop(); // its requests would count the 503s as failures
  load = undefined;
  const on = await kiln(["maintenance", "on", "--message", "Back at 14:00", "--retry-after", "600", "--json"], { cwd: ws.dir });
  assert.equal(on.code, 0, on.stdout + on.stderr);
  assert.deepEqual(JSON.parse(on.stdout).maintenance, { message: "Back at 14:00", retryAfterS: 600 });
  for (let i = 0; i < 3; i++) {
    const r = await fetch(`http://127.0.0.1:${ws.port}/`);
    assert.equal(r.status, 503);
    assert.equal(r.headers.get("retry-after"), "600");
    assert.match(await r.text(), /Back at 14:00/);
  }
  const s = await kilnStatus(ws.dir);
  assert.equal(inRotation(s).length, 3, "instances untouched");
  const bad = await kiln(["maintenance", "sideways"], { cwd: ws.dir });
  assert.equal(bad.code, 2);
  const off = await kiln(["maintenance", "off", "--json"], { cwd: ws.dir });
  assert.equal(off.code, 0, off.stdout + off.stderr);
  assert.equal(JSON.parse(off.stdout).maintenance, null);
  const r = await fetch(`http://127.0.0.1:${ws.port}/`);
  assert.equal(r.status, 200);
  await r.text();
});

test("router haproxy: kiln down leaves no HAProxy process", { timeout: 180_000 }, async (t) => {
  if (!existsSync(haproxyPidFile())) return t.skip("no fleet");
  if (load) await load.stop();
  load = undefined;
  const hp = haproxyPid();
  const d = await kiln(["down", "--json"], { cwd: ws.dir });
  assert.equal(d.code, 0, d.stderr);
  assert.ok((JSON.parse(d.stdout) as { stopped: string[] }).stopped.includes("haproxy"), d.stdout);
  await until(() => !pidAlive(hp), 5000, "HAProxy gone");
  assert.equal(existsSync(haproxyPidFile()), false);
});

test("router builtin (kiln.yaml default): kiln maintenance on answers 503 with Retry-After, off serves again", { timeout: 240_000 }, async (t) => {
  if (!requireTool(has("bwrap", ["--version"]), "needs bubblewrap", t)) return;
  const b = await helloWorkspace("kiln-it-routers-builtin-");
  try {
    assert.equal((await kiln(["bake", "--json"], { cwd: b.dir })).code, 0);
    const up = await kiln(["up", "--detach", "--json"], { cwd: b.dir });
    assert.equal(up.code, 0, up.stderr);
    assert.equal(JSON.parse(up.stdout).router, "builtin");
    const d = await kiln(["deploy"], { cwd: b.dir });
    assert.equal(d.code, 0, d.stdout + d.stderr);
    assert.match((await kiln(["status"], { cwd: b.dir })).stdout, /router\s+builtin/);
    const on = await kiln(["maintenance", "on", "--retry-after", "30", "--json"], { cwd: b.dir });
    assert.equal(on.code, 0, on.stdout + on.stderr);
    const r = await fetch(`http://127.0.0.1:${b.port}/`);
    assert.equal(r.status, 503);
    assert.equal(r.headers.get("retry-after"), "30");
    await r.text();
    assert.equal((await kiln(["maintenance", "off"], { cwd: b.dir })).code, 0);
    const ok = await fetch(`http://127.0.0.1:${b.port}/`);
    assert.equal(ok.status, 200);
    await ok.text();
  } finally {
    await kilnDown([], { cwd: b.dir });
    rmSync(b.dir, { recursive: true, force: true });
  }
});

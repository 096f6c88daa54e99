// Several services on one HAProxy 2.6 listener (edge.hosts), through each
// service's own HaproxyRouter: a service joining (a seamless reload) and a
// rolling swap of one under load on both lose no request and leave the other's
// servers alone; unknown hosts get 404; maintenance is per service; a reload
// asked by one service keeps the other's counters; a controller killed with -9
// leaves both serving and its successor reads its own backend back; a service
// leaving drops its hosts at runtime (no reload, established connections kept)
// and the last one out stops HAProxy.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import http from "node:http";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { pidAlive } from "../../../src/home.js";
import { HAPROXY_BIN, startHaproxyRouter, type RunningHaproxyRouter } from "../../../src/traffic/haproxy/process.js";
import { runtimeCommand } from "../../../src/traffic/haproxy/runtime.js";
import type { ServiceRoute } from "../../../src/traffic/router.js";
import { firstLine, request, startBackend, table, target, tempDir, waitExit, waitFor, type Backend, type Reply } from "../helpers.js";

const present = existsSync(HAPROXY_BIN);
if (!present && process.env.KILN_REQUIRE_ALL === "1") throw new Error(`${HAPROXY_BIN} is missing and KILN_REQUIRE_ALL=1`);

const PROCESS_JS = fileURLToPath(new URL("../../../src/traffic/haproxy/process.js", import.meta.url));
const fast = { drainTimeoutMs: 10_000, health: { path: "/healthz", intervalMs: 300, timeoutMs: 500, healthyThreshold: 1, unhealthyThreshold: 2 } };

/** Server names HAProxy holds in a backend right now. */
async function serversIn(h: RunningHaproxyRouter, backend: string): Promise<string[]> {
  const text = await runtimeCommand(h.files.admin, `show servers state ${backend}`);
  return text.split("\n").filter((l) => /^\d/.test(l) && l.includes(" ")).map((l) => l.split(" ")[3]!).sort();
}

/** Bounded keep-alive load with one Host header; every non-200 (or a reply from another service's backend) is an error. */
async function hostLoad(
  address: string,
  host: string,
  accept: (r: Reply) => boolean,
  o: { total: number; concurrency: number; deadlineMs: number; stop?: () => boolean; onProgress?: (n: number) => void },
): Promise<{ ok: number; errors: string[] }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency });
  let started = 0;
  let ok = 0;
  const errors: string[] = [];
  const until = Date.now() + o.deadlineMs;
  const worker = async () => {
    while (started < o.total && Date.now() < until && !o.stop?.()) {
      started++;
      try {
        const r = await request(address, { agent, headers: { host } });
        if (r.status === 200 && accept(r)) ok++;
        else errors.push(`HTTP ${r.status} from ${String(r.headers["x-backend"])}: ${r.body.slice(0, 80)}`);
      } catch (e) {
        errors.push((e as Error).message);
      }
      o.onProgress?.(ok + errors.length);
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, worker));
  agent.destroy();
  return { ok, errors };
}

const from = (names: string[]) => (r: Reply) => names.includes(String(r.headers["x-backend"]));

describe("several services on one HAProxy listener", { skip: present ? false : `${HAPROXY_BIN} not installed` }, () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });
  const backend = async (name: string): Promise<Backend> => {
    const b = await startBackend(name);
    cleanups.push(() => b.close());
    return b;
  };
  const join = async (runDir: string, service: string, route: ServiceRoute, listen = "127.0.0.1:0") => {
    const h = await startHaproxyRouter({ listen, runDir, shared: { service, route } });
    cleanups.push(() => h.stop());
    return h;
  };

  it("routes by host, a service joining and a rollout of another lose no request and leave the other's backend alone", async () => {
    const { dir, cleanup } = await tempDir();
    cleanups.push(cleanup);
    const [a1, a2, a3, a4, b1, b2] = await Promise.all(["a1", "a2", "a3", "a4", "b1", "b2"].map(backend));
    const alpha = await join(dir, "alpha", { hosts: ["alpha.test"] });
    await alpha.router.setTable(table(1, [target("a1", a1!.address, { release: "v1" }), target("a2", a2!.address, { release: "v1" })], fast));
    assert.equal((await request(alpha.listen, { headers: { host: "alpha.test" } })).status, 200);

    // Beta joins while alpha is under load: its backend needs a reload, which must not drop alpha's requests.
    let alphaDone = 0;
    let betaUp = false;
    const alphaJoinLoad = hostLoad(alpha.listen, "alpha.test", from(["a1", "a2"]), { total: 100_000, concurrency: 4, deadlineMs: 60_000, stop: () => betaUp, onProgress: (n) => (alphaDone = n) });
    await waitFor(() => alphaDone >= 200, "alpha load running");
    const beta = await join(dir, "beta", { hosts: ["beta.test", "*.beta.test"] }, alpha.listen);
    assert.equal(beta.attached, true, "beta attached to alpha's HAProxy");
    assert.equal(beta.pid, alpha.pid);
    await beta.router.setTable(table(1, [target("b1", b1!.address, { release: "w1" }), target("b2", b2!.address, { release: "w1" })], fast));
    // keep alpha's load a little longer on the new worker, then stop it
    const settled = alphaDone + 200;
    await waitFor(() => alphaDone >= settled, "alpha load on the new worker");
    betaUp = true;
    const joined = await alphaJoinLoad;
    assert.deepEqual(joined.errors, [], `alpha's failed requests while beta joined: ${joined.errors.slice(0, 5).join(" | ")}`);
    process.stderr.write(`# alpha while beta joined: ${joined.ok} requests, ${joined.errors.length} failed\n`);

    assert.equal((await request(alpha.listen, { headers: { host: `beta.test:${alpha.listen.split(":")[1]}` } })).headers["x-backend"]?.toString().startsWith("b"), true);
    assert.match(String((await request(alpha.listen, { headers: { host: "www.beta.test" } })).headers["x-backend"]), /^b[12]$/, "wildcard host");
    assert.match(String((await request(alpha.listen, { headers: { host: "ALPHA.test" } })).headers["x-backend"]), /^a[12]$/);
    assert.equal((await request(alpha.listen, { headers: { host: "other.test" } })).status, 404, "unknown host");
    assert.equal((await request(alpha.listen, { headers: { host: "x.www.beta.test" } })).status, 404, "a wildcard covers one label");

    // Alpha rolls v1 → v2 while both are under load.
    const betaBefore = await serversIn(beta, "kiln_svc_beta");
    let stop = false;
    let betaDone = 0;
    const alphaAccept = from(["a1", "a2", "a3", "a4"]);
    const alphaLoad = hostLoad(alpha.listen, "alpha.test", alphaAccept, { total: 100_000, concurrency: 4, deadlineMs: 90_000, stop: () => stop });
    const betaLoad = hostLoad(alpha.listen, "beta.test", from(["b1", "b2"]), { total: 100_000, concurrency: 4, deadlineMs: 90_000, stop: () => stop, onProgress: (n) => (betaDone = n) });
    await waitFor(() => betaDone >= 200, "beta load running");
    const v1 = (state: "active" | "draining") => [target("a1", a1!.address, { release: "v1", state }), target("a2", a2!.address, { release: "v1", state })];
    const v2 = [target("a3", a3!.address, { release: "v2" }), target("a4", a4!.address, { release: "v2" })];
    await alpha.router.setTable(table(2, [...v1("active"), ...v2], fast));
    await waitFor(() => a3!.hits.length > 20 && a4!.hits.length > 20, "v2 serving");
    await alpha.router.setTable(table(3, [...v1("draining"), ...v2], fast));
    await alpha.router.setTable(table(4, v2, fast));
    await waitFor(async () => (await serversIn(alpha, "kiln_svc_alpha")).join() === "a3,a4", "v1 servers deleted once idle", 20_000, 100);
    assert.deepEqual(await serversIn(beta, "kiln_svc_beta"), betaBefore, "beta's servers untouched by alpha's rollout");
    const mark = betaDone + 200;
    await waitFor(() => betaDone >= mark, "beta load after the rollout");
    stop = true;
    const [ra, rb] = await Promise.all([alphaLoad, betaLoad]);
    process.stderr.write(`# rollout: alpha ${ra.ok} requests (${ra.errors.length} failed), beta ${rb.ok} requests (${rb.errors.length} failed)\n`);
    assert.deepEqual(ra.errors, [], `alpha's failed requests: ${ra.errors.slice(0, 5).join(" | ")}`);
    assert.deepEqual(rb.errors, [], `beta's failed requests: ${rb.errors.slice(0, 5).join(" | ")}`);
    assert.ok(ra.ok >= 500 && rb.ok >= 500, `both loads ran through the rollout (${ra.ok}, ${rb.ok})`);

    // Each router sees only its own service.
    const sa = await alpha.router.stats();
    const sb = await beta.router.stats();
    assert.deepEqual(sa.targets.map((t) => t.id), ["a3", "a4"]);
    assert.deepEqual(sb.targets.map((t) => t.id), ["b1", "b2"]);
    assert.deepEqual(Object.keys(sb.releases), ["w1"]);
    assert.ok((sb.releases.w1?.requests ?? 0) >= rb.ok, "beta's counters hold its load");
    assert.equal(sb.releases.w1?.latency?.reduce((x, y) => x + y, 0), sb.releases.w1?.requests, "beta's histogram counts its own requests only");

    // Maintenance is per service.
    await alpha.router.setTable(table(5, v2, { ...fast, maintenance: { message: "alpha is resting" } }));
    const m = await request(alpha.listen, { headers: { host: "alpha.test" } });
    assert.equal(m.status, 503);
    assert.match(m.body, /alpha is resting/);
    assert.equal((await request(alpha.listen, { headers: { host: "beta.test" } })).status, 200, "beta is not in maintenance");
    await alpha.router.setTable(table(6, v2, fast));
    assert.equal((await request(alpha.listen, { headers: { host: "alpha.test" } })).status, 200);

    // A reload asked by beta (its health path changes) keeps alpha's counters.
    const before = (await alpha.router.stats()).releases.v2?.requests ?? 0;
    await beta.router.setTable(table(2, [target("b1", b1!.address, { release: "w1" }), target("b2", b2!.address, { release: "w1" })], { ...fast, health: { ...fast.health, path: "/healthz?v=2" } }));
    const afterReload = (await alpha.router.stats()).releases.v2?.requests ?? 0;
    assert.ok(afterReload >= before, `alpha's v2 count survives beta's reload (${before} → ${afterReload})`);
    assert.equal((await request(alpha.listen, { headers: { host: "beta.test" } })).status, 200);
  });

  it("a controller killed with -9 leaves both services serving; its successor reads its backend back; leaving drops only its hosts", async () => {
    const { dir, cleanup } = await tempDir();
    cleanups.push(cleanup);
    const [a1, b1] = await Promise.all(["a1", "b1"].map(backend));
    const script = `
      const { startHaproxyRouter } = await import(${JSON.stringify(PROCESS_JS)});
      const h = await startHaproxyRouter({ listen: "127.0.0.1:0", runDir: ${JSON.stringify(dir)}, shared: { service: "alpha", route: { hosts: ["alpha.test"] } } });
      await h.router.setTable({ version: 7, targets: [{ id: "a1", release: "r1", address: ${JSON.stringify(a1!.address)}, weight: 1, state: "active" }],
        health: { path: "/healthz", intervalMs: 60000, timeoutMs: 1000, healthyThreshold: 1, unhealthyThreshold: 1 }, drainTimeoutMs: 30000 });
      console.log(JSON.stringify({ pid: h.pid, listen: h.listen }));
      setInterval(() => undefined, 1000);`;
    const controller = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    const { pid, listen } = JSON.parse(await firstLine(controller, 20_000)) as { pid: number; listen: string };
    cleanups.push(async () => {
      if (pidAlive(pid)) process.kill(pid, "SIGTERM");
    });
    const beta = await join(dir, "beta", { hosts: ["beta.test"] }, listen);
    await beta.router.setTable(table(3, [target("b1", b1!.address)], fast));

    // Keep-alive connections open across the crash and, later, across alpha leaving.
    const agentA = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const agentB = new http.Agent({ keepAlive: true, maxSockets: 1 });
    assert.equal((await request(listen, { agent: agentA, headers: { host: "alpha.test" } })).headers["x-backend"], "a1");
    assert.equal((await request(listen, { agent: agentB, headers: { host: "beta.test" } })).headers["x-backend"], "b1");
    controller.kill("SIGKILL");
    await waitExit(controller, 5000);
    assert.ok(pidAlive(pid), "HAProxy outlives alpha's controller");
    for (let i = 0; i < 20; i++) {
      assert.equal((await request(listen, { agent: agentA, headers: { host: "alpha.test" } })).headers["x-backend"], "a1");
      assert.equal((await request(listen, { agent: agentB, headers: { host: "beta.test" } })).headers["x-backend"], "b1");
    }

    const alpha = await join(dir, "alpha", { hosts: ["alpha.test"] }, listen);
    assert.equal(alpha.attached, true);
    assert.equal(alpha.pid, pid);
    const s = await alpha.router.stats();
    assert.equal(s.tableVersion, 7, "alpha's table version survives its controller");
    assert.deepEqual(s.targets.map((t) => [t.id, t.release, t.healthy, t.requests]), [["a1", "r1", true, 21]]);
    assert.equal((await beta.router.stats()).tableVersion, 3, "beta's own state is its own");

    // Alpha leaves: its host gets 404 at once, beta's established connection goes on, no reload.
    const worker = (await runtimeCommand(alpha.files.admin, "show info")).match(/^Pid: (\d+)/m)?.[1];
    await alpha.stop();
    assert.ok(pidAlive(pid), "HAProxy stays for beta");
    assert.equal((await request(listen, { headers: { host: "alpha.test" } })).status, 404);
    for (let i = 0; i < 10; i++) assert.equal((await request(listen, { agent: agentB, headers: { host: "beta.test" } })).headers["x-backend"], "b1");
    assert.equal((await runtimeCommand(beta.files.admin, "show info")).match(/^Pid: (\d+)/m)?.[1], worker, "leaving needs no reload");
    agentA.destroy();
    agentB.destroy();
    await beta.stop();
    await waitFor(() => !pidAlive(pid), "the last service out stops HAProxy");
  });
});

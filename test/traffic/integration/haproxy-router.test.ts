// HaproxyRouter against a real HAProxy 2.6: a rolling swap under continuous
// load with no failed request, in-flight requests surviving a drain, a
// controller killed with -9 leaving HAProxy serving and a new router reading
// its state back, and an HAProxy restart re-populated from the saved table.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import path from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { isKilnError } from "../../../src/errors.js";
import { pidAlive } from "../../../src/home.js";
import { HAPROXY_BIN, startHaproxyRouter, type RunningHaproxyRouter } from "../../../src/traffic/haproxy/process.js";
import { runtimeCommand } from "../../../src/traffic/haproxy/runtime.js";
import { firstLine, load, request, send, startBackend, table, target, tempDir, waitExit, waitFor, type Backend } from "../helpers.js";

const present = existsSync(HAPROXY_BIN);
if (!present && process.env.KILN_REQUIRE_ALL === "1") throw new Error(`${HAPROXY_BIN} is missing and KILN_REQUIRE_ALL=1`);

const PROCESS_JS = fileURLToPath(new URL("../../../src/traffic/haproxy/process.js", import.meta.url));

/** Server names HAProxy holds in the production backend right now. */
async function serversIn(h: RunningHaproxyRouter): Promise<string[]> {
  const text = await runtimeCommand(h.files.admin, "show servers state kiln");
  return text.split("\n").filter((l) => /^\d/.test(l) && l.includes(" ")).map((l) => l.split(" ")[3]!).sort();
}

describe("HaproxyRouter with HAProxy 2.6", { skip: present ? false : `${HAPROXY_BIN} not installed` }, () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });
  const backend = async (name: string): Promise<Backend> => {
    const b = await startBackend(name);
    cleanups.push(() => b.close());
    return b;
  };
  const router = async (dir: string, extra: { previewListen?: string; listen?: string } = {}) => {
    const h = await startHaproxyRouter({ listen: extra.listen ?? "127.0.0.1:0", runDir: dir, ...(extra.previewListen ? { previewListen: extra.previewListen } : {}) });
    cleanups.push(() => h.stop());
    return h;
  };

  it("rolls a 2-instance fleet to a new release through setTable under load: 0 failed requests, in-flight ones finish", async () => {
    const { dir, cleanup } = await tempDir();
    cleanups.push(cleanup);
    const [a1, a2, b1, b2] = await Promise.all(["a1", "a2", "b1", "b2"].map(backend));
    const h = await router(dir);
    const fast = { drainTimeoutMs: 10_000, health: { path: "/healthz", intervalMs: 500, timeoutMs: 500, healthyThreshold: 1, unhealthyThreshold: 2 } };
    const old = (state: "active" | "draining") => [target("a1", a1!.address, { release: "v1", state }), target("a2", a2!.address, { release: "v1", state })];
    const fresh = [target("b1", b1!.address, { release: "v2" }), target("b2", b2!.address, { release: "v2" })];
    await h.router.setTable(table(1, old("active"), fast));

    let done = 0;
    const traffic = load(h.listen, { total: 6000, concurrency: 8, deadlineMs: 60_000, onProgress: (n) => (done = n) });
    await waitFor(() => done >= 300, "load running");
    // A slow request on the old fleet while it is drained and removed.
    const slow = request(h.listen, { path: "/slow?ms=1500" });
    await waitFor(async () => (await h.router.stats()).targets.some((t) => t.inflight > 0 && t.release === "v1"), "slow request in flight");

    await h.router.setTable(table(2, [...old("active"), ...fresh], fast)); // add new
    await waitFor(() => b1!.hits.length > 20 && b2!.hits.length > 20, "new release serving");
    await h.router.setTable(table(3, [...old("draining"), ...fresh], fast)); // drain old
    let s = await h.router.stats();
    assert.deepEqual(s.targets.filter((t) => t.release === "v1").map((t) => t.inRotation), [false, false]);
    const oldHits = a1!.hits.length + a2!.hits.length;
    await h.router.setTable(table(4, fresh, fast)); // remove old
    assert.equal((await slow).status, 200, "the drained instance's in-flight request finished");
    await waitFor(async () => (await serversIn(h)).join() === "b1,b2", "old servers deleted once idle", 15_000, 100);
    assert.ok(a1!.hits.length + a2!.hits.length <= oldHits + 8, "at most the requests already in flight reached the old fleet after the drain");

    const { replies, errors } = await traffic;
    assert.deepEqual(errors, [], `failed requests: ${errors.slice(0, 5).join(" | ")}`);
    assert.ok(replies.length >= 1000, `load kept running through the swap (${replies.length} replies)`);
    s = await h.router.stats();
    assert.equal(s.tableVersion, 4);
    assert.deepEqual(s.targets.map((t) => t.id), ["b1", "b2"]);
    assert.equal(s.releases.v1!.requests + s.releases.v2!.requests, replies.length + 1, "every reply (and the slow one) is counted on its release");
    assert.ok(s.releases.v1!.requests > 0 && s.releases.v2!.requests > 0);
    assert.equal(s.releases.v1!.errors5xx + s.releases.v2!.errors5xx, 0);
  });

  it("survives a controller killed with -9: HAProxy keeps serving, a new router reads version and servers back", async () => {
    const { dir, cleanup } = await tempDir();
    cleanups.push(cleanup);
    const a = await backend("a");
    const script = `
      const { startHaproxyRouter } = await import(${JSON.stringify(PROCESS_JS)});
      const h = await startHaproxyRouter({ listen: "127.0.0.1:0", runDir: ${JSON.stringify(dir)} });
      await h.router.setTable({ version: 7, targets: [{ id: "a", release: "r1", address: ${JSON.stringify(a.address)}, weight: 1, state: "active" }],
        health: { path: "/healthz", intervalMs: 60000, timeoutMs: 1000, healthyThreshold: 1, unhealthyThreshold: 1 }, drainTimeoutMs: 30000 });
      console.log(JSON.stringify({ pid: h.pid, listen: h.listen }));
      setInterval(() => undefined, 1000);`;
    const controller = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    const { pid, listen } = JSON.parse(await firstLine(controller, 15_000)) as { pid: number; listen: string };
    cleanups.push(async () => {
      if (pidAlive(pid)) process.kill(pid, "SIGTERM");
    });
    // Keep-alive connection open across the crash: it must not be dropped.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    assert.equal((await request(listen, { agent })).headers["x-kiln-instance"], "a");
    controller.kill("SIGKILL");
    await waitExit(controller, 5000);

    assert.ok(pidAlive(pid), "HAProxy outlives its controller");
    for (let i = 0; i < 20; i++) assert.equal((await request(listen, { agent })).status, 200);
    agent.destroy();

    const h = await startHaproxyRouter({ listen: "127.0.0.1:0", runDir: dir });
    assert.equal(h.attached, true);
    assert.equal(h.pid, pid);
    assert.equal(h.listen, listen);
    const s = await h.router.stats();
    assert.equal(s.tableVersion, 7, "table version survives the controller");
    assert.deepEqual(s.targets.map((t) => [t.id, t.release, t.healthy, t.requests]), [["a", "r1", true, 21]]);
    await assert.rejects(h.router.setTable(table(6, [])), (e: unknown) => isKilnError(e) && /older than the current version 7/.test(e.message));
    await h.stop();
    await waitFor(() => !pidAlive(pid), "HAProxy stopped");
  });

  it("re-populates a restarted HAProxy from the saved table", async () => {
    const { dir, cleanup } = await tempDir();
    cleanups.push(cleanup);
    const a = await backend("a");
    const first = await router(dir);
    await first.router.setTable(table(3, [target("a", a.address)]));
    await first.detach();
    process.kill(first.pid, "SIGKILL");
    await waitFor(async () => {
      try {
        await request(first.listen, { timeoutMs: 500 });
        return false;
      } catch {
        return true;
      }
    }, "old HAProxy gone (its worker exits with its master)");
    const second = await router(dir, { listen: first.listen });
    assert.equal(second.attached, false);
    assert.notEqual(second.pid, first.pid);
    assert.equal((await request(second.listen)).headers["x-kiln-instance"], "a", "routes at once, before any controller table");
    assert.equal((await second.router.stats()).tableVersion, 3);
  });

  it("reloads seamlessly when the health check path changes: 0 failed requests under load, drains and counters carried over", async () => {
    const { dir, cleanup } = await tempDir();
    cleanups.push(cleanup);
    const [a, b, c] = await Promise.all(["a", "b", "c"].map(backend));
    const h = await router(dir);
    const targets = [target("a", a!.address), target("b", b!.address), target("c", c!.address, { state: "draining" })];
    await h.router.setTable(table(1, targets));
    let done = 0;
    const traffic = load(h.listen, { total: 4000, concurrency: 8, deadlineMs: 60_000, onProgress: (n) => (done = n) });
    await waitFor(() => done >= 300, "load running");
    const slow = request(h.listen, { path: "/slow?ms=1500" });
    await waitFor(async () => (await h.router.stats()).targets.some((t) => t.inflight > 0), "slow request in flight");
    const before = await h.router.stats();
    const workerBefore = /^Pid: (\d+)/m.exec(await runtimeCommand(h.files.admin, "show info"))![1];

    await h.router.setTable(table(2, targets, { health: { path: "/ready", intervalMs: 60_000, timeoutMs: 1000, healthyThreshold: 1, unhealthyThreshold: 1 } }));
    const workerAfter = /^Pid: (\d+)/m.exec(await runtimeCommand(h.files.admin, "show info"))![1];
    assert.notEqual(workerAfter, workerBefore, "a new worker serves after the reload");
    assert.match(readFileSync(h.files.config, "utf8"), /option httpchk GET \/ready\n[^]*server a 127\.0\.0\.1:\d+ weight 1 check/);
    const cHits = c!.hits.length;
    assert.equal((await slow).status, 200, "a request in flight on the old worker finishes");
    const { replies, errors } = await traffic;
    assert.deepEqual(errors, [], `failed requests: ${errors.slice(0, 5).join(" | ")}`);
    assert.ok(replies.length > 300);
    assert.equal(c!.hits.length, cHits, "the draining target is still drained by the new worker");
    const after = await h.router.stats();
    assert.equal(after.pid, before.pid, "the master stays");
    assert.equal(after.tableVersion, 2);
    assert.ok(after.releases.r1!.requests >= before.releases.r1!.requests, "counters do not go backwards across the reload");
    assert.equal(after.targets.find((t) => t.id === "c")!.inRotation, false);
  });

  it("removes a server whose drain deadline passed: its sessions are shut down, then it is deleted", async () => {
    const { dir, cleanup } = await tempDir();
    cleanups.push(cleanup);
    const [a, b] = await Promise.all(["a", "b"].map(backend));
    const h = await router(dir);
    await h.router.setTable(table(1, [target("a", a!.address)], { drainTimeoutMs: 300 }));
    // A POST: HAProxy retries an idempotent request cut by a dying server on another one (as
    // kiln's proxy does), so only a non-idempotent one shows the cut itself.
    const stuck = request(h.listen, { method: "POST", path: "/slow?ms=20000", body: "x", timeoutMs: 30_000 }).then(
      (r) => `HTTP ${r.status}`,
      (e: Error) => e.message,
    );
    await waitFor(async () => (await h.router.stats()).targets[0]!.inflight === 1, "request in flight");
    await h.router.setTable(table(2, [target("b", b!.address)], { drainTimeoutMs: 300 }));
    await waitFor(async () => (await serversIn(h)).join() === "b", "a deleted after its deadline", 15_000, 100);
    const outcome = await stuck;
    assert.ok(outcome !== "HTTP 200", `the request past the deadline was cut (${outcome})`);
    assert.equal((await request(h.listen)).headers["x-kiln-instance"], "b");
    const s = await h.router.stats();
    assert.equal(s.releases.r1!.requests >= 2, true, "the deleted server's request stays counted on its release");
  });

  it("reweighs from observed health: with every listed release down, an unlisted healthy one serves (fallback)", async () => {
    const { dir, cleanup } = await tempDir();
    cleanups.push(cleanup);
    const [b1, g1] = await Promise.all(["b1", "g1"].map(backend));
    const h = await router(dir);
    const health = { path: "/healthz", intervalMs: 100, timeoutMs: 500, healthyThreshold: 1, unhealthyThreshold: 1 };
    await h.router.setTable(table(1, [target("b1", b1!.address, { release: "blue" }), target("g1", g1!.address, { release: "green" })], { releaseWeights: { blue: 100 }, health }));
    assert.deepEqual(await send(h.listen, 4), { b1: 4 });
    b1!.setSick(true);
    await waitFor(async () => (await h.router.stats()).targets.find((t) => t.id === "b1")!.healthy === false, "HAProxy marks b1 down", 10_000, 50);
    await waitFor(async () => JSON.stringify(await send(h.listen, 2)) === JSON.stringify({ g1: 2 }), "green takes the traffic", 10_000, 100);
    b1!.setSick(false);
    await waitFor(async () => JSON.stringify(await send(h.listen, 2)) === JSON.stringify({ b1: 2 }), "blue back, green out again", 10_000, 100);
  });

  it("explains a taken listen address and a missing haproxy binary", async () => {
    const { dir, cleanup } = await tempDir();
    cleanups.push(cleanup);
    const squatter = net.createServer();
    await new Promise<void>((r) => squatter.listen(0, "127.0.0.1", r));
    cleanups.push(() => new Promise((r) => squatter.close(() => r())));
    const taken = `127.0.0.1:${(squatter.address() as AddressInfo).port}`;
    await assert.rejects(startHaproxyRouter({ listen: taken, runDir: path.join(dir, "a") }), (e: unknown) => {
      assert.ok(isKilnError(e));
      assert.equal(e.message, `HAProxy cannot listen on ${taken}: address already in use`);
      assert.match(e.hint ?? "", /change `listen` in kiln\.yaml/);
      assert.equal(e.code, "KILN_E_USAGE", "a taken address is the user's to change");
      assert.deepEqual(e.details, [{ where: taken, path: "listen", message: "EADDRINUSE" }]);
      return true;
    });
    await assert.rejects(startHaproxyRouter({ listen: "127.0.0.1:0", runDir: path.join(dir, "b"), haproxyBin: path.join(dir, "no-haproxy") }), (e: unknown) => {
      assert.ok(isKilnError(e));
      assert.match(e.message, /cannot run .*no-haproxy: ENOENT/);
      assert.match(e.hint ?? "", /apt-get install haproxy/);
      return true;
    });
  });
});

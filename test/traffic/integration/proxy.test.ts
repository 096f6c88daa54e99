// The proxy in-process with real backends on 127.0.0.1: routing, retries,
// draining, health, counters. Every loop is bounded in count and time; no
// assertion is about speed.

import assert from "node:assert/strict";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import path from "node:path";
import { isKilnError } from "../../../src/errors.js";
import { ProxyClient } from "../../../src/traffic/proxy/client.js";
import { startProxy } from "../../../src/traffic/proxy/server.js";
import { windowOf, type Counters } from "../../../src/traffic/router.js";
import {
  countBy,
  load,
  request,
  send,
  sleep,
  spawnBackend,
  startBackend,
  suiteFixtures,
  table,
  target,
  tempDir,
  waitExit,
  waitFor,
  withProxy,
  type Backend,
  type TestProxy,
} from "../helpers.js";

async function freeAddress(): Promise<string> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return `127.0.0.1:${port}`;
}

/** Raw admin call, to see status codes the ProxyClient turns into errors. */
function admin(p: TestProxy, method: string, path: string, body?: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: p.proxy.adminSocket, method, path, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString() || "null") }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

async function statsOf(p: TestProxy, id: string) {
  const s = await p.client.stats();
  const t = s.targets.find((x) => x.id === id);
  assert.ok(t, `target ${id} in stats`);
  return t;
}

describe("proxy", () => {
  const { backend, proxy, defer } = suiteFixtures();

  it("routes by weight, labels responses and forwards headers and bodies", async () => {
    const [a, b, c] = await Promise.all([backend("a"), backend("b"), backend("c")]);
    const p = await proxy();
    await p.client.setTable(
      table(1, [
        target("a", a.address, { weight: 1 }),
        target("b", b.address, { weight: 2 }),
        target("c", c.address, { weight: 3, release: "r2" }),
      ]),
    );
    const { replies, errors } = await load(p.proxy.address, { total: 600, concurrency: 6, deadlineMs: 20_000 });
    assert.deepEqual(errors, []);
    const n = countBy(replies);
    // Roughly proportional (the balancer is exact; leave room for any retry).
    assert.ok(Math.abs((n.a ?? 0) - 100) <= 15, JSON.stringify(n));
    assert.ok(Math.abs((n.b ?? 0) - 200) <= 20, JSON.stringify(n));
    assert.ok(Math.abs((n.c ?? 0) - 300) <= 25, JSON.stringify(n));
    assert.equal((await p.client.stats()).releases.r2!.requests, n.c);
    const fromC = replies.find((r) => r.headers["x-kiln-instance"] === "c");
    assert.equal(fromC?.headers["x-kiln-release"], "r2");
    assert.equal(fromC?.body, "c");

    const hit = a.hits[0]!;
    assert.equal(hit.headers["x-forwarded-for"], "127.0.0.1");
    assert.equal(hit.headers["x-forwarded-proto"], "http");
    assert.equal(hit.headers["x-forwarded-host"], p.proxy.address);

    // Bodies both ways: small (buffered) and 3 MiB (streamed), and a chunked upload.
    const small = await request(p.proxy.address, { method: "POST", path: "/echo", body: "hello" });
    assert.equal(small.body, "hello");
    const big = Buffer.alloc(3 * 1024 * 1024, "x");
    const bigReply = await request(p.proxy.address, { method: "POST", path: "/echo", body: big });
    assert.equal(bigReply.status, 200);
    assert.equal(bigReply.body.length, big.length);
    const chunked = await request(p.proxy.address, {
      method: "PUT",
      path: "/echo",
      body: "chunky",
      headers: { "transfer-encoding": "chunked" },
    });
    assert.equal(chunked.body, "chunky");

    const head = await request(p.proxy.address, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.body, "");
    await request(p.proxy.address, { headers: { connection: "x-secret", "x-secret": "1", "x-kept": "1" } });
    const last = [a, b, c].flatMap((x) => x.hits).find((h) => h.headers["x-kept"] === "1")!;
    assert.equal(last.headers["x-secret"], undefined, "headers named in Connection are not forwarded");
  });

  it("resends even a POST when a reused keep-alive socket fails before any response", async () => {
    // An instance that closes an idle keep-alive socket just as the proxy reuses it:
    // the first request on each connection is answered, the second is met with a hang-up.
    let received = 0;
    const raw = net.createServer((sock) => {
      let n = 0;
      sock.on("data", () => {
        received++;
        if (++n === 1) sock.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nok");
        else sock.destroy();
      });
    });
    await new Promise<void>((r) => raw.listen(0, "127.0.0.1", r));
    defer(() => new Promise((r) => raw.close(() => r())));
    const p = await proxy();
    await p.client.setTable(table(1, [target("raw", `127.0.0.1:${(raw.address() as AddressInfo).port}`)]));
    for (let i = 0; i < 3; i++) {
      const r = await request(p.proxy.address, { method: "POST", path: "/", body: "x" });
      assert.equal(r.status, 200, `POST ${i}`);
    }
    // POST 0 opens a connection; POST 1 reuses it, meets the hang-up and is resent on a
    // fresh connection; POST 2 finds no pooled socket left and opens a new one.
    assert.equal(received, 4);
    const st = await statsOf(p, "raw");
    assert.deepEqual([st.requests, st.connectFailures, st.healthy], [3, 1, true]);
    assert.ok(p.logs.some((l) => /POST \/ → raw: stale-socket/.test(l)), p.logs.join("\n"));
  });

  it("answers 503 with retry-after when no target is eligible", async () => {
    const a = await backend("a");
    const p = await proxy();
    const empty = await request(p.proxy.address);
    assert.equal(empty.status, 503);
    assert.equal(empty.headers["retry-after"], "1");
    assert.match(empty.body, /no healthy instance/);
    await p.client.setTable(
      table(1, [target("a", a.address, { weight: 0 }), target("a2", a.address, { state: "draining" })]),
    );
    assert.equal((await request(p.proxy.address)).status, 503);
    assert.equal(a.hits.length, 0);
  });

  it("loses no GET when a backend is killed under continuous load", async () => {
    const procs = await Promise.all([spawnBackend("k1"), spawnBackend("k2"), spawnBackend("k3")]);
    defer(async () => {
      for (const b of procs) b.child.kill("SIGKILL");
    });
    const p = await proxy();
    await p.client.setTable(table(1, procs.map((b) => target(b.name, b.address))));
    let killed = false;
    let doneAtKill = 0;
    const result = await load(p.proxy.address, {
      total: 1500,
      concurrency: 10,
      deadlineMs: 20_000,
      onProgress: (done) => {
        if (!killed && done >= 300) {
          killed = true;
          doneAtKill = done;
          procs[1]!.child.kill("SIGKILL");
        }
      },
    });
    assert.ok(killed);
    assert.deepEqual(result.errors, [], "no client-visible failure");
    const total = result.replies.length;
    assert.ok(total > doneAtKill + 100, `traffic continued after the kill (${total} total)`);
    const k2 = await statsOf(p, "k2");
    assert.equal(k2.healthy, false);
    assert.equal(k2.inRotation, false);
    assert.ok(k2.connectFailures >= 1);
    await waitExit(procs[1]!.child, 5000);
  });

  it("retries a POST that could not connect, but not one the instance received", async () => {
    const good = await backend("good");
    const dropper = await backend("dropper", { drop: true });
    const dead = await freeAddress();
    const p = await proxy();

    // Connect failure: nothing reached the dead target, so the POST is safe to resend.
    await p.client.setTable(table(1, [target("dead", dead), target("good", good.address)]));
    // The first pick is "dead" (first of equal weights). Even a body too big to buffer is
    // retried: it is only streamed once a connection is up.
    const big = Buffer.alloc(2 * 1024 * 1024, "y");
    const bigReply = await request(p.proxy.address, { method: "POST", path: "/echo", body: big });
    assert.equal(bigReply.status, 200);
    assert.equal(bigReply.headers["x-kiln-instance"], "good");
    assert.equal(bigReply.body.length, big.length);
    good.hits.length = 0;
    for (let i = 0; i < 4; i++) {
      const r = await request(p.proxy.address, { method: "POST", path: "/echo", body: `n${i}` });
      assert.equal(r.status, 200);
      assert.equal(r.body, `n${i}`);
      assert.equal(r.headers["x-kiln-instance"], "good");
    }
    assert.equal(good.hits.length, 4);
    const deadStats = await statsOf(p, "dead");
    assert.equal(deadStats.healthy, false, "a connect failure takes the target out at once");
    assert.ok(deadStats.connectFailures >= 1);
    assert.equal(deadStats.requests, 0);

    // The dropper reads the request and hangs up: a POST must not be replayed.
    good.hits.length = 0;
    await p.client.setTable(table(2, [target("dropper", dropper.address), target("good", good.address)]));
    const posts = [];
    for (let i = 0; i < 4; i++) posts.push(await request(p.proxy.address, { method: "POST", path: "/echo", body: "once" }));
    const statuses = posts.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 200, 502, 502]);
    assert.equal(dropper.hits.length, 2);
    assert.equal(good.hits.length, 2, "the dropped POSTs were not resent to the good backend");
    const bad = posts.find((r) => r.status === 502)!;
    assert.equal(bad.headers["x-kiln-instance"], "dropper");
    const ds = await statsOf(p, "dropper");
    assert.deepEqual([ds.requests, ds.errors5xx, ds.connectFailures, ds.healthy], [2, 2, 2, true]);

    // The same failure on a GET is retried.
    good.hits.length = 0;
    for (let i = 0; i < 4; i++) {
      const r = await request(p.proxy.address, { path: "/" });
      assert.equal(r.status, 200);
      assert.equal(r.headers["x-kiln-instance"], "good");
    }
  });

  it("drains: in-flight requests finish, new ones go elsewhere", async () => {
    const [a, b] = await Promise.all([backend("a"), backend("b")]);
    const p = await proxy();
    await p.client.setTable(table(1, [target("a", a.address), target("b", b.address, { weight: 0 })]));
    const slow = request(p.proxy.address, { path: "/slow?ms=1500" });
    await waitFor(async () => (await statsOf(p, "a")).inflight === 1, "slow request in flight on a");

    await p.client.setTable(table(2, [target("a", a.address, { state: "draining" }), target("b", b.address)]));
    const sa = await statsOf(p, "a");
    assert.equal(sa.state, "draining");
    assert.equal(sa.inRotation, false);
    assert.equal(sa.inflight, 1);
    assert.equal(typeof sa.drainingSince, "number");

    const hitsBefore = a.hits.length;
    for (let i = 0; i < 20; i++) assert.equal((await request(p.proxy.address)).headers["x-kiln-instance"], "b");
    assert.equal(a.hits.length, hitsBefore, "no new request reached the draining target");

    const done = await slow;
    assert.equal(done.status, 200);
    assert.equal(done.body, "a slow");
    await waitFor(async () => (await statsOf(p, "a")).inflight === 0, "a drained");
  });

  it("keeps requests to a removed target going until they finish", async () => {
    const [a, b] = await Promise.all([backend("a"), backend("b")]);
    const p = await proxy();
    await p.client.setTable(table(1, [target("a", a.address)]));
    const slow = request(p.proxy.address, { path: "/slow?ms=1000" });
    await waitFor(async () => (await statsOf(p, "a")).inflight === 1, "slow request in flight on a");

    await p.client.setTable(table(2, [target("b", b.address)]));
    const sa = await statsOf(p, "a");
    assert.deepEqual([sa.state, sa.inRotation, sa.inflight], ["draining", false, 1]);
    assert.equal((await request(p.proxy.address)).headers["x-kiln-instance"], "b");

    const done = await slow;
    assert.equal(done.status, 200);
    assert.equal(done.body, "a slow");
    await waitFor(async () => !(await p.client.stats()).targets.some((t) => t.id === "a"), "a forgotten");
  });

  it("aborts requests still running at the drain deadline", async () => {
    const a = await backend("a");
    const p = await proxy();
    await p.client.setTable(table(1, [target("a", a.address)], { drainTimeoutMs: 200 }));
    // Headers are sent at once, the body never finishes: the client must see a cut, not a short 200.
    const stream = request(p.proxy.address, { path: "/stream?ms=60000" });
    await waitFor(async () => (await statsOf(p, "a")).inflight === 1, "stream in flight");
    await p.client.setTable(table(2, [target("a", a.address, { state: "draining" })], { drainTimeoutMs: 200 }));
    await assert.rejects(stream);
    await waitFor(async () => (await statsOf(p, "a")).inflight === 0, "aborted request counted out");
    assert.ok(p.logs.some((l) => /drain timeout: aborting 1/.test(l)), p.logs.join("\n"));
  });

  it("at the drain deadline also cuts a request the instance has not answered yet (502, not a wait for the upstream timeout)", async () => {
    const a = await backend("a");
    const p = await proxy({ upstreamTimeoutMs: 60_000 });
    await p.client.setTable(table(1, [target("a", a.address)], { drainTimeoutMs: 200 }));
    // POST: not idempotent, so the cut attempt is not retried (and there is no other target).
    const slow = request(p.proxy.address, { path: "/slow?ms=60000", method: "POST", body: "x" });
    await waitFor(async () => (await statsOf(p, "a")).inflight === 1, "slow request in flight");
    await p.client.setTable(table(2, [target("a", a.address, { state: "draining" })], { drainTimeoutMs: 200 }));
    const r = await slow;
    assert.equal(r.status, 502);
    await waitFor(async () => (await statsOf(p, "a")).inflight === 0, "cut request counted out");
    assert.ok(p.logs.some((l) => /drain timeout: aborting 1/.test(l)), p.logs.join("\n"));
  });

  it("takes an unhealthy backend out with active checks and brings it back", async () => {
    const [a, b] = await Promise.all([backend("a"), backend("b")]);
    const p = await proxy();
    const health = { path: "/healthz", intervalMs: 30, timeoutMs: 500, healthyThreshold: 2, unhealthyThreshold: 2 };
    await p.client.setTable(table(1, [target("a", a.address), target("b", b.address)], { health }));

    a.setSick(true);
    await waitFor(async () => !(await statsOf(p, "a")).healthy, "a marked unhealthy");
    for (let i = 0; i < 10; i++) assert.equal((await request(p.proxy.address)).headers["x-kiln-instance"], "b");

    a.setSick(false);
    await waitFor(async () => (await statsOf(p, "a")).inRotation, "a back in rotation");
    const n = countBy(await Promise.all(Array.from({ length: 10 }, () => request(p.proxy.address))));
    assert.ok((n.a ?? 0) > 0, JSON.stringify(n));
  });

  it("counts per target and per release, and keeps counters of removed releases", async () => {
    const [a, b] = await Promise.all([backend("a"), backend("b")]);
    const p = await proxy();
    await p.client.setTable(
      table(1, [target("a", a.address, { release: "blue" }), target("b", b.address, { release: "green" })]),
    );
    for (let i = 0; i < 10; i++) await request(p.proxy.address);
    await p.client.setTable(table(2, [target("b", b.address, { release: "green" })]));
    for (let i = 0; i < 3; i++) assert.equal((await request(p.proxy.address, { path: "/fail" })).status, 500);

    const s = await p.client.stats();
    const plain = (c: Counters | undefined) => c && { requests: c.requests, errors5xx: c.errors5xx, connectFailures: c.connectFailures };
    assert.deepEqual(plain(s.releases.blue), { requests: 5, errors5xx: 0, connectFailures: 0 });
    assert.deepEqual(plain(s.releases.green), { requests: 8, errors5xx: 3, connectFailures: 0 });
    const sb = s.targets.find((t) => t.id === "b")!;
    assert.deepEqual([sb.requests, sb.errors5xx], [8, 3]);
    assert.equal(s.pid, process.pid);
    assert.equal(s.listen, p.proxy.address);
  });

  it("answers 504 when an instance sends nothing for upstreamTimeoutMs", async () => {
    const a = await backend("a");
    const p = await proxy({ upstreamTimeoutMs: 200 });
    await p.client.setTable(table(1, [target("a", a.address)]));
    const r = await request(p.proxy.address, { path: "/slow?ms=3000" });
    assert.equal(r.status, 504);
    assert.equal(r.headers["x-kiln-instance"], "a");
    assert.equal(a.hits.length, 1, "a timed-out request is not resent");
    const st = await statsOf(p, "a");
    assert.deepEqual([st.requests, st.errors5xx, st.healthy], [1, 1, true]);
  });

  it("answers 504 also to a request still queued for one of the target's sockets", async () => {
    const a = await backend("a");
    const p = await proxy({ upstreamTimeoutMs: 200, maxSocketsPerTarget: 1 });
    await p.client.setTable(table(1, [target("a", a.address)]));
    // One socket: the second request waits in the agent's queue behind the first.
    const [r1, r2] = await Promise.all([request(p.proxy.address, { path: "/slow?ms=60000" }), request(p.proxy.address, { path: "/slow?ms=60000" })]);
    assert.deepEqual([r1.status, r2.status], [504, 504]);
    await waitFor(async () => (await statsOf(p, "a")).inflight === 0, "timed-out requests counted out");
  });

  it("never answers 504 for slowness with upstreamTimeoutMs 0", async () => {
    const a = await backend("a");
    const p = await proxy({ upstreamTimeoutMs: 0 });
    await p.client.setTable(table(1, [target("a", a.address)]));
    const r = await request(p.proxy.address, { path: "/slow?ms=300" });
    assert.equal(r.status, 200);
    assert.equal(a.hits.length, 1);
  });

  it("rejects stale and invalid tables on the admin API", async () => {
    const a = await backend("a");
    const p = await proxy();
    await p.client.setTable(table(7, [target("a", a.address)]));
    const stale = await admin(p, "PUT", "/table", JSON.stringify(table(6, [])));
    assert.equal(stale.status, 409);
    assert.equal(stale.body.currentVersion, 7);
    await assert.rejects(p.client.setTable(table(6, [])), (e: unknown) => isKilnError(e) && e.code === "KILN_E_CONTROLLER");
    assert.equal((await request(p.proxy.address)).status, 200, "still routing with v7");

    const bad = await admin(p, "PUT", "/table", JSON.stringify({ version: 8, targets: [{ id: "x" }] }));
    assert.equal(bad.status, 400);
    assert.match(bad.body.error, /targets\[0\]\.address/);
    assert.match(bad.body.error, /health: expected an object/);
    assert.equal((await admin(p, "PUT", "/table", "{nope")).status, 400);
    assert.equal((await admin(p, "GET", "/healthz")).status, 200);
    assert.equal((await admin(p, "DELETE", "/table")).status, 405);
    assert.equal((await admin(p, "GET", "/nope")).status, 404);
    assert.equal((await p.client.stats()).tableVersion, 7);
  });

  it("starts empty, keeping the bad file aside, when its state file is invalid", async () => {
    const { dir, cleanup } = await tempDir();
    defer(cleanup);
    const stateFile = path.join(dir, "routes.json");
    writeFileSync(stateFile, '{"version": 3, "targ');
    const logs: string[] = [];
    const p = await startProxy({ listen: "127.0.0.1:0", admin: path.join(dir, "p.sock"), stateFile, log: (l) => logs.push(l) });
    defer(() => p.close());
    const client = new ProxyClient(p.adminSocket);
    assert.equal((await client.stats()).tableVersion, 0);
    assert.ok(logs.some((l) => /is invalid .*starting with no routes/.test(l)), logs.join("\n"));
    assert.equal(readdirSync(dir).filter((f) => f.startsWith("routes.json.invalid-")).length, 1);
    await client.setTable(table(1, []));
    assert.equal(JSON.parse(readFileSync(stateFile, "utf8")).version, 1);
  });

  it("measures each release's latency to the end of the response, and windowOf reads it", async () => {
    const [a, b] = await Promise.all([backend("a"), backend("b")]);
    const p = await proxy();
    await p.client.setTable(table(1, [target("a", a.address, { release: "fast" }), target("b", b.address, { release: "slow" })]));
    const before = await p.client.stats();
    // /stream sends its headers at once and ends after ms: the end counts, not the first byte.
    await Promise.all([request(p.proxy.address, { path: "/stream?ms=300" }), request(p.proxy.address, { path: "/stream?ms=300" })]);
    for (let i = 0; i < 4; i++) await request(p.proxy.address, { path: "/" });
    const after = await p.client.stats();
    const fast = windowOf(before.releases.fast, after.releases.fast!);
    const slow = windowOf(before.releases.slow, after.releases.slow!);
    // Each release got one /stream (≥ 300 ms → the ≤500 ms bucket or above) and two quick requests.
    assert.equal(fast.requests, 3);
    assert.equal(slow.requests, 3);
    for (const w of [fast, slow]) {
      assert.ok(w.p99Ms !== undefined && w.p99Ms >= 500, JSON.stringify(w));
      assert.ok(w.p50Ms !== undefined && w.p50Ms <= 200, JSON.stringify(w));
      assert.equal(w.errorRate, 0);
    }
    const failing = await request(p.proxy.address, { path: "/fail" });
    assert.equal(failing.status, 500);
    const rel = failing.headers["x-kiln-release"] as string;
    assert.equal(windowOf(after.releases[rel], (await p.client.stats()).releases[rel]!).errorRate, 1);
  });

  it("counts a connect failure's 502 in the latency histogram and in errors", async () => {
    const dead = await freeAddress();
    const p = await proxy();
    await p.client.setTable(table(1, [target("d", dead, { release: "broken" })]));
    const r = await request(p.proxy.address);
    assert.equal(r.status, 502);
    const w = windowOf(undefined, (await p.client.stats()).releases.broken!);
    assert.deepEqual({ requests: w.requests, errors: w.errors, errorRate: w.errorRate }, { requests: 1, errors: 2, errorRate: 1 });
    assert.ok(w.p99Ms !== undefined);
  });

  it("says why the preview listener has nothing to serve", async () => {
    const a = await backend("a");
    const p = await proxy({ previewListen: "127.0.0.1:0" });
    await p.client.setTable(table(1, [target("a", a.address, { release: "blue" })]));
    let r = await request(p.proxy.previewAddress!);
    assert.equal(r.status, 503);
    assert.equal(r.body, "kiln: no preview release is set\n");
    await p.client.setTable(table(2, [target("a", a.address, { release: "blue" })], { preview: "green" }));
    r = await request(p.proxy.previewAddress!);
    assert.equal(r.status, 503);
    assert.equal(r.body, "kiln: no healthy active instance of preview release green\n");
    assert.equal(a.hits.length, 0);
  });

  it("persists releaseWeights and preview in its state file and routes by them after a restart", async () => {
    const [s1, c1, g1] = await Promise.all([backend("s1"), backend("c1"), backend("g1")]);
    const { dir, cleanup } = await tempDir();
    defer(cleanup);
    const routes = table(
      3,
      [
        target("s1", s1.address, { release: "stable" }),
        target("c1", c1.address, { release: "canary" }),
        target("g1", g1.address, { release: "green", weight: 0 }),
      ],
      { releaseWeights: { stable: 3, canary: 1 }, preview: "green" },
    );
    const first = await withProxy({ dir, previewListen: "127.0.0.1:0" });
    await first.client.setTable(routes);
    await first.proxy.close();
    const saved = JSON.parse(readFileSync(path.join(dir, "routes.json"), "utf8"));
    assert.deepEqual(saved.releaseWeights, { stable: 3, canary: 1 });
    assert.equal(saved.preview, "green");

    const second = await withProxy({ dir, previewListen: "127.0.0.1:0" });
    defer(() => second.proxy.close());
    assert.equal((await second.client.stats()).preview?.release, "green");
    assert.deepEqual(await send(second.proxy.address, 8), { s1: 6, c1: 2 });
    assert.deepEqual(await send(second.proxy.previewAddress!, 2), { g1: 2 });
  });

  it("closes gracefully: in-flight requests finish, then the port is free", async () => {
    const a = await backend("a");
    const p = await withProxy();
    await p.client.setTable(table(1, [target("a", a.address)]));
    const slow = request(p.proxy.address, { path: "/slow?ms=500" });
    await waitFor(async () => (await statsOf(p, "a")).inflight === 1, "in flight");
    const closing = p.close();
    await sleep(50);
    await assert.rejects(request(p.proxy.address), "no new connections while closing");
    assert.equal((await slow).status, 200);
    await closing;
    assert.equal(await p.client.ping(), false);
  });
});

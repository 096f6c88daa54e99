// The Router conformance suite against both implementations, plus FakeRouter's test controls.

import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import { isKilnError } from "../../src/errors.js";
import { FakeRouter } from "../../src/traffic/fake.js";
import { ProxyClient } from "../../src/traffic/proxy/client.js";
import { routerConformance } from "./router-conformance.js";
import { request, send, startBackend, table, target, tempDir, withProxy, type Backend } from "./helpers.js";

routerConformance("FakeRouter", async () => {
  const router = new FakeRouter({ pid: 1, previewListen: "127.0.0.1:8081" });
  let port = 9000;
  return {
    router,
    backend: async () => `127.0.0.1:${port++}`,
    send: async (n, opts = {}) => router.serve(n, () => ({ status: 200, latencyMs: 1 }), opts),
    teardown: async () => undefined,
  };
});

routerConformance("proxy (ProxyClient over the admin socket)", async () => {
  const p = await withProxy({ previewListen: "127.0.0.1:0" });
  const backends: Backend[] = [];
  return {
    router: p.client,
    backend: async (name) => {
      const b = await startBackend(name);
      backends.push(b);
      return b.address;
    },
    send: (n, opts = {}) => send(opts.preview ? p.proxy.previewAddress! : p.proxy.address, n),
    http: {
      request: (o) => request(p.proxy.address, o),
      hits: (name) => backends.find((b) => b.name === name)?.hits ?? [],
    },
    teardown: async () => {
      await p.close();
      for (const b of backends) await b.close();
    },
  };
});

describe("FakeRouter controls", () => {
  it("takes marked-unhealthy targets out of rotation and reports in-flight and counters", async () => {
    let now = 1000;
    const r = new FakeRouter({ now: () => now });
    await r.setTable(table(1, [target("a", "127.0.0.1:1", { release: "r1" }), target("b", "127.0.0.1:2", { release: "r2" })]));
    r.setHealthy("a", false);
    r.setInflight("b", 3);
    r.addCounters("b", { requests: 10, errors5xx: 2 });
    now = 2000;
    await r.setTable(table(2, [target("a", "127.0.0.1:1", { release: "r1" }), target("b", "127.0.0.1:2", { release: "r2", state: "draining" })]));
    const s = await r.stats();
    const [a, b] = s.targets;
    assert.equal(a!.healthy, false);
    assert.equal(a!.inRotation, false);
    assert.equal(b!.inflight, 3);
    assert.equal(b!.drainingSince, 2000);
    assert.equal(b!.requests, 10);
    assert.deepEqual({ ...s.releases.r2, latency: undefined }, { requests: 10, errors5xx: 2, connectFailures: 0, latency: undefined });
    await r.setTable(table(3, []));
    assert.deepEqual((await r.stats()).releases.r2!.requests, 10);
    r.setReleaseCounters("r1", { requests: 5, errors5xx: 5, connectFailures: 0 });
    assert.equal((await r.stats()).releases.r1!.errors5xx, 5);
    assert.equal(r.tables.length, 3);
  });
});

describe("ProxyClient errors", () => {
  it("says the proxy is unreachable, with the socket path and a hint", async () => {
    const { dir, cleanup } = await tempDir();
    const sock = path.join(dir, "none.sock");
    const c = new ProxyClient(sock, { timeoutMs: 1000 });
    assert.equal(await c.ping(), false);
    await assert.rejects(c.stats(), (e: unknown) => {
      assert.ok(isKilnError(e));
      assert.equal(e.code, "KILN_E_CONTROLLER");
      assert.equal(e.message, `proxy unreachable at ${sock} (no socket file)`);
      assert.match(e.hint ?? "", /proxy running/);
      return true;
    });
    await cleanup();
  });
});

describe("FakeRouter traffic", () => {
  const respond = () => ({ status: 200, latencyMs: 3 });

  it("splits 1,000 requests 90/10 by releaseWeights exactly, then by target weight within a release", async () => {
    const r = new FakeRouter();
    await r.setTable(
      table(1, [
        target("s1", "127.0.0.1:1", { release: "stable", weight: 2 }),
        target("s2", "127.0.0.1:2", { release: "stable", weight: 1 }),
        target("c1", "127.0.0.1:3", { release: "canary" }),
        target("x1", "127.0.0.1:4", { release: "unlisted" }),
      ], { releaseWeights: { stable: 90, canary: 10 } }),
    );
    assert.deepEqual(r.serve(1000, respond), { s1: 600, s2: 300, c1: 100 });
    const s = await r.stats();
    assert.equal(s.releases.canary!.requests, 100);
    assert.equal(s.releases.unlisted!.requests, 0);
    assert.equal(s.releases.stable!.latency![2], 900, "3 ms is in the ≤5 ms bucket");
  });

  it("skips a listed release without eligible targets and falls back to target weights when none has one", async () => {
    const r = new FakeRouter();
    await r.setTable(
      table(1, [
        target("s1", "127.0.0.1:1", { release: "stable" }),
        target("c1", "127.0.0.1:3", { release: "canary" }),
        target("x1", "127.0.0.1:4", { release: "other" }),
      ], { releaseWeights: { stable: 50, canary: 50, gone: 100 } }),
    );
    r.setHealthy("c1", false);
    assert.deepEqual(r.serve(10, respond), { s1: 10 });
    r.setHealthy("s1", false);
    assert.deepEqual(r.serve(4, respond), { x1: 4 }, "no listed release can serve: plain target weights");
    r.setHealthy("x1", false);
    assert.deepEqual(r.serve(2, respond), { "503": 2 });
  });

  it("without releaseWeights splits by target weight as before", async () => {
    const r = new FakeRouter();
    await r.setTable(table(1, [target("a", "127.0.0.1:1", { release: "r1", weight: 3 }), target("b", "127.0.0.1:2", { release: "r2" })]));
    assert.deepEqual(r.serve(8, respond), { a: 6, b: 2 });
  });

  it("previews a standby release at weight 0 and counts preview traffic apart", async () => {
    const r = new FakeRouter({ previewListen: "127.0.0.1:9999" });
    await r.setTable(
      table(1, [
        target("b1", "127.0.0.1:1", { release: "blue" }),
        target("g1", "127.0.0.1:2", { release: "green", weight: 0 }),
        target("g2", "127.0.0.1:3", { release: "green", weight: 0 }),
        target("g3", "127.0.0.1:4", { release: "green", state: "draining" }),
      ], { preview: "green" }),
    );
    assert.deepEqual(r.serve(4, respond, { preview: true }), { g1: 2, g2: 2 });
    assert.deepEqual(r.serve(3, respond), { b1: 3 });
    const s = await r.stats();
    assert.deepEqual(s.preview, { listen: "127.0.0.1:9999", release: "green" });
    assert.equal(s.previewCounters!.green!.requests, 4);
    assert.equal(s.releases.green!.requests, 0);
    assert.equal(s.targets.find((t) => t.id === "g1")!.requests, 0);
    r.setHealthy("g1", false);
    r.setHealthy("g2", false);
    assert.equal(r.pickPreview(), undefined);
  });

  it("records connect failures: retried ones only as failures, unretried ones as 502s", async () => {
    const r = new FakeRouter();
    await r.setTable(table(1, [target("a", "127.0.0.1:1", { release: "r1" })]));
    r.recordConnectFailure("a", { retried: true });
    r.recordConnectFailure("a", { latencyMs: 1500 });
    r.recordRequest("a", { status: 503, latencyMs: 0.5 });
    const rel = (await r.stats()).releases.r1!;
    assert.deepEqual({ ...rel, latency: undefined }, { requests: 2, errors5xx: 2, connectFailures: 2, latency: undefined });
    assert.equal(rel.latency![0], 1);
    assert.equal(rel.latency![10], 1, "1500 ms is in the ≤2000 ms bucket");
  });
});

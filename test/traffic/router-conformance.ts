// One suite every Router runs (STYLE habit 5): the in-memory FakeRouter in
// milliseconds, the real proxy through its admin socket. The routing rules the
// controller builds canary and blue-green on (per-release split, preview,
// per-release counters and latency) are played here with each router's own
// traffic: FakeRouter.serve for the fake, real HTTP requests for the proxy.
// Retries, health checks and draining of real requests are in proxy.test.ts.

import assert from "node:assert/strict";
import { after, afterEach, beforeEach, describe, it } from "node:test";
import { isKilnError } from "../../src/errors.js";
import { LATENCY_HISTOGRAM_SIZE, type Counters, type Router } from "../../src/traffic/router.js";
import { table, target, type Hit, type Reply } from "./helpers.js";

export interface RouterUnderTest {
  /** set up with a preview listener */
  router: Router;
  /** an address for a target: for the proxy a live backend on 127.0.0.1 answering 200 */
  backend(name: string): Promise<string>;
  /**
   * Send n GETs (production, or to the preview listener) and count who
   * answered: the target id, or the status ("503") when none did.
   */
  send(n: number, opts?: { preview?: boolean }): Promise<Record<string, number>>;
  /**
   * Real HTTP to the router's production listener and what each backend
   * received; absent for a router that serves no HTTP (the in-memory fake),
   * whose cases needing it are skipped with that reason.
   */
  http?: {
    request(opts: { method?: string; path?: string; headers?: Record<string, string>; body?: string }): Promise<Reply>;
    /** requests backend(name) has received (health checks excluded), oldest first */
    hits(name: string): Hit[];
  };
  teardown(): Promise<void>;
}

const histogramTotal = (c: Counters | undefined) => (c?.latency ?? []).reduce((a, b) => a + b, 0);

export function routerConformance(name: string, setup: () => Promise<RouterUnderTest>): void {
  describe(`Router conformance: ${name}`, () => {
    let sut: RouterUnderTest;
    // Routers not torn down yet. Node 20 runs no afterEach for a test that calls t.skip(), so
    // a leftover is torn down before the next setup and after the last test: a router
    // process (HAProxy) must never outlive the suite.
    const open = new Set<RouterUnderTest>();
    const teardownAll = async () => {
      for (const r of [...open]) {
        open.delete(r);
        await r.teardown();
      }
    };
    beforeEach(async () => {
      await teardownAll();
      sut = await setup();
      open.add(sut);
    });
    afterEach(teardownAll);
    after(teardownAll);

    it("starts with table version 0 and no targets", async () => {
      const s = await sut.router.stats();
      assert.equal(s.tableVersion, 0);
      assert.deepEqual(s.targets, []);
      assert.equal(typeof s.pid, "number");
      assert.match(s.listen, /^127\.0\.0\.1:\d+$/);
    });

    it("reports the table it was given, with rotation derived from state, weight and health", async () => {
      await sut.router.setTable(
        table(4, [
          target("a", "127.0.0.1:9001", { release: "r1", weight: 3 }),
          target("b", "127.0.0.1:9002", { release: "r1", weight: 0 }),
          target("c", "127.0.0.1:9003", { release: "r2", state: "draining" }),
        ]),
      );
      const s = await sut.router.stats();
      assert.equal(s.tableVersion, 4);
      const byId = Object.fromEntries(s.targets.map((t) => [t.id, t]));
      assert.deepEqual(Object.keys(byId).sort(), ["a", "b", "c"]);
      assert.deepEqual(
        { ...byId.a, drainingSince: undefined },
        {
          id: "a", release: "r1", address: "127.0.0.1:9001", state: "active", weight: 3, healthy: true,
          inRotation: true, inflight: 0, requests: 0, errors5xx: 0, connectFailures: 0, drainingSince: undefined,
        },
      );
      assert.equal(byId.a!.drainingSince, undefined);
      assert.equal(byId.b!.inRotation, false);
      assert.equal(byId.c!.inRotation, false);
      assert.equal(byId.c!.state, "draining");
      assert.equal(typeof byId.c!.drainingSince, "number");
      assert.deepEqual(Object.keys(s.releases).sort(), ["r1", "r2"]);
    });

    it("keeps drainingSince across tables and clears it on reactivation", async () => {
      await sut.router.setTable(table(1, [target("a", "127.0.0.1:9001", { state: "draining" })]));
      const first = (await sut.router.stats()).targets[0]!.drainingSince;
      await sut.router.setTable(table(2, [target("a", "127.0.0.1:9001", { state: "draining" })]));
      assert.equal((await sut.router.stats()).targets[0]!.drainingSince, first);
      await sut.router.setTable(table(3, [target("a", "127.0.0.1:9001")]));
      const s = await sut.router.stats();
      assert.equal(s.targets[0]!.drainingSince, undefined);
      assert.equal(s.targets[0]!.inRotation, true);
    });

    it("refuses an older table with KILN_E_CONTROLLER and accepts the same version again", async () => {
      await sut.router.setTable(table(5, [target("a", "127.0.0.1:9001")]));
      await assert.rejects(sut.router.setTable(table(4, [])), (e: unknown) => {
        assert.ok(isKilnError(e));
        assert.equal(e.code, "KILN_E_CONTROLLER");
        assert.match(e.message, /older than the current version 5/);
        return true;
      });
      assert.equal((await sut.router.stats()).targets.length, 1);
      await sut.router.setTable(table(5, [target("b", "127.0.0.1:9002")]));
      const s = await sut.router.stats();
      assert.deepEqual(s.targets.map((t) => t.id), ["b"]);
    });

    it("forgets removed targets but keeps their release", async () => {
      await sut.router.setTable(table(1, [target("a", "127.0.0.1:9001", { release: "old" })]));
      await sut.router.setTable(table(2, [target("b", "127.0.0.1:9002", { release: "new" })]));
      const s = await sut.router.stats();
      assert.deepEqual(s.targets.map((t) => t.id), ["b"]);
      assert.deepEqual(Object.keys(s.releases).sort(), ["new", "old"]);
    });

    it("splits 1,000 requests 90/10 by releaseWeights (±1), then by target weight; unlisted releases get none", async () => {
      const [s1, s2, c1, x1] = await Promise.all(["s1", "s2", "c1", "x1"].map((n) => sut.backend(n)));
      await sut.router.setTable(
        table(1, [
          target("s1", s1!, { release: "stable", weight: 2 }),
          target("s2", s2!, { release: "stable", weight: 1 }),
          target("c1", c1!, { release: "canary" }),
          target("x1", x1!, { release: "other" }),
        ], { releaseWeights: { stable: 90, canary: 10 } }),
      );
      const got = await sut.send(1000);
      assert.deepEqual(Object.keys(got).sort(), ["c1", "s1", "s2"], JSON.stringify(got));
      assert.ok(Math.abs(got.c1! - 100) <= 1, JSON.stringify(got));
      assert.ok(Math.abs(got.s1! - 600) <= 1 && Math.abs(got.s2! - 300) <= 1, JSON.stringify(got));
      const s = await sut.router.stats();
      assert.equal(s.releases.canary!.requests, got.c1);
      assert.equal(s.releases.stable!.requests, got.s1! + got.s2!);
      assert.equal(s.releases.other!.requests, 0);
      assert.equal(s.releases.stable!.latency!.length, LATENCY_HISTOGRAM_SIZE);
      assert.equal(histogramTotal(s.releases.stable), s.releases.stable!.requests);
      assert.equal(histogramTotal(s.releases.canary), s.releases.canary!.requests);
    });

    it("skips a listed release with no eligible target and falls back to target weights when none has one", async () => {
      const [s1, c1, x1] = await Promise.all(["s1", "c1", "x1"].map((n) => sut.backend(n)));
      const targets = (stableWeight: number) => [
        target("s1", s1!, { release: "stable", weight: stableWeight }),
        target("c1", c1!, { release: "canary", state: "draining" }),
        target("x1", x1!, { release: "other" }),
      ];
      await sut.router.setTable(table(1, targets(1), { releaseWeights: { stable: 50, canary: 50, none: 10 } }));
      assert.deepEqual(await sut.send(10), { s1: 10 });
      await sut.router.setTable(table(2, targets(0), { releaseWeights: { stable: 50, canary: 50 } }));
      assert.deepEqual(await sut.send(4), { x1: 4 }, "no listed release can serve: plain target weights");
      await sut.router.setTable(table(3, targets(1)));
      assert.deepEqual(await sut.send(4), { s1: 2, x1: 2 }, "no releaseWeights: target weights as before");
    });

    it("serves the preview release on the preview listener only, whatever its weight, counted apart", async () => {
      const [b1, g1, g2, g3] = await Promise.all(["b1", "g1", "g2", "g3"].map((n) => sut.backend(n)));
      await sut.router.setTable(
        table(1, [
          target("b1", b1!, { release: "blue" }),
          target("g1", g1!, { release: "green", weight: 0 }),
          target("g2", g2!, { release: "green", weight: 0 }),
          target("g3", g3!, { release: "green", state: "draining" }),
        ], { preview: "green", releaseWeights: { blue: 100 } }),
      );
      assert.deepEqual(await sut.send(6, { preview: true }), { g1: 3, g2: 3 });
      assert.deepEqual(await sut.send(5), { b1: 5 }, "standby green gets no production traffic");
      const s = await sut.router.stats();
      assert.equal(s.preview?.release, "green");
      assert.match(s.preview?.listen ?? "", /^127\.0\.0\.1:\d+$/);
      assert.equal(s.previewCounters?.green?.requests, 6);
      assert.equal(histogramTotal(s.previewCounters?.green), 6);
      assert.equal(s.releases.green!.requests, 0, "preview traffic is not in production counters");
      assert.equal(histogramTotal(s.releases.green), 0);
      assert.equal(s.targets.find((t) => t.id === "g1")!.requests, 0);
      assert.equal(s.releases.blue!.requests, 5);
    });

    it("answers 503 on the preview listener with no preview release or no active target of it", async () => {
      const [b1, g1] = await Promise.all(["b1", "g1"].map((n) => sut.backend(n)));
      const targets = [target("b1", b1!, { release: "blue" }), target("g1", g1!, { release: "green", state: "draining" })];
      await sut.router.setTable(table(1, targets));
      assert.deepEqual(await sut.send(2, { preview: true }), { "503": 2 });
      assert.equal((await sut.router.stats()).preview?.release, undefined);
      await sut.router.setTable(table(2, targets, { preview: "green" }));
      assert.deepEqual(await sut.send(2, { preview: true }), { "503": 2 });
      await sut.router.setTable(table(3, targets, { preview: "nobody" }));
      assert.deepEqual(await sut.send(1, { preview: true }), { "503": 1 });
      assert.deepEqual(await sut.send(1), { b1: 1 });
    });

    // Issue 10: table fields every router must honour.
    it("maintenance: answers 503 itself with Retry-After and a page, reports it, leaves instances alone; off serves again", async () => {
      const [a] = await Promise.all(["a"].map((n) => sut.backend(n)));
      const targets = [target("a", a!, { release: "r1" })];
      await sut.router.setTable(table(1, targets, { maintenance: { message: "Back at <14:00>", retryAfterS: 120 } }));
      const s = await sut.router.stats();
      assert.deepEqual(s.maintenance, { message: "Back at <14:00>", retryAfterS: 120 }, "maintenance is read back");
      assert.equal(s.targets[0]!.inRotation, true, "instances are untouched: still in rotation");
      assert.deepEqual(await sut.send(3), { "503": 3 });
      if (sut.http) {
        const r = await sut.http.request({ path: "/anything" });
        assert.equal(r.status, 503);
        assert.equal(r.headers["retry-after"], "120");
        assert.match(String(r.headers["content-type"]), /^text\/html/);
        assert.match(r.body, /Back at &lt;14:00&gt;/);
        const post = await sut.http.request({ method: "POST", path: "/form", body: "x=1" });
        assert.equal(post.status, 503);
        assert.equal(sut.http.hits("a").length, 0, "no request reached the instance");
        await sut.router.setTable(table(2, targets, { maintenance: {} }));
        const d = await sut.http.request({});
        assert.equal(d.status, 503);
        assert.equal(d.headers["retry-after"], "60", "default Retry-After");
      }
      assert.equal((await sut.router.stats()).releases.r1?.requests ?? 0, 0, "maintenance answers count for no release");
      await sut.router.setTable(table(3, targets));
      assert.equal((await sut.router.stats()).maintenance, undefined);
      assert.deepEqual(await sut.send(2), { a: 2 });
    });

    it("forwarded headers: sets X-Forwarded-For/Proto/Host itself, overwriting what the client sent", async (t) => {
      if (!sut.http) return t.skip("this router serves no HTTP");
      const a = await sut.backend("a");
      await sut.router.setTable(table(1, [target("a", a)]));
      const r = await sut.http.request({
        path: "/fwd",
        headers: { host: "shop.test", "x-forwarded-for": "6.6.6.6", "x-forwarded-proto": "https", "x-forwarded-host": "evil.test" },
      });
      assert.equal(r.status, 200);
      const hit = sut.http.hits("a").find((h) => h.url === "/fwd");
      assert.ok(hit, "the backend got the request");
      assert.equal(hit.headers["x-forwarded-for"], "127.0.0.1", "the client's claim is replaced by its real address");
      assert.equal(hit.headers["x-forwarded-proto"], "http");
      assert.equal(hit.headers["x-forwarded-host"], "shop.test");
      assert.equal(hit.headers["host"], "shop.test", "Host is passed through");
    });

    it("keeps a removed release's counters and latency histogram", async () => {
      const [a, b] = await Promise.all(["a", "b"].map((n) => sut.backend(n)));
      await sut.router.setTable(table(1, [target("a", a!, { release: "old" })]));
      assert.deepEqual(await sut.send(7), { a: 7 });
      await sut.router.setTable(table(2, [target("b", b!, { release: "new" })]));
      const s = await sut.router.stats();
      assert.equal(s.releases.old!.requests, 7);
      assert.equal(histogramTotal(s.releases.old), 7);
      assert.equal(histogramTotal(s.releases.new), 0);
    });
  });
}

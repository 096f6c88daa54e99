// Table tests for the proxy's pure parts: balancing, table checking, headers, health thresholds.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { nextHealth, parseHostPort, type HealthState } from "../../src/health/probe.js";
import { groupByRelease, pickByRelease, pickSmoothWeighted } from "../../src/traffic/proxy/balancer.js";
import { LATENCY_BUCKETS_MS, LATENCY_HISTOGRAM_SIZE, latencyBucket, windowOf, type Counters, type CountersWindow } from "../../src/traffic/router.js";
import { downstreamHeaderList, headerList, planDownstreamHeaders, planUpstreamHeaders, upstreamHeaderList, type UpstreamHeaderInput } from "../../src/traffic/proxy/headers.js";
import { httpsRedirect, maintenanceResponse } from "../../src/traffic/proxy/pages.js";
import { checkTable } from "../../src/traffic/proxy/table.js";
import { closeFrame, FrameTracker } from "../../src/traffic/proxy/ws-frames.js";
import { pickCertificate } from "../../src/traffic/proxy/tls.js";
import { table, target } from "./helpers.js";

function sequence(weights: Record<string, number>, n: number): string {
  const cs = Object.entries(weights).map(([id, weight]) => ({ id, weight, currentWeight: 0 }));
  let out = "";
  for (let i = 0; i < n; i++) out += pickSmoothWeighted(cs)?.id ?? "-";
  return out;
}

describe("pickSmoothWeighted", () => {
  const cases: Array<[Record<string, number>, number, string]> = [
    [{ a: 5, b: 1, c: 1 }, 14, "aabacaaaabacaa"],
    [{ a: 1, b: 1 }, 4, "abab"],
    [{ a: 2, b: 1 }, 6, "abaaba"],
    [{ a: 0, b: 3 }, 3, "bbb"],
    [{ a: 0 }, 2, "--"],
    [{}, 1, "-"],
  ];
  for (const [weights, n, want] of cases) {
    it(`${JSON.stringify(weights)} → ${want}`, () => assert.equal(sequence(weights, n), want));
  }

  it("gives each target its share over a long run", () => {
    const s = sequence({ a: 1, b: 2, c: 7 }, 1000);
    const count = (ch: string) => [...s].filter((x) => x === ch).length;
    assert.deepEqual([count("a"), count("b"), count("c")], [100, 200, 700]);
  });
});

describe("nextHealth", () => {
  const th = { healthyThreshold: 2, unhealthyThreshold: 3 };
  const run = (start: HealthState, outcomes: boolean[]) => outcomes.reduce((h, ok) => nextHealth(h, ok, th), start);
  const healthy: HealthState = { healthy: true, consecutiveOk: 0, consecutiveFail: 0 };
  const unhealthy: HealthState = { healthy: false, consecutiveOk: 0, consecutiveFail: 0 };

  it("healthy stays healthy until unhealthyThreshold failures in a row", () => {
    assert.equal(run(healthy, [false, false]).healthy, true);
    assert.deepEqual(run(healthy, [false, false, false]), { healthy: false, consecutiveOk: 0, consecutiveFail: 3 });
    assert.equal(run(healthy, [false, false, true, false, false]).healthy, true);
  });
  it("unhealthy turns healthy after healthyThreshold successes in a row", () => {
    assert.equal(run(unhealthy, [true]).healthy, false);
    assert.deepEqual(run(unhealthy, [true, true]), { healthy: true, consecutiveOk: 2, consecutiveFail: 0 });
    assert.equal(run(unhealthy, [true, false, true]).healthy, false);
  });
  it("thresholds below 1 act as 1", () => {
    assert.equal(nextHealth(healthy, false, { healthyThreshold: 0, unhealthyThreshold: 0 }).healthy, false);
    assert.equal(nextHealth(unhealthy, true, { healthyThreshold: 0, unhealthyThreshold: 0 }).healthy, true);
  });
});

describe("parseHostPort", () => {
  it("parses v4, names and bracketed v6", () => {
    assert.deepEqual(parseHostPort("127.0.0.1:8080"), { host: "127.0.0.1", port: 8080 });
    assert.deepEqual(parseHostPort("[::1]:80"), { host: "::1", port: 80 });
    assert.deepEqual(parseHostPort("localhost:0"), { host: "localhost", port: 0 });
  });
  it("refuses what is not host:port", () => {
    for (const bad of ["127.0.0.1", ":80", "a:b", "1.2.3.4:70000", "::1:80", "a b:1"]) {
      assert.equal(parseHostPort(bad), undefined, bad);
    }
  });
});

describe("checkTable", () => {
  it("accepts a valid table and drops unknown keys", () => {
    const t = { ...table(3, [target("a", "127.0.0.1:9001")]), extra: true };
    const r = checkTable(t);
    assert.ok(r.ok);
    assert.deepEqual(r.table, table(3, [target("a", "127.0.0.1:9001")]));
  });
  it("reports every problem with its path", () => {
    const r = checkTable({
      version: -1,
      drainTimeoutMs: "x",
      health: { path: "healthz", intervalMs: 1, timeoutMs: 100, healthyThreshold: 0, unhealthyThreshold: 1 },
      targets: [
        { id: "a", release: "r", address: "localhost", weight: 1, state: "active" },
        { id: "a", release: "r", address: "127.0.0.1:1", weight: -1, state: "gone" },
        7,
      ],
    });
    assert.ok(!r.ok);
    assert.deepEqual(r.problems, [
      "version: expected an integer >= 0, got -1",
      'drainTimeoutMs: expected an integer >= 0, got "x"',
      'health.path: expected a path starting with "/", got "healthz"',
      "health.intervalMs: expected an integer >= 10, got 1",
      "health.healthyThreshold: expected an integer >= 1, got 0",
      'targets[0].address: expected "host:port", got "localhost"',
      'targets[1].id: duplicate id "a"',
      "targets[1].weight: expected a number >= 0, got -1",
      'targets[1].state: expected "active" or "draining", got "gone"',
      "targets[2]: expected an object, got 7",
    ]);
  });
  it("keeps releaseWeights and preview, and checks them", () => {
    const t = table(3, [target("a", "127.0.0.1:9001")], { releaseWeights: { stable: 90, canary: 10, later: 0 }, preview: "green" });
    assert.deepEqual(checkTable(t), { ok: true, table: t });
    const bad = checkTable({ ...table(3, []), releaseWeights: { stable: -1, canary: "x", "": 1 }, preview: "" });
    assert.deepEqual(bad, {
      ok: false,
      problems: [
        "releaseWeights.stable: expected a number >= 0, got -1",
        'releaseWeights.canary: expected a number >= 0, got "x"',
        'releaseWeights: expected non-empty release ids, got ""',
        'preview: expected a release id (non-empty string), got ""',
      ],
    });
    assert.deepEqual(checkTable({ ...table(1, []), releaseWeights: [1] }), {
      ok: false,
      problems: ["releaseWeights: expected an object of release id → weight, got [1]"],
    });
  });
  it("refuses non-objects", () => {
    assert.deepEqual(checkTable(null), { ok: false, problems: ["table: expected an object, got null"] });
  });
  it("keeps maintenance mode, and checks it", () => {
    const t = table(3, [], { maintenance: { message: "back soon", retryAfterS: 120 } });
    assert.deepEqual(checkTable(t), { ok: true, table: t });
    assert.deepEqual(checkTable({ ...table(3, []), maintenance: {} }), { ok: true, table: { ...table(3, []), maintenance: {} } });
    assert.deepEqual(checkTable({ ...table(3, []), maintenance: { message: 7, retryAfterS: -1 } }), {
      ok: false,
      problems: ["maintenance.message: expected a string of at most 2000 characters, got 7", "maintenance.retryAfterS: expected an integer >= 0, got -1"],
    });
    assert.deepEqual(checkTable({ ...table(3, []), maintenance: true }), {
      ok: false,
      problems: ["maintenance: expected an object {message?, retryAfterS?}, got true"],
    });
  });
});

describe("headers", () => {
  it("strips hop-by-hop headers and sets X-Forwarded-*", () => {
    const out = planUpstreamHeaders(
      { host: "app.test", connection: "keep-alive, x-secret", "x-secret": "1", te: "trailers", "keep-alive": "timeout=5", accept: "*/*", expect: "100-continue" },
      { clientIp: "10.0.0.1", proto: "http", body: { kind: "none" } },
    );
    assert.deepEqual(out, {
      host: "app.test",
      accept: "*/*",
      "x-forwarded-for": "10.0.0.1",
      "x-forwarded-proto": "http",
      "x-forwarded-host": "app.test",
    });
  });
  it("overwrites what the client claims and sets an exact length for a buffered body", () => {
    const out = planUpstreamHeaders(
      { host: "real.test", "x-forwarded-for": "1.1.1.1", "x-forwarded-proto": "https", "x-forwarded-host": "evil.test", forwarded: "for=1.1.1.1", "transfer-encoding": "chunked" },
      { clientIp: "::1", proto: "http", body: { kind: "buffered", length: 12 } },
    );
    assert.equal(out["x-forwarded-for"], "::1");
    assert.equal(out["x-forwarded-proto"], "http");
    assert.equal(out["x-forwarded-host"], "real.test");
    assert.equal(out["forwarded"], undefined, "a client's Forwarded is dropped");
    assert.equal(out["content-length"], "12");
    assert.equal(out["transfer-encoding"], undefined);
  });
  it("turns HTTP/2 pseudo-headers into a host and keeps Upgrade for an upgrade", () => {
    const h2 = planUpstreamHeaders(
      { ":method": "GET", ":path": "/x", ":authority": "app.test", ":scheme": "https", accept: "*/*" },
      { clientIp: "10.0.0.1", proto: "https", body: { kind: "none" } },
    );
    assert.deepEqual(Object.keys(h2).filter((k) => k.startsWith(":")), []);
    assert.equal(h2["host"], "app.test");
    assert.equal(h2["x-forwarded-proto"], "https");
    const ws = planUpstreamHeaders(
      { host: "a", connection: "Upgrade", upgrade: "websocket", "sec-websocket-key": "k" },
      { clientIp: "10.0.0.1", proto: "http", body: { kind: "none" }, upgrade: "websocket" },
    );
    assert.equal(ws["connection"], "upgrade");
    assert.equal(ws["upgrade"], "websocket");
    assert.equal(ws["sec-websocket-key"], "k");
  });
  it("lists request headers flat for http.request, with the instance's address when the client sent no Host", () => {
    const rows: Array<[Parameters<typeof headerList>[0], boolean, string[]]> = [
      [{ host: "app", accept: "text/html" }, false, ["host", "app", "accept", "text/html"]],
      [{ accept: "text/html" }, false, ["accept", "text/html", "host", "10.0.0.2:8080"]],
      [{ host: "a", "x-a": ["1", "2"], "content-length": 5 }, false, ["host", "a", "x-a", "1", "x-a", "2", "content-length", "5"]],
      [{ host: "a", "x-b": undefined }, false, ["host", "a"]],
      [{ host: "a" }, true, ["host", "a", "content-length", "0"]],
      [{ host: "a", "content-length": "0" }, true, ["host", "a", "content-length", "0"]],
    ];
    for (const [headers, zeroLength, want] of rows) assert.deepEqual(headerList(headers, "10.0.0.2:8080", zeroLength), want);
  });
  it("lists upstream headers in one pass: the doc comment's rows, the client's object untouched", () => {
    const http1: UpstreamHeaderInput = { clientIp: "1.2.3.4", proto: "http", body: { kind: "none" } };
    const fwd = (host: string) => ["x-forwarded-for", "1.2.3.4", "x-forwarded-proto", "http", "x-forwarded-host", host];
    const rows: Array<[string, Record<string, string | string[]>, UpstreamHeaderInput, boolean, string[]]> = [
      ["hop-by-hop and Connection-listed dropped", { host: "app", connection: "keep-alive, x-a", "x-a": "1", accept: "text/html" }, http1, false, ["host", "app", "accept", "text/html", ...fwd("app")]],
      ["client claims dropped", { host: "a", "x-forwarded-for": "9.9.9.9", forwarded: "for=9" }, http1, false, ["host", "a", ...fwd("a")]],
      ["HTTP/2 pseudo-headers", { ":authority": "app", ":path": "/x", accept: "text/html" }, { ...http1, proto: "https" }, false, ["accept", "text/html", "host", "app", "x-forwarded-for", "1.2.3.4", "x-forwarded-proto", "https", "x-forwarded-host", "app"]],
      ["buffered body re-lengthed", { host: "a", "transfer-encoding": "chunked" }, { ...http1, body: { kind: "buffered", length: 12 } }, false, ["host", "a", ...fwd("a"), "content-length", "12"]],
      ["buffered body, the client's length replaced in place", { host: "a", "content-length": "99", "x-b": "1" }, { ...http1, body: { kind: "buffered", length: 12 } }, false, ["host", "a", "content-length", "12", "x-b", "1", ...fwd("a")]],
      ["repeated field", { host: "a", "x-a": ["1", "2"] }, http1, false, ["host", "a", "x-a", "1", "x-a", "2", ...fwd("a")]],
      ["no Host (HTTP/1.0)", { accept: "text/html" }, http1, false, ["accept", "text/html", "x-forwarded-for", "1.2.3.4", "x-forwarded-proto", "http", "host", "10.0.0.2:8080"]],
      ["zero length", { host: "a" }, http1, true, ["host", "a", ...fwd("a"), "content-length", "0"]],
      ["zero length, client sent one", { host: "a", "content-length": "0" }, http1, true, ["host", "a", "content-length", "0", ...fwd("a")]],
      ["upgrade", { host: "a", connection: "Upgrade", upgrade: "websocket", "sec-websocket-key": "k" }, { ...http1, upgrade: "websocket" }, false, ["host", "a", "sec-websocket-key", "k", ...fwd("a"), "connection", "upgrade", "upgrade", "websocket"]],
      ["expect and te dropped", { host: "a", expect: "100-continue", te: "trailers", "keep-alive": "timeout=5" }, http1, false, ["host", "a", ...fwd("a")]],
    ];
    for (const [what, headers, input, zeroLength, want] of rows) {
      const before = structuredClone(headers);
      assert.deepEqual(upstreamHeaderList(headers, input, "10.0.0.2:8080", zeroLength), want, what);
      assert.deepEqual(headers, before, `${what}: the client's headers are left as they were`);
      // The same list as the two-step path it replaces on the request path.
      assert.deepEqual(headerList(planUpstreamHeaders(structuredClone(headers), input), "10.0.0.2:8080", zeroLength), want, `${what}: same as planUpstreamHeaders + headerList`);
    }
  });
  it("lists downstream headers from the instance's raw lines: the doc comment's rows", () => {
    const target = { id: "i-1", release: "r7" };
    const off = { closing: false, instanceHeaders: false };
    const rows: Array<[string, string[], { closing: boolean; instanceHeaders: boolean }, string[]]> = [
      ["hop-by-hop dropped, case kept", ["Content-Type", "text/plain", "Connection", "keep-alive", "Keep-Alive", "timeout=5"], off, ["Content-Type", "text/plain"]],
      ["Connection-listed dropped", ["Connection", "x-a", "X-A", "1", "Date", "d"], off, ["Date", "d"]],
      ["repeats kept, chunked framing dropped", ["Set-Cookie", "a=1", "Set-Cookie", "b=2", "Transfer-Encoding", "chunked"], off, ["Set-Cookie", "a=1", "Set-Cookie", "b=2"]],
      ["every hop-by-hop name, any case", ["TE", "x", "Trailer", "x", "Upgrade", "x", "PROXY-CONNECTION", "x", "Proxy-Authenticate", "x", "proxy-authorization", "x", "HTTP2-Settings", "x", "Content-Length", "5"], off, ["Content-Length", "5"]],
      ["instance headers", ["Content-Length", "5"], { closing: false, instanceHeaders: true }, ["Content-Length", "5", "x-kiln-instance", "i-1", "x-kiln-release", "r7"]],
      ["closing", [], { closing: true, instanceHeaders: false }, ["connection", "close"]],
    ];
    for (const [what, raw, opts, want] of rows) assert.deepEqual(downstreamHeaderList(raw, target, opts), want, what);
  });
  it("labels responses with the instance and release only when asked", () => {
    const headers = () => ({ "content-type": "text/plain", connection: "keep-alive", "transfer-encoding": "chunked", "set-cookie": ["a=1", "b=2"] });
    const on = planDownstreamHeaders(headers(), { id: "i-1", release: "r7" }, { closing: false, instanceHeaders: true });
    assert.deepEqual(on, { "content-type": "text/plain", "set-cookie": ["a=1", "b=2"], "x-kiln-instance": "i-1", "x-kiln-release": "r7" });
    const off = planDownstreamHeaders(headers(), { id: "i-1", release: "r7" }, { closing: false, instanceHeaders: false });
    assert.deepEqual(off, { "content-type": "text/plain", "set-cookie": ["a=1", "b=2"] });
    assert.equal(planDownstreamHeaders({}, { id: "i", release: "r" }, { closing: true, instanceHeaders: false })["connection"], "close");
    assert.equal(planDownstreamHeaders({}, { id: "i", release: "r" }, { closing: true, instanceHeaders: false, http2: true })["connection"], undefined);
  });
});

describe("pages", () => {
  it("maintenance: 503, Retry-After, the message as text", () => {
    const d = maintenanceResponse({});
    assert.equal(d.status, 503);
    assert.equal(d.headers["retry-after"], "60");
    assert.match(d.body, /down for maintenance/);
    const m = maintenanceResponse({ message: "Back at <14:00>", retryAfterS: 600 });
    assert.equal(m.headers["retry-after"], "600");
    assert.match(m.body, /Back at &lt;14:00&gt;/);
    assert.equal(m.headers["content-length"], String(Buffer.byteLength(m.body)));
  });
  const rows: Array<[string | undefined, string, number, number, string | undefined]> = [
    ["app.test:8080", "/a?b=1", 8443, 308, "https://app.test:8443/a?b=1"],
    ["app.test", "/", 443, 308, "https://app.test/"],
    ["[::1]:80", "/", 443, 308, "https://[::1]/"],
    [undefined, "/", 443, 400, undefined],
  ];
  for (const [host, path, port, status, location] of rows) {
    it(`https redirect of ${host} ${path} → ${status} ${location ?? ""}`, () => {
      const r = httpsRedirect(host, path, port);
      assert.equal(r.status, status);
      assert.equal(r.headers["location"], location);
    });
  }
});

describe("latencyBucket / windowOf", () => {
  const hist = (cells: Record<number, number>) => {
    const h = new Array<number>(LATENCY_HISTOGRAM_SIZE).fill(0);
    for (const [i, n] of Object.entries(cells)) h[Number(i)] = n;
    return h;
  };
  const c = (requests: number, errors5xx = 0, connectFailures = 0, latency?: number[]): Counters =>
    latency ? { requests, errors5xx, connectFailures, latency } : { requests, errors5xx, connectFailures };

  it("puts a latency in the first bucket whose bound it does not exceed", () => {
    assert.equal(LATENCY_HISTOGRAM_SIZE, LATENCY_BUCKETS_MS.length + 1);
    const cases: Array<[number, number]> = [[0, 0], [0.4, 0], [1, 0], [1.2, 1], [250, 8], [10_000, 12], [10_001, 13], [1e9, 13]];
    for (const [ms, want] of cases) assert.equal(latencyBucket(ms), want, `${ms} ms`);
  });

  const cases: Array<[string, Counters | undefined, Counters, CountersWindow]> = [
    ["errors over a window", c(100, 1), c(300, 3), { requests: 200, errors: 2, errorRate: 0.01 }],
    ["since start", undefined, c(10, 0, 10), { requests: 10, errors: 10, errorRate: 0.5 }],
    ["all attempts retried away", c(0), c(0, 0, 4), { requests: 0, errors: 4, errorRate: 1 }],
    ["no traffic", c(5, 1, 0, hist({ 2: 5 })), c(5, 1, 0, hist({ 2: 5 })), { requests: 0, errors: 0, errorRate: 0 }],
    ["p99 in a slower bucket", c(0, 0, 0, hist({})), c(100, 0, 0, hist({ 2: 98, 8: 2 })), { requests: 100, errors: 0, errorRate: 0, p50Ms: 5, p99Ms: 500 }],
    ["p99 at the edge", undefined, c(100, 0, 0, hist({ 2: 99, 8: 1 })), { requests: 100, errors: 0, errorRate: 0, p50Ms: 5, p99Ms: 5 }],
    ["only the window counts", c(100, 0, 0, hist({ 0: 100 })), c(200, 0, 0, hist({ 0: 100, 6: 100 })), { requests: 100, errors: 0, errorRate: 0, p50Ms: 100, p99Ms: 100 }],
    ["overflow", undefined, c(100, 0, 0, hist({ 13: 100 })), { requests: 100, errors: 0, errorRate: 0, p50Ms: Infinity, p99Ms: Infinity }],
    ["a 502 after a connect failure counts in both", undefined, c(2, 1, 1), { requests: 2, errors: 2, errorRate: 2 / 3 }],
    ["counters reset (new proxy): never negative", c(50, 5), c(10, 1), { requests: 0, errors: 0, errorRate: 0 }],
  ];
  for (const [name, before, after, want] of cases) {
    it(name, () => assert.deepEqual(windowOf(before, after), want));
  }
});

describe("pickByRelease", () => {
  const mk = (id: string, release: string, weight = 1) => ({ id, release, weight, currentWeight: 0 });
  it("splits among listed releases, then by target weight, leaving unlisted ones out", () => {
    const all = [mk("s1", "stable", 2), mk("s2", "stable"), mk("c1", "canary"), mk("x", "other")];
    const groups = groupByRelease({ stable: 9, canary: 1 }, all, undefined);
    let out = "";
    for (let i = 0; i < 20; i++) out += pickByRelease(groups, all, () => true)!.id + " ";
    assert.equal(out.trim(), "s1 s2 s1 s1 s2 c1 s1 s1 s2 s1 s1 s2 s1 s1 s2 c1 s1 s1 s2 s1");
  });
  it("falls back to all usable targets when no listed release has one", () => {
    const all = [mk("s1", "stable"), mk("x", "other")];
    const groups = groupByRelease({ stable: 1 }, all, undefined);
    assert.equal(pickByRelease(groups, all, (t) => t.id !== "s1")!.id, "x");
    assert.equal(pickByRelease(groups, all, () => false), undefined);
  });
  it("keeps release scores across regrouping", () => {
    const all = [mk("a", "A"), mk("b", "B")];
    const g1 = groupByRelease({ A: 1, B: 1 }, all, undefined)!;
    assert.equal(pickByRelease(g1, all, () => true)!.id, "a");
    const g2 = groupByRelease({ A: 1, B: 1 }, all, g1);
    assert.equal(pickByRelease(g2, all, () => true)!.id, "b");
  });
});

describe("FrameTracker / closeFrame", () => {
  const frame = (payload: number, masked = false) => {
    const len = payload < 126 ? [payload] : payload < 65536 ? [126, payload >> 8, payload & 255] : [127, 0, 0, 0, 0, 0, (payload >> 16) & 255, (payload >> 8) & 255, payload & 255];
    len[0]! |= masked ? 0x80 : 0;
    return Buffer.concat([Buffer.from([0x82, ...len]), masked ? Buffer.alloc(4) : Buffer.alloc(0), Buffer.alloc(payload, 7)]);
  };
  it("a whole frame: at a boundary before and after", () => {
    const t = new FrameTracker();
    assert.equal(t.consume(frame(5)), 0);
    assert.equal(t.atBoundary, true);
  });
  it("a frame split in two: 0, then the offset of its end", () => {
    const t = new FrameTracker();
    const f = frame(5);
    assert.equal(t.consume(f.subarray(0, 3)), 0);
    assert.equal(t.atBoundary, false);
    assert.equal(t.consume(f.subarray(3)), 4);
    assert.equal(t.atBoundary, true);
  });
  it("a header split across chunks", () => {
    const t = new FrameTracker();
    const f = frame(5);
    assert.equal(t.consume(f.subarray(0, 1)), 0);
    assert.equal(t.consume(f.subarray(1)), 6);
  });
  it("the end of one frame and the start of the next in one chunk", () => {
    const t = new FrameTracker();
    const a = frame(10);
    t.consume(a.subarray(0, 10));
    assert.equal(t.consume(Buffer.concat([a.subarray(10), frame(3).subarray(0, 1)])), 2);
    assert.equal(t.atBoundary, false);
  });
  it("masked frames and 16/64-bit lengths", () => {
    for (const n of [0, 125, 126, 300, 70_000]) {
      const t = new FrameTracker();
      const f = Buffer.concat([frame(n, true), frame(n)]);
      assert.equal(t.consume(f.subarray(0, 1)), 0, `len ${n}`);
      assert.equal(t.consume(f.subarray(1, frame(n, true).length + 1)), frame(n, true).length - 1, `len ${n}`);
    }
  });
  it("close frames: 1001 going away, masked towards an instance", () => {
    assert.deepEqual([...closeFrame(1001, "going away", false)], [0x88, 12, 0x03, 0xe9, ...Buffer.from("going away")]);
    const m = closeFrame(1001, "going away", true);
    assert.equal(m[1], 0x80 | 12);
    assert.equal(m.length, 2 + 4 + 12);
  });
});

describe("pickCertificate", () => {
  const ab = [{ names: ["a.test"] }, { names: ["b.test", "*.b.test"] }];
  const cw = [{ names: ["*.c.test"] }, { names: ["api.c.test"] }];
  const rows: Array<[typeof ab, string | undefined, number]> = [
    [ab, "b.test", 1],
    [ab, "x.b.test", 1],
    [ab, "y.x.b.test", 0],
    [cw, "API.c.test", 1],
    [cw, "web.c.test", 0],
    [cw, undefined, 0],
  ];
  for (const [certs, name, want] of rows) {
    it(`${JSON.stringify(certs.map((c) => c.names))} ${name} → ${want}`, () => assert.equal(pickCertificate(certs, name), want));
  }
});

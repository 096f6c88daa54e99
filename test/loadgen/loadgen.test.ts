// The load generator's pure pieces: options, the loopback rule, statistics.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { diffTotals, emptyTotals } from "../../src/loadgen/client.js";
import { checkLoopbackUrl, parseArgs, toArgs } from "../../src/loadgen/options.js";
import { LoadStats, readHelloBody } from "../../src/loadgen/stats.js";

describe("options", () => {
  const allowed = ["http://127.0.0.1:8080/", "http://localhost/x", "http://[::1]:9/", "https://127.0.0.1/"];
  const refused = ["http://example.com/", "http://10.0.0.1:8080/", "http://127.0.0.2/", "http://0.0.0.0/", "ftp://127.0.0.1/", "http://u:p@127.0.0.1/", "127.0.0.1:8080"];
  for (const u of allowed) test(`accepts ${u}`, () => assert.equal(checkLoopbackUrl(u).ok, true));
  for (const u of refused) test(`refuses ${u}`, () => assert.equal(checkLoopbackUrl(u).ok, false));

  test("parses every flag, with defaults and bounds", () => {
    const p = parseArgs(["--url", "http://127.0.0.1:1/", "--concurrency=3", "--duration-ms", "500", "--max-requests", "9", "--method", "post", "--report-every-ms", "50", "--timeout-ms", "100", "--body", "{}", "--stop-on-stdin-close"]);
    assert.deepEqual(p, {
      ok: true,
      options: { url: "http://127.0.0.1:1/", concurrency: 3, durationMs: 500, maxRequests: 9, method: "POST", reportEveryMs: 50, timeoutMs: 100, body: "{}", stopOnStdinClose: true },
    });
    const d = parseArgs(["--url", "http://127.0.0.1:1/"]);
    assert.ok(d.ok && d.options.concurrency === 8 && d.options.durationMs === 60_000 && d.options.maxRequests === 1_000_000 && d.options.reportEveryMs === 200);
    for (const bad of [[], ["--url"], ["--url", "http://127.0.0.1/", "--concurrency", "0"], ["--url", "http://127.0.0.1/", "--duration-ms", "9999999999"], ["--url", "http://127.0.0.1/", "--method", "PUT"], ["--url", "http://127.0.0.1/", "--frobnicate", "1"]])
      assert.equal(parseArgs(bad).ok, false, bad.join(" "));
  });

  test("toArgs round-trips through parseArgs", () => {
    const o = { url: "http://127.0.0.1:5/", concurrency: 2, durationMs: 10, maxRequests: 3, method: "GET" as const, reportEveryMs: 20, timeoutMs: 30, body: "b", stopOnStdinClose: true };
    assert.deepEqual(parseArgs(toArgs(o)), { ok: true, options: o });
  });
});

describe("LoadStats", () => {
  test("counts statuses, versions and failures; non-2xx and network errors fail", () => {
    const s = new LoadStats();
    s.record({ kind: "response", status: 200, version: "1.0.0", counter: 1 }, 1, null, 10);
    s.record({ kind: "response", status: 200, version: "2.0.0", counter: 2 }, 2, 1, 11);
    s.record({ kind: "response", status: 404, detail: "nope" }, 3, 2, 12);
    s.record({ kind: "response", status: 503 }, 4, 2, 13);
    s.record({ kind: "error", message: "ECONNRESET socket hang up" }, 5, 2, 14);
    const t = s.totals(20);
    assert.equal(t.requests, 5);
    assert.equal(t.failed, 3);
    assert.deepEqual(t.byStatus, { "200": 2, "404": 1, "503": 1, error: 1 });
    assert.deepEqual(t.byVersion, { "1.0.0": 1, "2.0.0": 1 });
    assert.equal(t.maxCounter, 2);
    assert.equal(t.counterWentBackwards, false);
    assert.equal(t.latencyMs.max, 5);
    assert.ok(t.latencyMs.p50 >= 2.8 && t.latencyMs.p50 <= 3.2, String(t.latencyMs.p50));
    assert.deepEqual(s.firstErrors(), ["t=12ms HTTP 404: nope", "t=13ms HTTP 503", "t=14ms ECONNRESET socket hang up"]);
  });

  test("a counter is backwards only when lower than one returned before the request was sent", () => {
    const s = new LoadStats();
    s.record({ kind: "response", status: 200, counter: 10 }, 1, null, 1);
    // sent concurrently with the request that returned 10: a lower value is not a regression
    s.record({ kind: "response", status: 200, counter: 9 }, 1, null, 2);
    assert.equal(s.totals(3).counterWentBackwards, false);
    s.record({ kind: "response", status: 200, counter: 8 }, 1, 10, 3);
    assert.equal(s.totals(4).counterWentBackwards, true);
    assert.equal(s.totals(4).maxCounter, 10);
    assert.match(s.firstErrors()[0] ?? "", /went backwards: 8 after 10/);
  });

  test("keeps only the first 20 errors", () => {
    const s = new LoadStats();
    for (let i = 0; i < 50; i++) s.record({ kind: "error", message: `e${i}` }, 1, null, i);
    assert.equal(s.firstErrors().length, 20);
    assert.equal(s.totals(1).failed, 50);
  });

  test("readHelloBody", () => {
    assert.deepEqual(readHelloBody('{"version":"1.2.3","instance":"a","counter":7}'), { version: "1.2.3", counter: 7 });
    assert.deepEqual(readHelloBody("ok"), {});
    assert.deepEqual(readHelloBody("{broken"), {});
  });

  test("diffTotals gives one step's requests", () => {
    const a = { ...emptyTotals(), t: 100, requests: 10, failed: 1, byStatus: { "200": 9, "503": 1 }, byVersion: { "1": 9 } };
    const b = { ...emptyTotals(), t: 300, requests: 25, failed: 1, byStatus: { "200": 24, "503": 1 }, byVersion: { "1": 12, "2": 12 } };
    const d = diffTotals(a, b);
    assert.deepEqual([d.t, d.requests, d.failed, d.byStatus, d.byVersion], [200, 15, 0, { "200": 15 }, { "1": 3, "2": 12 }]);
  });
});


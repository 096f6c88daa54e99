// The proxy's Prometheus endpoint: scraped over HTTP and parsed (text
// exposition format), during a canary split with a failing instance and a dead
// one, a request in flight and a WebSocket open.

import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { WebSocket, WebSocketServer } from "ws";
import { request, send, startBackend, table, target, waitFor, withProxy, type Backend, type TestProxy } from "../helpers.js";

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A small parser of the Prometheus text format: samples, and the declared TYPE of each family. */
function parseProm(text: string): { samples: Sample[]; types: Record<string, string> } {
  const samples: Sample[] = [];
  const types: Record<string, string> = {};
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) {
      types[t[1]!] = t[2]!;
      continue;
    }
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_x, c: string) => (c === "n" ? "\n" : c));
    samples.push({ name: m[1]!, labels, value: m[3] === "+Inf" ? Infinity : Number(m[3]) });
  }
  return { samples, types };
}

function scrape(address: string): Promise<{ status: number; contentType: string; text: string }> {
  return new Promise((resolve, reject) => {
    http.get(`http://${address}/metrics`, { agent: false }, (res) => {
      let text = "";
      res.on("data", (c: Buffer) => (text += c.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, contentType: String(res.headers["content-type"]), text }));
    }).on("error", reject);
  });
}

const pick = (s: Sample[], name: string, labels: Record<string, string>) =>
  s.filter((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
const value = (s: Sample[], name: string, labels: Record<string, string>) => {
  const found = pick(s, name, labels);
  assert.equal(found.length, 1, `${name} ${JSON.stringify(labels)}: ${found.length} samples`);
  return found[0]!.value;
};

describe("proxy metrics", () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });
  const backend = async (name: string): Promise<Backend> => {
    const b = await startBackend(name);
    cleanups.push(() => b.close());
    return b;
  };

  it("is off unless asked for", async () => {
    const p = await withProxy();
    cleanups.push(() => p.close());
    assert.equal(p.proxy.metricsAddress, undefined);
  });

  it("counts per service, release and target; histogram, 5xx, connect failures, in-flight and open connections move between scrapes", async () => {
    const [s1, c1] = await Promise.all([backend("s1"), backend("c1")]);
    // A WebSocket instance of the stable release, to see an open tunnel counted.
    const wsHttp = http.createServer((_q, r) => r.end("ws"));
    const wss = new WebSocketServer({ server: wsHttp });
    await new Promise<void>((r) => wsHttp.listen(0, "127.0.0.1", r));
    cleanups.push(async () => {
      for (const c of wss.clients) c.terminate();
      wsHttp.closeAllConnections();
      await new Promise<void>((r) => wsHttp.close(() => r()));
    });
    const p: TestProxy = await withProxy({ metricsListen: "127.0.0.1:0", service: "shop" });
    cleanups.push(() => p.close());
    const targets = [
      target("s1", s1.address, { release: "stable" }),
      target("c1", c1.address, { release: "canary" }),
      target("dead", "127.0.0.1:1", { release: "canary" }),
    ];
    await p.client.setTable(table(1, targets, { releaseWeights: { stable: 80, canary: 20 } }));

    const first = await scrape(p.proxy.metricsAddress!);
    assert.equal(first.status, 200);
    assert.match(first.contentType, /^text\/plain; version=0\.0\.4/);
    const before = parseProm(first.text);
    assert.equal(before.types.kiln_proxy_requests_total, "counter");
    assert.equal(before.types.kiln_proxy_request_duration_seconds, "histogram");
    assert.equal(before.types.kiln_proxy_inflight_requests, "gauge");
    assert.equal(value(before.samples, "kiln_proxy_requests_total", { service: "shop", release: "stable", target: "s1" }), 0);

    const got = await send(p.proxy.address, 100);
    assert.equal((got.s1 ?? 0) + (got.c1 ?? 0), 100, JSON.stringify(got));
    for (let i = 0; i < 3; i++) assert.equal((await request(p.proxy.address, { path: "/fail" })).status, 500);
    // In flight: a slow request; open: a WebSocket through the proxy.
    await p.client.setTable(table(2, [...targets, target("ws", `127.0.0.1:${(wsHttp.address() as AddressInfo).port}`, { release: "stable", weight: 0 })], { releaseWeights: { stable: 80, canary: 20 } }));
    const slow = request(p.proxy.address, { path: "/slow?ms=1500" });
    await waitFor(async () => (await p.client.stats()).targets.some((t) => t.inflight > 0), "a request in flight");

    const after1 = parseProm((await scrape(p.proxy.metricsAddress!)).text).samples;
    const req = (release: string, t: string) => value(after1, "kiln_proxy_requests_total", { service: "shop", release, target: t });
    assert.equal(req("stable", "s1") + req("canary", "c1"), 103);
    const stats = await p.client.stats();
    assert.equal(req("stable", "s1"), stats.targets.find((t) => t.id === "s1")!.requests, "the same counters as the admin API's");
    assert.equal(req("canary", "c1"), stats.targets.find((t) => t.id === "c1")!.requests);
    const fives = value(after1, "kiln_proxy_responses_5xx_total", { release: "stable", target: "s1" }) + value(after1, "kiln_proxy_responses_5xx_total", { release: "canary", target: "c1" });
    assert.equal(fives, 3);
    assert.ok(value(after1, "kiln_proxy_connect_failures_total", { release: "canary", target: "dead" }) >= 1, "the dead target's failed connect is counted");
    assert.equal(value(after1, "kiln_proxy_target_up", { target: "dead" }), 0, "marked down after the failed connect");
    assert.equal(value(after1, "kiln_proxy_target_up", { target: "s1" }), 1);
    // Histogram: cumulative buckets, +Inf = count = requests of the target.
    for (const t of ["s1", "c1"]) {
      const buckets = pick(after1, "kiln_proxy_request_duration_seconds_bucket", { target: t });
      assert.equal(buckets.length, 14);
      const vals = buckets.map((b) => b.value);
      assert.deepEqual(vals, [...vals].sort((x, y) => x - y), "cumulative");
      assert.equal(buckets.at(-1)!.labels.le, "+Inf");
      assert.equal(buckets.at(-1)!.value, value(after1, "kiln_proxy_request_duration_seconds_count", { target: t }));
      assert.equal(value(after1, "kiln_proxy_request_duration_seconds_count", { target: t }), value(after1, "kiln_proxy_requests_total", { target: t }));
      assert.ok(value(after1, "kiln_proxy_request_duration_seconds_sum", { target: t }) > 0);
    }
    const inflight = pick(after1, "kiln_proxy_inflight_requests", {}).reduce((a, x) => a + x.value, 0);
    assert.equal(inflight, 1);
    assert.ok(pick(after1, "kiln_proxy_open_connections", {}).reduce((a, x) => a + x.value, 0) >= 1);
    assert.equal(value(after1, "kiln_proxy_release_requests_total", { release: "stable", lane: "production" }), req("stable", "s1"));
    assert.equal(value(after1, "kiln_proxy_maintenance", { service: "shop" }), 0);
    assert.equal(value(after1, "kiln_proxy_table_version", { service: "shop" }), 2);
    await slow;

    // A WebSocket to the ws target (give it all the stable weight): one open connection, one in flight.
    await p.client.setTable(table(3, [target("ws", `127.0.0.1:${(wsHttp.address() as AddressInfo).port}`, { release: "stable" })], ));
    const ws = new WebSocket(`ws://${p.proxy.address}/`);
    await new Promise<void>((resolve, reject) => {
      ws.on("open", () => resolve());
      ws.on("error", reject);
    });
    const withWs = parseProm((await scrape(p.proxy.metricsAddress!)).text).samples;
    assert.equal(value(withWs, "kiln_proxy_inflight_requests", { target: "ws" }), 1);
    assert.equal(value(withWs, "kiln_proxy_open_connections", { target: "ws" }), 1);
    assert.equal(pick(withWs, "kiln_proxy_requests_total", { target: "s1" }).length, 0, "a removed target's series are gone");
    assert.ok(value(withWs, "kiln_proxy_release_requests_total", { release: "canary", lane: "production" }) > 0, "release totals outlive targets");
    ws.close();
    await waitFor(async () => value(parseProm((await scrape(p.proxy.metricsAddress!)).text).samples, "kiln_proxy_open_connections", { target: "ws" }) === 0, "the closed WebSocket leaves the gauge", 5000);

    await p.client.setTable(table(4, [], { maintenance: {} }));
    assert.equal(value(parseProm((await scrape(p.proxy.metricsAddress!)).text).samples, "kiln_proxy_maintenance", { service: "shop" }), 1);
    assert.equal((await new Promise<number>((r) => http.get(`http://${p.proxy.metricsAddress}/other`, (res) => { res.resume(); r(res.statusCode ?? 0); }))), 404);
  });
});

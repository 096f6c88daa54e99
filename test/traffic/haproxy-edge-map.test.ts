// Table tests of the shared HAProxy listener's host map (edge-map.ts) and the
// shared config, plus an equivalence check against the built-in proxy's
// pickService: HAProxy's lookup (map_beg on the exact host, then on "*.rest")
// is simulated here over the generated map and must pick what routes.ts picks.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { renderConfig, type ConfigInput } from "../../src/traffic/haproxy/config.js";
import { backendOfService, parseShowMap, planHostMap, planMapSync, renderHostMap, type BackendRoute } from "../../src/traffic/haproxy/edge-map.js";
import { hostName, pickService, type NamedRoute } from "../../src/traffic/proxy/routes.js";

const r = (backend: string, hosts: string[], pathPrefix?: string): BackendRoute => ({ backend, hosts, ...(pathPrefix !== undefined ? { pathPrefix } : {}) });

describe("planHostMap", () => {
  const rows: Array<[string, BackendRoute[], Record<string, string>]> = [
    ["one key per host", [r("a", ["a.test"]), r("b", ["b.test"])], { "a.test/": "a", "b.test/": "b" }],
    ["a path prefix ends in /", [r("a", ["a.test"]), r("api", ["a.test"], "/api")], { "a.test/": "a", "a.test/api/": "api" }],
    ["wildcard and exact", [r("w", ["*.c.test"]), r("x", ["x.c.test"])], { "*.c.test/": "w", "x.c.test/": "x" }],
    ["a wildcard's longer prefix reaches an exact host", [r("w", ["*.c.test"], "/api"), r("x", ["x.c.test"])], { "*.c.test/api/": "w", "x.c.test/": "x", "x.c.test/api/": "w" }],
    ["names lowercase", [r("a", ["A.Test"])], { "a.test/": "a" }],
    ["the first route keeps a key", [r("a", ["a.test"]), r("b", ["a.test"])], { "a.test/": "a" }],
    ["no hosts, no entry", [r("a", [])], {}],
  ];
  for (const [name, routes, want] of rows) it(name, () => assert.deepEqual(Object.fromEntries(planHostMap(routes)), want));
});

/** HAProxy's lookup as the generated frontend does it: longest-prefix on the exact host's key, then on the wildcard key. */
function haproxyPick(map: Map<string, string>, host: string | undefined, path: string): string | undefined {
  const h = hostName(host);
  const p = `${path.split("?")[0]}/`;
  const longest = (key: string) => {
    let best: string | undefined;
    for (const k of map.keys()) if (key.startsWith(k) && (best === undefined || k.length > best.length)) best = k;
    return best === undefined ? undefined : map.get(best);
  };
  return longest(`${h}${p}`) ?? longest(`${h.replace(/^[^.]*/, "*")}${p}`);
}

describe("the host map picks what the built-in proxy picks", () => {
  const hosts = ["a.test", "b.test", "x.c.test", "y.c.test", "*.c.test", "*.test"];
  const prefixes = [undefined, "/api", "/api/v1", "/x/"];
  const requests: Array<[string | undefined, string]> = [];
  for (const h of ["a.test", "A.TEST:8080", "b.test", "x.c.test", "y.c.test", "z.c.test", "q.x.c.test", "other.test", "nodot", undefined]) {
    for (const p of ["/", "/api", "/api/", "/apix", "/api/v1/z", "/api?q=1", "/x", "/x/y", "/xy"]) requests.push([h, p]);
  }
  // A fixed pseudo-random sequence (no clock, no Math.random): the same 300 route sets every run.
  let seed = 7;
  const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2147483648), seed % n);
  it("300 route sets × 90 requests", () => {
    for (let round = 0; round < 300; round++) {
      const routes: NamedRoute[] = [];
      const n = 1 + rand(4);
      for (let i = 0; i < n; i++) {
        const hs = [...new Set(Array.from({ length: 1 + rand(2) }, () => hosts[rand(hosts.length)]!))];
        const prefix = prefixes[rand(prefixes.length)];
        routes.push({ service: `s${i}`, hosts: hs, ...(prefix !== undefined ? { pathPrefix: prefix } : {}) });
      }
      const map = planHostMap(routes.map((x) => ({ backend: x.service, hosts: x.hosts, ...(x.pathPrefix !== undefined ? { pathPrefix: x.pathPrefix } : {}) })));
      for (const [h, p] of requests) {
        assert.equal(haproxyPick(map, h, p), pickService(routes, h, p), `${JSON.stringify(routes)} ${h} ${p}`);
      }
    }
  });
});

describe("planMapSync / parseShowMap / renderHostMap", () => {
  const m = (o: Record<string, string>) => new Map(Object.entries(o));
  it("adds, changes, removes", () => {
    assert.deepEqual(planMapSync("F", m({}), m({ "a.test/": "a" })), ["add map F a.test/ a"]);
    assert.deepEqual(planMapSync("F", m({ "a.test/": "a" }), m({ "a.test/": "b" })), ["set map F a.test/ b"]);
    assert.deepEqual(planMapSync("F", m({ "a.test/": "a", "b.test/": "b" }), m({ "a.test/": "a" })), ["del map F b.test/"]);
    assert.deepEqual(planMapSync("F", m({ "b.test/": "b" }), m({ "a.test/": "a" })), ["add map F a.test/ a", "del map F b.test/"]);
  });
  it("show map → entries; file text", () => {
    assert.deepEqual(Object.fromEntries(parseShowMap("0x55d1 a.test/ kiln_svc_a\n0x55d2 b.test/ kiln_svc_b\n\n")), { "a.test/": "kiln_svc_a", "b.test/": "kiln_svc_b" });
    assert.equal(renderHostMap(m({ "a.test/": "a", "b.test/": "b" })), "a.test/ a\nb.test/ b\n");
  });
  it("backend names", () => {
    assert.equal(backendOfService("shop"), "kiln_svc_shop");
    assert.equal(backendOfService("a b/c"), "kiln_svc_a_b_c");
  });
});

describe("renderConfig, shared listener", () => {
  const health = { path: "/healthz", intervalMs: 2000, timeoutMs: 1000, healthyThreshold: 2, unhealthyThreshold: 2 };
  const base: ConfigInput = {
    listen: "127.0.0.1:8080",
    adminSocket: "/run/k/admin.sock",
    health,
    hardStopAfterMs: 60_000,
    maxconn: 4000,
    instanceHeader: true,
    requestLog: true,
    previewListen: "127.0.0.1:8081",
    shared: {
      hostMap: "/run/k/hosts.map",
      backends: [
        { backend: "kiln_svc_a", health, serverOptions: { intervalMs: 100, rise: 1, fall: 1 }, servers: [{ name: "i1", address: "127.0.0.1:9001", weight: 1, disabled: false }], previewServers: [{ name: "g1", address: "127.0.0.1:9002", weight: 1, disabled: false }], maintenanceMap: "/run/k/maintenance.kiln_svc_a.map" },
        { backend: "kiln_svc_b", health: { ...health, path: "/ready", timeoutMs: 300 }, serverOptions: { intervalMs: 100, rise: 1, fall: 1 }, servers: [], previewServers: [], maintenanceMap: "/run/k/maintenance.kiln_svc_b.map" },
      ],
    },
  };
  const c = renderConfig(base);
  it("routes by the host map, 404 otherwise, no kiln backend", () => {
    assert.match(c, /map_beg\(\/run\/k\/hosts\.map\)/);
    assert.match(c, /use_backend %\[var\(txn\.kiln_be\)\]\n/);
    assert.match(c, /http-request return status 404 [^\n]* unless \{ var\(txn\.kiln_be\) -m found \}/);
    assert.doesNotMatch(c, /\nbackend kiln\n/);
    assert.doesNotMatch(c, /\nbackend kiln_preview\n/);
  });
  it("a preview listener routes by the same map to each service's preview backend, without maintenance", () => {
    assert.match(c, /\nfrontend fe_kiln_preview\n {2}bind 127\.0\.0\.1:8081\n[^]*use_backend %\[var\(txn\.kiln_be\)\]_preview\n/);
    assert.match(c, /\nbackend kiln_svc_a_preview\n(?: {2}[^\n]*\n)* {2}server g1 127\.0\.0\.1:9002 /);
    assert.doesNotMatch(c, /\nbackend kiln_svc_a_preview\n(?: {2}[^\n]*\n)*[^\n]*maintenance/);
    assert.doesNotMatch(renderConfig({ ...base, previewListen: undefined } as ConfigInput), /_preview/);
  });
  it("one backend per service with its own check, maintenance map and servers", () => {
    assert.match(c, /\nbackend kiln_svc_a\n[^]*option httpchk GET \/healthz\n[^]*maintenance\.kiln_svc_a\.map[^]*\n {2}server i1 127\.0\.0\.1:9001 weight 1 check inter 100 rise 1 fall 1/);
    assert.match(c, /\nbackend kiln_svc_b\n {2}balance roundrobin\n {2}http-reuse always\n {2}timeout check 300ms\n {2}option httpchk GET \/ready\n/);
  });
});

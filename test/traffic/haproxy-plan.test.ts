// Table tests of the HAProxy router's pure parts: weights, plans, steps,
// commands, retirement, the generated config and the runtime-API parsers.
// Rows are the worked examples of the doc comments.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseLogLine, parseServersState, parseStat, renderConfig, renderCrtList, type ConfigInput } from "../../src/traffic/haproxy/config.js";
import {
  commandsOf,
  integerWeights,
  isServerName,
  mismatches,
  planPreview,
  planProduction,
  planRetire,
  planSteps,
  type ObservedServer,
  type Retiring,
} from "../../src/traffic/haproxy/plan.js";
import { table, target } from "./helpers.js";

const weightsOf = (ds: { name: string; weight: number }[]) => Object.fromEntries(ds.map((d) => [d.name, d.weight]));

describe("integerWeights", () => {
  const rows: Array<[number[], number[]]> = [
    [[0.6, 0.3, 0.1], [6, 3, 1]],
    [[3, 1], [3, 1]],
    [[1000, 1], [256, 1]],
    [[0.5, 0, 0.5], [1, 0, 1]],
    [[1 / 3, 2 / 3], [1, 2]],
    [[0.999, 0.001], [256, 1]],
    [[0, 0], [0, 0]],
  ];
  for (const [shares, want] of rows) it(`${JSON.stringify(shares)} → ${JSON.stringify(want)}`, () => assert.deepEqual(integerWeights(shares), want));
});

describe("planProduction", () => {
  const canary = (over: { stableWeight?: number } = {}) =>
    table(1, [
      target("s1", "127.0.0.1:1", { release: "stable", weight: 2 }),
      target("s2", "127.0.0.1:2", { release: "stable", weight: over.stableWeight ?? 1 }),
      target("c1", "127.0.0.1:3", { release: "canary" }),
      target("x1", "127.0.0.1:4", { release: "other" }),
    ], { releaseWeights: { stable: 90, canary: 10 } });

  it("{stable 90, canary 10}; s1 w2, s2 w1, c1, x1 → 60/30/10/0 (6/3/1/0 is the same ratio)", () => {
    assert.deepEqual(weightsOf(planProduction(canary())), { s1: 6, s2: 3, c1: 1, x1: 0 });
  });
  it("canary's c1 unhealthy → stable keeps its target weights, c1 0", () => {
    assert.deepEqual(weightsOf(planProduction(canary(), (id) => id !== "c1")), { s1: 2, s2: 1, c1: 0, x1: 0 });
  });
  it("{stable 100}: a canary release at weight 1 gets 0", () => {
    const t = table(1, [target("s1", "a:1", { release: "stable" }), target("c1", "a:2", { release: "canary" })], { releaseWeights: { stable: 100 } });
    assert.deepEqual(weightsOf(planProduction(t)), { s1: 1, c1: 0 });
  });
  it("{stable 1, canary 1}; stable 3 targets, canary 1 → canary's one target gets half", () => {
    const t = table(1, [
      target("s1", "a:1", { release: "stable" }), target("s2", "a:2", { release: "stable" }), target("s3", "a:3", { release: "stable" }),
      target("c1", "a:4", { release: "canary" }),
    ], { releaseWeights: { stable: 1, canary: 1 } });
    assert.deepEqual(weightsOf(planProduction(t)), { s1: 1, s2: 1, s3: 1, c1: 3 });
  });
  it("{blue 100}; blue unhealthy, green healthy → green by its target weights", () => {
    const t = table(1, [target("b1", "a:1", { release: "blue" }), target("g1", "a:2", { release: "green", weight: 2 })], { releaseWeights: { blue: 100 } });
    assert.deepEqual(weightsOf(planProduction(t, (id) => id !== "b1")), { b1: 1, g1: 2 });
  });
  it("{stable 0, canary 0} → plain target weights; draining → weight 0 in drain", () => {
    const t = table(1, [target("s1", "a:1", { release: "stable", weight: 3 }), target("c1", "a:2", { release: "canary", state: "draining" })], { releaseWeights: { stable: 0, canary: 0 } });
    assert.deepEqual(planProduction(t), [
      { name: "s1", address: "a:1", weight: 1, admin: "ready" }, // 3 alone is the ratio 1
      { name: "c1", address: "a:2", weight: 0, admin: "drain" },
    ]);
  });
});

describe("planPreview", () => {
  it("preview green; g1 w0, g2 w0, g3 draining, b1 → g1 1, g2 1", () => {
    const t = table(1, [
      target("b1", "a:1", { release: "blue" }),
      target("g1", "a:2", { release: "green", weight: 0 }),
      target("g2", "a:3", { release: "green", weight: 0 }),
      target("g3", "a:4", { release: "green", state: "draining" }),
    ], { preview: "green" });
    assert.deepEqual(weightsOf(planPreview(t)), { g1: 1, g2: 1 });
  });
  it("no preview → []", () => assert.deepEqual(planPreview(table(1, [target("a", "a:1")])), []));
});

const obs = (name: string, over: Partial<ObservedServer> = {}): ObservedServer => ({ name, address: "127.0.0.1:1", opState: 2, admin: 0, weight: 3, scur: 0, ...over });
const want = (name: string, over: Partial<{ address: string; weight: number; admin: "ready" | "drain" }> = {}) => ({ name, address: "127.0.0.1:1", weight: 3, admin: "ready" as const, ...over });

describe("planSteps", () => {
  it("observed {}, desired a → add a", () => assert.deepEqual(planSteps("kiln", [], [want("a")]).map((s) => s.kind), ["add"]));
  it("already as wanted → []", () => assert.deepEqual(planSteps("kiln", [obs("a")], [want("a")]), []));
  it("ready → drain: weight then admin drain", () => {
    assert.deepEqual(planSteps("kiln", [obs("a")], [want("a", { weight: 0, admin: "drain" })]), [
      { kind: "weight", backend: "kiln", name: "a", weight: 0 },
      { kind: "admin", backend: "kiln", name: "a", admin: "drain" },
    ]);
  });
  it("a dropped → retire a, after the add of b", () => {
    assert.deepEqual(planSteps("kiln", [obs("a")], [want("b")]).map((s) => `${s.kind} ${"name" in s ? s.name : s.kind === "add" ? s.server.name : ""}`), ["add b", "retire a"]);
  });
  it("a in maint (being removed) wanted again → weight and ready", () => {
    assert.deepEqual(planSteps("kiln", [obs("a", { admin: 0x01, weight: 0 })], [want("a")]).map((s) => s.kind), ["admin", "weight"]);
  });
  it("a moved → addr", () => {
    assert.deepEqual(planSteps("kiln", [obs("a")], [want("a", { address: "127.0.0.1:2" })]), [{ kind: "addr", backend: "kiln", name: "a", address: "127.0.0.1:2" }]);
  });
});

describe("commandsOf", () => {
  const opts = { intervalMs: 2000, rise: 2, fall: 2 };
  it("add: add in maint, enable health, set state", () => {
    assert.deepEqual(commandsOf({ kind: "add", backend: "kiln", server: { name: "a", address: "127.0.0.1:9001", weight: 3, admin: "ready" } }, opts), [
      "add server kiln/a 127.0.0.1:9001 weight 3 check inter 2000 rise 2 fall 2 pool-max-conn -1 pool-purge-delay 5s",
      "enable health kiln/a",
      "set server kiln/a state ready",
    ]);
  });
  it("admin drain", () => assert.deepEqual(commandsOf({ kind: "admin", backend: "kiln", name: "a", admin: "drain" }, opts), ["set server kiln/a state drain"]));
  it("retire", () => assert.deepEqual(commandsOf({ kind: "retire", backend: "kiln", name: "a" }, opts), ["set server kiln/a weight 0", "set server kiln/a state drain"]));
  it("addr", () => assert.deepEqual(commandsOf({ kind: "addr", backend: "kiln", name: "a", address: "127.0.0.1:2" }, opts), ["set server kiln/a addr 127.0.0.1 port 2"]));
});

describe("mismatches", () => {
  it("as wanted → []", () => assert.deepEqual(mismatches([obs("a")], [want("a")]), []));
  it("drain read back → []", () => assert.deepEqual(mismatches([obs("a", { admin: 0x08, weight: 0 })], [want("a", { admin: "drain", weight: 0 })]), []));
  it("maint instead of ready", () => assert.deepEqual(mismatches([obs("a", { admin: 0x01 })], [want("a")]), ["a: state maint, wanted ready"]));
  it("missing", () => assert.deepEqual(mismatches([], [want("a")]), ["a: missing"]));
});

describe("planRetire", () => {
  const r = (over: Partial<Retiring> = {}): Retiring => ({ backend: "kiln", name: "a", release: "r1", deadline: 1000, phase: "drain", zeroReads: 0, ...over });
  it("drain, sessions, before deadline → wait", () => assert.deepEqual(planRetire(r(), { scur: 2, conns: 2 }, 0), { action: "wait", zeroReads: 0 }));
  it("drain, third zero read → maint (idle connections do not hold it)", () => assert.deepEqual(planRetire(r({ zeroReads: 2 }), { scur: 0, conns: 1 }, 0), { action: "maint", zeroReads: 0 }));
  it("drain, second zero read → wait", () => assert.deepEqual(planRetire(r({ zeroReads: 1 }), { scur: 0, conns: 0 }, 0), { action: "wait", zeroReads: 2 }));
  it("drain, deadline passed → maint-and-shutdown", () => assert.deepEqual(planRetire(r(), { scur: 5, conns: 5 }, 1000), { action: "maint-and-shutdown", zeroReads: 0 }));
  it("maint, third zero read → delete", () => assert.deepEqual(planRetire(r({ phase: "maint", zeroReads: 2 }), { scur: 0, conns: 0 }, 0), { action: "delete", zeroReads: 3 }));
  it("maint, a connection left → wait, count restarts", () => assert.deepEqual(planRetire(r({ phase: "maint", zeroReads: 2 }), { scur: 0, conns: 1 }, 0), { action: "wait", zeroReads: 0 }));
});

describe("isServerName", () => {
  for (const [id, ok] of [["hello-1-a1b2", true], ["i_1.2:3", true], ["a b", false], ["", false], ["a/b", false]] as const) {
    it(`${JSON.stringify(id)} → ${ok}`, () => assert.equal(isServerName(id), ok));
  }
});

describe("renderConfig", () => {
  const base: ConfigInput = {
    listen: "127.0.0.1:8080",
    adminSocket: "/run/k/admin.sock",
    health: { path: "/healthz", intervalMs: 2000, timeoutMs: 1000, healthyThreshold: 2, unhealthyThreshold: 2 },
    hardStopAfterMs: 60_000,
    maxconn: 4000,
    instanceHeader: true,
    requestLog: false,
  };
  it("one frontend and backend, checks, admin socket, no log without a port", () => {
    const c = renderConfig(base);
    assert.match(c, /\nfrontend fe_kiln\n {2}bind 127\.0\.0\.1:8080\n/);
    assert.match(c, /\nbackend kiln\n {2}balance roundrobin\n {2}http-reuse always\n {2}option httpchk GET \/healthz\n/);
    assert.match(c, /stats socket \/run\/k\/admin\.sock mode 600 level admin expose-fd listeners/);
    assert.match(c, /maxconn 4000/);
    assert.match(c, /timeout check 1000ms/);
    assert.doesNotMatch(c, /kiln_preview/);
    assert.doesNotMatch(c, /\blog ring/);
  });
  it("preview listener → its own frontend and backend", () => {
    const c = renderConfig({ ...base, previewListen: "127.0.0.1:8081" });
    assert.match(c, /\nfrontend fe_kiln_preview\n {2}bind 127\.0\.0\.1:8081\n/);
    assert.match(c, /\nbackend kiln_preview\n/);
  });
  it("request log → a raw ring, logged to from each frontend", () => {
    const c = renderConfig({ ...base, requestLog: true, previewListen: "127.0.0.1:8081" });
    assert.match(c, /\nring kiln_requests\n {2}format raw\n/);
    assert.equal(c.match(/log ring@kiln_requests local0 info/g)?.length, 2);
    assert.match(c, /log-format "%b %s %ST %Ta"/);
  });
  it("TLS → a second bind with the crt-list and ALPN h2, forwarded proto from the connection", () => {
    const c = renderConfig({ ...base, tls: { listen: "127.0.0.1:8443", crtList: "/run/k/crt-list", redirectHttp: false } });
    assert.match(c, /\n {2}bind 127\.0\.0\.1:8080\n {2}bind 127\.0\.0\.1:8443 ssl crt-list \/run\/k\/crt-list alpn h2,http\/1\.1\n/);
    assert.match(c, /set-header x-forwarded-proto %\[ssl_fc,iif\(https,http\)\]/);
    assert.doesNotMatch(c, /redirect/);
  });
  it("TLS with redirectHttp → plain requests get 308 to the TLS port, keeping the host name", () => {
    const c = renderConfig({ ...base, tls: { listen: "127.0.0.1:8443", crtList: "/run/k/crt-list", redirectHttp: true } });
    assert.match(c, /http-request redirect location https:\/\/%\[req\.hdr\(host\),regsub\(:\[0-9\]\+\$,\)\]:8443%\[capture\.req\.uri\] code 308 if !\{ ssl_fc \}/);
    const on443 = renderConfig({ ...base, tls: { listen: "0.0.0.0:443", crtList: "/c", redirectHttp: true } });
    assert.match(on443, /regsub\(:\[0-9\]\+\$,\)\]%\[capture/, "no port suffix for 443");
  });
  it("metricsListen → a frontend serving the Prometheus exporter at /metrics only", () => {
    assert.doesNotMatch(renderConfig(base), /prometheus-exporter/);
    const c = renderConfig({ ...base, metricsListen: "127.0.0.1:9101" });
    assert.match(c, /\nfrontend kiln_metrics\n {2}bind 127\.0\.0\.1:9101\n/);
    assert.match(c, /http-request use-service prometheus-exporter if \{ path \/metrics \}/);
  });
  it("crt-list: one PEM per line, in order (the first is the default)", () => {
    assert.equal(renderCrtList(["/r/0.pem", "/r/1.pem"]), "/r/0.pem\n/r/1.pem\n");
  });
  it("a health path with a space is encoded; no instance header when off", () => {
    const c = renderConfig({ ...base, health: { ...base.health, path: "/up now" }, instanceHeader: false });
    assert.match(c, /option httpchk GET \/up%20now\n/);
    assert.doesNotMatch(c, /x-kiln-instance/);
  });
});

describe("runtime API parsers", () => {
  it("show servers state", () => {
    const text =
      "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord\n" +
      "3 kiln 1 a 127.0.0.1 2 0 3 3 0 1 0 1 6 0 0 0 - 9001 -\n3 kiln 2 b 127.0.0.1 0 8 0 1 1 1 0 0 2 0 0 0 - 9002 -\n\n";
    assert.deepEqual(parseServersState(text), [
      { name: "a", address: "127.0.0.1:9001", opState: 2, admin: 0, weight: 3 },
      { name: "b", address: "127.0.0.1:9002", opState: 0, admin: 8, weight: 0 },
    ]);
    assert.deepEqual(parseServersState("\n"), []);
  });
  it("show stat", () => {
    const text = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,hrsp_5xx,econ,eresp,status,idle_conn_cur,used_conn_cur\nkiln,a,0,0,1,4,,17,2,1,1,UP,3,1\nkiln,BACKEND,0,0,1,4,,17,2,1,1,UP,3,1\n";
    assert.deepEqual(parseStat(text), [{ backend: "kiln", name: "a", scur: 1, stot: 17, hrsp5xx: 2, econ: 1, eresp: 1, status: "UP", conns: 4 }]);
  });
  it("request log lines", () => {
    assert.deepEqual(parseLogLine("kiln a 200 3\n"), { proxy: "kiln", server: "a", status: 200, activeMs: 3 });
    assert.deepEqual(parseLogLine("fe_kiln <NOSRV> 503 0"), { proxy: "fe_kiln", server: "<NOSRV>", status: 503, activeMs: 0 });
    assert.equal(parseLogLine("garbage"), undefined);
  });
});

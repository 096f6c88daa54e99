import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { hostName, pickService, type NamedRoute } from "../../src/traffic/proxy/routes.js";
import { checkTable } from "../../src/traffic/proxy/table.js";

describe("pickService (several services on one listener)", () => {
  const ab: NamedRoute[] = [
    { service: "a", hosts: ["a.test"] },
    { service: "b", hosts: ["b.test"] },
  ];
  const rows: Array<[string, NamedRoute[], string | undefined, string, string | undefined]> = [
    ["by host, any case, port ignored", ab, "B.test:8080", "/", "b"],
    ["longest path prefix", [{ service: "a", hosts: ["a.test"] }, { service: "api", hosts: ["a.test"], pathPrefix: "/api" }], "a.test", "/api/v1", "api"],
    ["a prefix ends at /", [{ service: "a", hosts: ["a.test"] }, { service: "api", hosts: ["a.test"], pathPrefix: "/api" }], "a.test", "/apix", "a"],
    ["prefix with a query", [{ service: "a", hosts: ["a.test"] }, { service: "api", hosts: ["a.test"], pathPrefix: "/api/" }], "a.test", "/api?x=1", "api"],
    ["exact beats wildcard", [{ service: "w", hosts: ["*.c.test"] }, { service: "x", hosts: ["x.c.test"] }], "x.c.test", "/", "x"],
    ["wildcard covers one label", [{ service: "w", hosts: ["*.c.test"] }], "y.x.c.test", "/", undefined],
    ["catch-all", [...ab, { service: "d", hosts: [] }], "other.test", "/", "d"],
    ["no match", ab, "other.test", "/", undefined],
    ["no Host header", ab, undefined, "/", undefined],
  ];
  for (const [name, routes, host, path, want] of rows) {
    it(name, () => assert.equal(pickService(routes, host, path), want));
  }
  it("hostName", () => {
    assert.equal(hostName("Example.COM:8080"), "example.com");
    assert.equal(hostName("[::1]:80"), "[::1]");
    assert.equal(hostName(undefined), "");
  });
});

describe("checkTable: route", () => {
  const base = { version: 1, targets: [], health: { path: "/h", intervalMs: 100, timeoutMs: 50, healthyThreshold: 1, unhealthyThreshold: 1 }, drainTimeoutMs: 0 };
  it("kept when valid", () => {
    const r = checkTable({ ...base, route: { hosts: ["a.test", "*.b.test"], pathPrefix: "/api" } });
    assert.ok(r.ok);
    assert.deepEqual(r.table.route, { hosts: ["a.test", "*.b.test"], pathPrefix: "/api" });
  });
  it("bad host names and prefixes are problems at their path", () => {
    const r = checkTable({ ...base, route: { hosts: ["A.test", "x y"], pathPrefix: "api" } });
    assert.ok(!r.ok);
    assert.deepEqual(r.problems.map((p) => p.split(":")[0]), ["route.hosts[0]", "route.hosts[1]", "route.pathPrefix"]);
  });
});

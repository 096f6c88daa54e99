import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { computeConfigHash, parseSpec, type Spec } from "../../src/config/index.js";

function spec(text: string): Spec {
  const r = parseSpec(text, "kiln.yaml");
  if ("errors" in r) assert.fail(JSON.stringify(r.errors));
  return r.spec;
}

describe("computeConfigHash", () => {
  const a = `name: svc
version: v1
instances: 3
env:
  A: "1"
  B: "2"
volumes:
  - {name: data, path: /data}
  - {name: logs, path: /logs}
health:
  path: /healthz
  interval: 1s
`;
  // The same configuration, keys and volumes written in another order.
  const reordered = `health:
  interval: 1000ms
  path: /healthz
volumes:
  - {path: /logs, name: logs}
  - {path: /data, name: data}
env:
  B: "2"
  A: "1"
version: v1
name: svc
`;

  it("is stable under key reordering and equivalent spellings", () => {
    assert.equal(computeConfigHash(spec(a)), computeConfigHash(spec(reordered)));
    assert.match(computeConfigHash(spec(a)), /^sha256:[0-9a-f]{64}$/);
  });

  it("changes with env, volumes, health and drainTimeout", () => {
    const h = computeConfigHash(spec(a));
    assert.notEqual(computeConfigHash(spec(a.replace('B: "2"', 'B: "3"'))), h);
    assert.notEqual(computeConfigHash(spec(a.replace("/logs}", "/var/logs}"))), h);
    assert.notEqual(computeConfigHash(spec(a.replace("interval: 1s", "interval: 2s"))), h);
    assert.notEqual(computeConfigHash(spec(`${a}drainTimeout: 10s\n`)), h);
  });

  it("changes with docker.network: host, and the default spelled out changes nothing", () => {
    const h = computeConfigHash(spec(a));
    assert.notEqual(computeConfigHash(spec(`${a}docker:\n  network: host\n`)), h);
    // releases recorded before the key existed keep their hash
    assert.equal(computeConfigHash(spec(`${a}docker:\n  network: bridge\n`)), h);
  });

  it("ignores scaling, the proxy address, strategy and version", () => {
    const h = computeConfigHash(spec(a));
    assert.equal(computeConfigHash(spec(a.replace("instances: 3", "instances: 30"))), h);
    assert.equal(computeConfigHash(spec(`${a}listen: 0.0.0.0:80\n`)), h);
    assert.equal(computeConfigHash(spec(`${a}strategy:\n  type: blue-green\n`)), h);
    assert.equal(computeConfigHash(spec(a.replace("version: v1", "version: v2"))), h);
  });
});

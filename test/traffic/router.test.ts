// The Router conformance suite against both implementations, plus FakeRouter's test controls.

import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import { isKilnError } from "../../src/errors.js";
import { FakeRouter } from "../../src/traffic/fake.js";
import { ProxyClient } from "../../src/traffic/proxy/client.js";
import { routerConformance } from "./router-conformance.js";
import { table, target, tempDir, withProxy } from "./helpers.js";

routerConformance("FakeRouter", async () => ({ router: new FakeRouter({ pid: 1 }), teardown: async () => undefined }));

routerConformance("proxy (ProxyClient over the admin socket)", async () => {
  const p = await withProxy();
  return { router: p.client, teardown: () => p.close() };
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
    assert.deepEqual(s.releases.r2, { requests: 10, errors5xx: 2, connectFailures: 0 });
    await r.setTable(table(3, []));
    assert.deepEqual((await r.stats()).releases.r2, { requests: 10, errors5xx: 2, connectFailures: 0 });
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

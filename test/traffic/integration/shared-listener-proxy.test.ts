// Several services on one listener of kiln's proxy (in process, real sockets on 127.0.0.1):
// each service's client registers its table with its route; requests pick a service by Host
// and path prefix; stats, a table for one service, a restart from the state files and the
// removal of one service leave the others as they were.

import assert from "node:assert/strict";
import path from "node:path";
import { after, describe, it } from "node:test";
import { ProxyClient } from "../../../src/traffic/proxy/client.js";
import { request, startBackend, table, target, tempDir, withProxy, type Backend, type TestProxy } from "../helpers.js";

describe("proxy: several services on one listener", () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });
  const backend = async (name: string): Promise<Backend> => {
    const b = await startBackend(name);
    cleanups.push(() => b.close());
    return b;
  };
  const client = (p: TestProxy, service: string, hosts: string[], pathPrefix?: string) =>
    new ProxyClient(path.join(p.dir, "proxy.sock"), { shared: { service, route: { hosts, ...(pathPrefix ? { pathPrefix } : {}) } } });
  const via = async (p: TestProxy, host: string, pth = "/") => {
    const r = await request(p.proxy.address, { path: pth, headers: { host } });
    return r.status === 200 ? String(r.headers["x-kiln-instance"]) : `HTTP ${r.status}`;
  };

  it("routes by host and path prefix, per-service tables and stats; survives a restart; removes one service only", async () => {
    const [a, b, api] = await Promise.all(["a", "b", "api"].map(backend));
    const { dir, cleanup } = await tempDir(); // kept across the restart below
    cleanups.push(cleanup);
    const p = await withProxy({ dir });
    let open = true;
    cleanups.push(async () => void (open && (await p.close())));
    const ca = client(p, "alpha", ["alpha.test"]);
    const cb = client(p, "beta", ["beta.test", "*.beta.test"]);
    const capi = client(p, "alpha-api", ["alpha.test"], "/api");
    await ca.setTable(table(1, [target("a", a!.address, { release: "a1" })]));
    await cb.setTable(table(5, [target("b", b!.address, { release: "b1" })]));
    await capi.setTable(table(1, [target("api", api!.address, { release: "x1" })]));

    assert.equal(await via(p, "alpha.test:8080"), "a");
    assert.equal(await via(p, "ALPHA.test", "/api/v1"), "api");
    assert.equal(await via(p, "alpha.test", "/apix"), "a");
    assert.equal(await via(p, "beta.test"), "b");
    assert.equal(await via(p, "x.beta.test"), "b");
    assert.equal(await via(p, "other.test"), "HTTP 404");

    // Each service sees its own table version and counters.
    assert.equal((await ca.stats()).tableVersion, 1);
    assert.equal((await cb.stats()).tableVersion, 5);
    assert.equal((await cb.stats()).releases.b1!.requests, 2);
    assert.equal((await ca.stats()).releases.a1!.requests, 2);
    assert.equal((await p.client.stats()).tableVersion, 0, "the listener's own service has no table");
    assert.equal((await client(p, "gamma", ["g.test"]).stats()).tableVersion, 0, "an unknown service reads as empty");

    // A rollout of alpha (a table with a new target, the old one draining) leaves beta alone.
    const a2 = await backend("a2");
    await ca.setTable(table(2, [target("a", a!.address, { release: "a1", state: "draining" }), target("a2", a2.address, { release: "a2" })]));
    assert.equal(await via(p, "alpha.test"), "a2");
    assert.equal(await via(p, "beta.test"), "b");
    await assert.rejects(cb.setTable(table(4, [])), /older than the current version 5/);

    // A restarted proxy loads every service's table from its state file.
    await p.close();
    open = false;
    const p2 = await withProxy({ dir });
    cleanups.push(() => p2.close());
    assert.equal(await via(p2, "alpha.test"), "a2");
    assert.equal(await via(p2, "beta.test"), "b");
    assert.equal(await via(p2, "alpha.test", "/api"), "api");

    // Alpha leaves: its hosts are 404, beta and the api stay.
    assert.equal(await client(p2, "alpha", []).leave(), 2);
    assert.equal(await via(p2, "alpha.test"), "HTTP 404");
    assert.equal(await via(p2, "alpha.test", "/api/x"), "api");
    assert.equal(await via(p2, "beta.test"), "b");
    assert.equal(await client(p2, "alpha-api", []).leave(), 1);
    assert.equal(await client(p2, "beta", []).leave(), 0);
    assert.equal(await via(p2, "beta.test"), "HTTP 503", "no service left: as a proxy that has no table yet");
  });
});

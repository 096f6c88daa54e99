// WebSocket (Upgrade) passthrough with real `ws` clients and servers on
// 127.0.0.1: echo and server push through the proxy, while the routing table
// drains the old instance and adds a new one. Messages are counted: none may
// be lost before the drain deadline, and at the deadline clients get a clean
// close (1001), never a cut. Every loop is bounded in count and time.

import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { WebSocket, WebSocketServer } from "ws";
import { request, sleep, suiteFixtures, table, target, waitFor, withProxy, type TestProxy } from "../helpers.js";
import { connect, wsBackend } from "../ws-fixtures.js";

describe("proxy WebSocket passthrough", () => {
  const { proxy, keep } = suiteFixtures();
  const backend = async (name: string) => keep(await wsBackend(name));

  it("relays a replacement: old connections keep every message until the drain deadline, then close with 1001; new ones go to the new instance", async () => {
    const [oldB, newB] = await Promise.all([backend("old"), backend("new")]);
    const p = await proxy();
    const drainTimeoutMs = 1500;
    await p.client.setTable(table(1, [target("old", oldB.address, { release: "v1" })], { drainTimeoutMs }));
    const clients = await Promise.all(Array.from({ length: 5 }, () => connect(p.proxy.address)));
    assert.deepEqual(clients.map((c) => c.backend), ["old", "old", "old", "old", "old"]);
    await sleep(300);

    // The replacement: old drains, new takes new connections.
    const drainStart = Date.now();
    await p.client.setTable(
      table(2, [target("old", oldB.address, { release: "v1", state: "draining" }), target("new", newB.address, { release: "v2" })], { drainTimeoutMs }),
    );
    const later = await Promise.all(Array.from({ length: 3 }, () => connect(p.proxy.address)));
    assert.deepEqual(later.map((c) => c.backend), ["new", "new", "new"]);
    const s = await p.client.stats();
    assert.equal(s.targets.find((t) => t.id === "old")!.inflight, 5, "each open tunnel counts as in flight on its target");

    await waitFor(() => clients.every((c) => c.closed !== undefined), "old clients closed at the drain deadline", 15_000);
    for (const c of clients) {
      assert.equal(c.closed!.code, 1001, "a clean close: going away");
      assert.ok(c.closed!.at >= drainStart + drainTimeoutMs - 50, "not closed before the drain deadline");
      // Dropped = sent in time for its echo to return before the deadline, with no echo.
      const due = c.sent.filter((m) => m.at <= drainStart + drainTimeoutMs - 250);
      const dropped = due.filter((m) => !c.echoed.has(m.i));
      assert.ok(due.length > 30, `messages were exchanged while draining (${due.length})`);
      assert.deepEqual(dropped, [], "no message lost before the drain deadline");
      // Server push arrived in order with no gap: nothing cut mid-stream.
      assert.ok(c.ticks.length > 50);
      assert.deepEqual(c.ticks, c.ticks.map((_, k) => k));
    }
    await waitFor(() => oldB.open() === 0, "the old instance's sockets were closed too", 5000);
    await waitFor(async () => (await p.client.stats()).targets.find((t) => t.id === "old")!.inflight === 0, "old in-flight back to 0", 5000);
    assert.ok(p.logs.some((l) => /tunnel to old .*closing \(drain deadline\)/.test(l)), p.logs.join("\n"));

    // The new instance's connections are untouched and still echo.
    for (const c of later) {
      assert.equal(c.closed, undefined);
      c.ws.send("m99999");
    }
    await waitFor(() => later.every((c) => c.echoed.has(99999)), "new connections echo", 5000);
    for (const c of later) c.ws.close();
    await waitFor(() => later.every((c) => c.closed !== undefined), "clients closed", 5000);
    const st = await p.client.stats();
    assert.equal(st.releases.v1!.requests, 5, "each handshake counts once");
    assert.equal(st.releases.v2!.requests, 3);
  });

  it("keeps a removed target's tunnel until the deadline, relays a refused upgrade, and answers maintenance with 503", async () => {
    const [a, b] = await Promise.all([backend("a"), backend("b")]);
    const p = await proxy();
    await p.client.setTable(table(1, [target("a", a.address)], { drainTimeoutMs: 800 }));
    const c = await connect(p.proxy.address);
    const removedAt = Date.now();
    await p.client.setTable(table(2, [target("b", b.address)], { drainTimeoutMs: 800 }));
    await waitFor(() => c.closed !== undefined, "closed at the deadline", 10_000);
    assert.equal(c.closed!.code, 1001);
    assert.ok(c.closed!.at >= removedAt + 800 - 50);
    const due = c.sent.filter((m) => m.at <= removedAt + 800 - 250);
    assert.deepEqual(due.filter((m) => !c.echoed.has(m.i)), []);

    // The instance refuses: the client gets the instance's answer.
    const refused = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`ws://${p.proxy.address}/nope`);
      ws.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      ws.on("error", () => resolve(-1));
    });
    assert.equal(refused, 403);

    await p.client.setTable(table(3, [target("b", b.address)], { maintenance: { retryAfterS: 5 } }));
    const maint = await new Promise<{ status: number; retry: string | undefined }>((resolve) => {
      const ws = new WebSocket(`ws://${p.proxy.address}/chat`);
      ws.on("unexpected-response", (_req, res) => resolve({ status: res.statusCode ?? 0, retry: res.headers["retry-after"] as string | undefined }));
      ws.on("error", () => resolve({ status: -1, retry: undefined }));
    });
    assert.deepEqual(maint, { status: 503, retry: "5" });
    assert.equal((await request(p.proxy.address)).status, 503);
  });

  it("retries a handshake whose target refuses connections, and closes tunnels cleanly when the proxy closes", async () => {
    const b = await backend("b");
    const p = await withProxy();
    await p.client.setTable(table(1, [target("dead", "127.0.0.1:1"), target("b", b.address)]));
    const cs = await Promise.all(Array.from({ length: 4 }, () => connect(p.proxy.address)));
    assert.deepEqual(cs.map((c) => c.backend), ["b", "b", "b", "b"]);
    await sleep(100);
    await p.close();
    await waitFor(() => cs.every((c) => c.closed !== undefined), "clients closed by the proxy's shutdown", 5000);
    assert.deepEqual(cs.map((c) => c.closed!.code), [1001, 1001, 1001, 1001]);
  });
});

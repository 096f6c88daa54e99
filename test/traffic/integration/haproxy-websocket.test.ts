// WebSocket clients through HAProxy (the haproxy router) during a rolling and a blue-green
// replacement, driven through HaproxyRouter.setTable as the controller drives it. Messages are
// counted: none may be lost before the drain deadline; at the deadline HAProxy's sessions to
// the old server are shut down (`shutdown sessions`), which the client sees as a close —
// HAProxy cuts the tunnel at the TCP level, it cannot send a WebSocket Close frame (kiln's
// proxy does: 1001). Everything on 127.0.0.1, every loop bounded.

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { after, describe, it } from "node:test";
import { HAPROXY_BIN, startHaproxyRouter, type RunningHaproxyRouter } from "../../../src/traffic/haproxy/process.js";
import { sleep, table, target, tempDir, waitFor } from "../helpers.js";
import { connect, wsBackend, type Chatter, type WsBackend } from "../ws-fixtures.js";

const present = existsSync(HAPROXY_BIN);
if (!present && process.env.KILN_REQUIRE_ALL === "1") throw new Error(`${HAPROXY_BIN} is missing and KILN_REQUIRE_ALL=1`);

const health = { path: "/healthz", intervalMs: 300, timeoutMs: 500, healthyThreshold: 1, unhealthyThreshold: 2 };

/** Messages sent early enough for their echo to be back before `deadline`, that never came back. */
function dropped(c: Chatter, deadline: number): { due: number; lost: number[] } {
  const due = c.sent.filter((m) => m.at <= deadline - 250);
  return { due: due.length, lost: due.filter((m) => !c.echoed.has(m.i)).map((m) => m.i) };
}

describe("WebSocket through the HAProxy router", { skip: present ? false : `${HAPROXY_BIN} not installed` }, () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });
  const backend = async (name: string): Promise<WsBackend> => {
    const b = await wsBackend(name);
    cleanups.push(() => b.close());
    return b;
  };
  const router = async (): Promise<RunningHaproxyRouter> => {
    const { dir, cleanup } = await tempDir();
    const h = await startHaproxyRouter({ listen: "127.0.0.1:0", runDir: dir, health, sweepMs: 100 });
    cleanups.push(async () => {
      await h.stop();
      await cleanup();
    });
    return h;
  };
  const clientsOn = async (h: RunningHaproxyRouter, n: number): Promise<Chatter[]> => {
    const cs = await Promise.all(Array.from({ length: n }, () => connect(h.listen)));
    for (const c of cs) cleanups.push(async () => (c.stop(), c.ws.terminate()));
    return cs;
  };

  it("rolling: old connections lose no message until the drain deadline, then are closed; new ones go to the new instance", { timeout: 60_000 }, async (t) => {
    const [oldB, newB] = await Promise.all([backend("old"), backend("new")]);
    const h = await router();
    const drainTimeoutMs = 2000;
    await h.router.setTable(table(1, [target("old", oldB.address, { release: "v1" })], { drainTimeoutMs, health }));
    await waitFor(async () => (await h.router.stats()).targets[0]?.inRotation === true, "old in rotation", 10_000);
    const clients = await clientsOn(h, 5);
    assert.deepEqual(clients.map((c) => c.backend), ["old", "old", "old", "old", "old"]);
    await sleep(300);

    const drainStart = Date.now();
    await h.router.setTable(table(2, [target("old", oldB.address, { release: "v1", state: "draining" }), target("new", newB.address, { release: "v2" })], { drainTimeoutMs, health }));
    await waitFor(async () => (await h.router.stats()).targets.find((t) => t.id === "new")?.inRotation === true, "new in rotation", 10_000);
    const later = await clientsOn(h, 3);
    assert.deepEqual(later.map((c) => c.backend), ["new", "new", "new"]);

    await waitFor(() => clients.every((c) => c.closed !== undefined), "old clients closed after the drain deadline", 20_000);
    for (const c of clients) {
      assert.ok(c.closed!.at >= drainStart + drainTimeoutMs - 50, `not closed before the drain deadline (${c.closed!.at - drainStart} ms)`);
      const d = dropped(c, drainStart + drainTimeoutMs);
      assert.ok(d.due > 30, `messages were exchanged while draining (${d.due})`);
      assert.deepEqual(d.lost, [], "no message lost before the drain deadline");
      assert.ok(c.ticks.length > 50);
      assert.deepEqual(c.ticks, c.ticks.map((_, k) => k), "server push in order, no gap");
    }
    t.diagnostic(`close codes at the deadline: ${clients.map((c) => c.closed!.code).join(", ")}; closed after ${clients.map((c) => c.closed!.at - drainStart).join(", ")} ms`);
    await waitFor(() => oldB.open() === 0, "the old instance's sockets closed too", 10_000);
    for (const c of later) {
      assert.equal(c.closed, undefined, "the new instance's connections are untouched");
      c.ws.send("m99999");
    }
    await waitFor(() => later.every((c) => c.echoed.has(99999)), "new connections echo", 5000);
  });

  it("blue-green: blue's connections survive the switch (standby, weight 0) with no message lost, until blue is drained and its deadline passes", { timeout: 60_000 }, async () => {
    const [blue, green] = await Promise.all([backend("blue"), backend("green")]);
    const h = await router();
    const drainTimeoutMs = 1500;
    const t = (v: number, b: { weight: number; state?: "active" | "draining" } | undefined, g: number) =>
      table(v, [...(b ? [target("blue", blue.address, { release: "blue", ...b })] : []), target("green", green.address, { release: "green", weight: g })], { drainTimeoutMs, health });
    // green on standby (weight 0: checked, no traffic), blue serving.
    await h.router.setTable(t(1, { weight: 1 }, 0));
    await waitFor(async () => (await h.router.stats()).targets.find((x) => x.id === "blue")?.inRotation === true, "blue in rotation", 10_000);
    const clients = await clientsOn(h, 4);
    assert.deepEqual(clients.map((c) => c.backend), ["blue", "blue", "blue", "blue"]);
    await sleep(300);

    // The switch: green serves, blue stays warm on standby. Open tunnels to blue go on.
    const switchAt = Date.now();
    await h.router.setTable(t(2, { weight: 0 }, 1));
    await waitFor(async () => (await h.router.stats()).targets.find((x) => x.id === "green")?.inRotation === true, "green in rotation", 10_000);
    const later = await clientsOn(h, 2);
    assert.deepEqual(later.map((c) => c.backend), ["green", "green"]);
    await sleep(1500);
    assert.ok(clients.every((c) => c.closed === undefined), "blue's connections are kept while blue is on standby");

    // Blue's previous fleet is let go: drained, closed at its deadline.
    const drainStart = Date.now();
    await h.router.setTable(t(3, { weight: 0, state: "draining" }, 1));
    await waitFor(() => clients.every((c) => c.closed !== undefined), "blue's clients closed after the drain deadline", 20_000);
    for (const c of clients) {
      assert.ok(c.closed!.at >= drainStart + drainTimeoutMs - 50, `not closed before the drain deadline (${c.closed!.at - drainStart} ms)`);
      const d = dropped(c, drainStart + drainTimeoutMs);
      assert.ok(d.due > 60 && c.sent.some((m) => m.at > switchAt + 1000), `messages were exchanged across the switch (${d.due})`);
      assert.deepEqual(d.lost, [], "no message lost before the drain deadline");
      assert.deepEqual(c.ticks, c.ticks.map((_, k) => k), "server push in order, no gap");
    }
    for (const c of later) assert.equal(c.closed, undefined, "green's connections are untouched");
  });
});

// The shared Router conformance suite against one service's HaproxyRouter on a
// shared HAProxy listener (edge.hosts): the service under test is routed by
// Host (sut.test, shop.test) while a neighbour service with its own backend
// and traffic shares the listener, so every case also shows that the other
// service's presence changes nothing. The preview listener is shared too:
// routed by the same Host map to the service's preview backend.

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import http from "node:http";
import { routerConformance } from "../router-conformance.js";
import { request, startBackend, table, target, tempDir, type Backend } from "../helpers.js";
import { HAPROXY_BIN, startHaproxyRouter } from "../../../src/traffic/haproxy/process.js";

const present = existsSync(HAPROXY_BIN);
if (!present && process.env.KILN_REQUIRE_ALL === "1") throw new Error(`${HAPROXY_BIN} is missing and KILN_REQUIRE_ALL=1`);
if (!present) console.log(`# skip: ${HAPROXY_BIN} not installed (apt-get install haproxy)`);

const HOST = "sut.test";

/** n GETs with one Host header over keep-alive (8 at a time, bounded by 20 s), counted by who answered. */
async function sendTo(address: string, host: string, n: number): Promise<Record<string, number>> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const out: Record<string, number> = {};
  let started = 0;
  const until = Date.now() + 20_000;
  const worker = async () => {
    while (started < n && Date.now() < until) {
      started++;
      const r = await request(address, { agent, headers: { host } });
      const k = String(r.headers["x-backend"] ?? r.status);
      out[k] = (out[k] ?? 0) + 1;
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(8, n) }, worker));
  } finally {
    agent.destroy();
  }
  return out;
}

if (present) {
  routerConformance("HaproxyRouter, one service of two on a shared HAProxy listener", async () => {
    const { dir, cleanup } = await tempDir();
    const h = await startHaproxyRouter({ listen: "127.0.0.1:0", previewListen: "127.0.0.1:0", runDir: dir, shared: { service: "sut", route: { hosts: [HOST, "shop.test"] } } });
    // The neighbour: its own service, backend and one instance, asked once per setup.
    const n1 = await startBackend("n1");
    const neighbour = await startHaproxyRouter({ listen: h.listen, previewListen: h.previewListen!, runDir: dir, shared: { service: "neighbour", route: { hosts: ["neighbour.test"] } } });
    await neighbour.router.setTable(table(1, [target("n1", n1.address)]));
    assert.deepEqual(await sendTo(h.listen, "neighbour.test", 4), { n1: 4 });
    const backends: Backend[] = [];
    return {
      router: h.router,
      backend: async (name) => {
        const b = await startBackend(name);
        backends.push(b);
        return b.address;
      },
      send: (n, opts = {}) => sendTo(opts.preview ? h.previewListen! : h.listen, HOST, n),
      http: {
        request: (o) => request(h.listen, { ...o, headers: { host: HOST, ...o.headers } }),
        hits: (name) => backends.find((b) => b.name === name)?.hits ?? [],
      },
      teardown: async () => {
        // The neighbour still answers, whatever the case did to the service under test.
        const still = await sendTo(h.listen, "neighbour.test", 2);
        await h.stop();
        await neighbour.stop();
        for (const b of [...backends, n1]) await b.close();
        await cleanup();
        assert.deepEqual(still, { n1: 2 }, "the neighbour service kept serving");
      },
    };
  });
}

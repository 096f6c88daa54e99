// The proxy as the edge (issue 10): forwarded headers, opt-in x-kiln-*
// headers, body limits, client timeouts, maintenance. In-process proxy, real
// backends and raw sockets on 127.0.0.1; every wait is bounded.

import assert from "node:assert/strict";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { request, startBackend, suiteFixtures, table, target, waitFor, withProxy, type Backend, type TestProxy } from "../helpers.js";

/** Send raw bytes, collect what comes back until the server closes (bounded). */
function raw(address: string, chunks: Array<string | { waitMs: number }>, timeoutMs = 10_000): Promise<{ text: string; closed: boolean }> {
  const [host, port] = address.split(":") as [string, string];
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(port), host);
    let text = "";
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ text, closed: false });
    }, timeoutMs);
    s.on("data", (c: Buffer) => (text += c.toString()));
    s.on("close", () => {
      clearTimeout(timer);
      resolve({ text, closed: true });
    });
    s.on("error", (e) => {
      clearTimeout(timer);
      if (text) resolve({ text, closed: true });
      else reject(e);
    });
    s.on("connect", async () => {
      for (const c of chunks) {
        if (typeof c === "string") s.write(c);
        else await new Promise((r) => setTimeout(r, c.waitMs));
      }
    });
  });
}

describe("proxy edge", () => {
  const { backend, proxy, defer } = suiteFixtures();

  it("leaves x-kiln-* headers off unless asked, on answers and on its own 502s", async () => {
    const a = await backend("a");
    const off = await proxy({ instanceHeaders: false });
    await off.client.setTable(table(1, [target("a", a.address)]));
    const r = await request(off.proxy.address);
    assert.equal(r.status, 200);
    assert.equal(r.body, "a");
    assert.deepEqual(Object.keys(r.headers).filter((k) => k.startsWith("x-kiln")), []);
    await off.client.setTable(table(2, [target("gone", "127.0.0.1:1")]));
    const bad = await request(off.proxy.address);
    assert.equal(bad.status, 502);
    assert.deepEqual(Object.keys(bad.headers).filter((k) => k.startsWith("x-kiln")), []);

    const on = await proxy({ instanceHeaders: true });
    await on.client.setTable(table(1, [target("a", a.address, { release: "r9" })]));
    const labelled = await request(on.proxy.address);
    assert.equal(labelled.headers["x-kiln-instance"], "a");
    assert.equal(labelled.headers["x-kiln-release"], "r9");
  });

  it("overwrites client-sent X-Forwarded-* and drops Forwarded", async () => {
    const a = await backend("a");
    const p = await proxy();
    await p.client.setTable(table(1, [target("a", a.address)]));
    await request(p.proxy.address, {
      path: "/spoof",
      headers: { host: "shop.test", "x-forwarded-for": "6.6.6.6", "x-forwarded-proto": "https", "x-forwarded-host": "evil", forwarded: "for=6.6.6.6" },
    });
    const h = a.hits.find((x) => x.url === "/spoof")!.headers;
    assert.equal(h["x-forwarded-for"], "127.0.0.1");
    assert.equal(h["x-forwarded-proto"], "http");
    assert.equal(h["x-forwarded-host"], "shop.test");
    assert.equal(h["forwarded"], undefined, "the client's Forwarded is dropped");
  });

  it("refuses a body over maxBodyBytes with 413: by content-length at once, chunked once it grows too big", async () => {
    const a = await backend("a");
    const p = await proxy({ maxBodyBytes: 1000 });
    await p.client.setTable(table(1, [target("a", a.address)]));
    const ok = await request(p.proxy.address, { method: "POST", path: "/echo", body: "x".repeat(1000) });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.length, 1000);
    const big = await request(p.proxy.address, { method: "POST", path: "/echo", body: "x".repeat(1001) });
    assert.equal(big.status, 413);
    assert.match(big.body, /larger than 1000 bytes/);
    const chunked = await request(p.proxy.address, {
      method: "POST",
      path: "/echo",
      body: "y".repeat(5000),
      headers: { "transfer-encoding": "chunked" },
    });
    assert.equal(chunked.status, 413);
    assert.equal(a.hits.filter((h) => h.method === "POST").length, 1, "only the body within the limit reached the instance");

    // Over the 1 MiB buffer the body streams: the limit still holds.
    const p2 = await proxy({ maxBodyBytes: 2 * 1024 * 1024 });
    await p2.client.setTable(table(1, [target("a", a.address)]));
    const streamed = await request(p2.proxy.address, {
      method: "POST",
      path: "/echo",
      body: Buffer.alloc(3 * 1024 * 1024, "z"),
      headers: { "transfer-encoding": "chunked" },
    }).catch((e: Error) => ({ status: -1, body: e.message, headers: {} }));
    // Either the 413 arrives, or (if the instance answered first) the exchange is cut: never a 200.
    assert.notEqual(streamed.status, 200);
    if (streamed.status !== -1) assert.equal(streamed.status, 413);
  });

  it("closes a client that is too slow to send its headers (408), and an idle keep-alive connection", async () => {
    const a = await backend("a");
    const p = await proxy({ headerTimeoutMs: 300, requestTimeoutMs: 1000, keepAliveTimeoutMs: 300 });
    await p.client.setTable(table(1, [target("a", a.address)]));
    // Node checks the header deadline on a timer of its own, so allow a few seconds.
    const slow = await raw(p.proxy.address, ["GET / HTTP/1.1\r\n", { waitMs: 200 }, "host: x\r\n"], 8000);
    assert.equal(slow.closed, true, "the slow client is disconnected");
    assert.match(slow.text, /^HTTP\/1\.1 408/);
    assert.equal(a.hits.length, 0);
    const idle = await raw(p.proxy.address, ["GET / HTTP/1.1\r\nhost: x\r\n\r\n"], 8000);
    assert.match(idle.text, /^HTTP\/1\.1 200/);
    assert.equal(idle.closed, true, "an idle keep-alive connection is closed by the proxy");
  });

  it("closes pooled connections to an instance once they have been idle (the sweep), keeps busy ones", async () => {
    const server = http.createServer((req, res) => {
      if (req.url === "/slow") setTimeout(() => res.end("slow"), 5500);
      else setTimeout(() => res.end("ok"), 200);
    });
    server.keepAliveTimeout = 60_000; // the instance would keep them: the proxy must close them
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    defer(async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    });
    const conns = () => new Promise<number>((r) => server.getConnections((_e, n) => r(n)));
    const p = await proxy();
    await p.client.setTable(table(1, [target("k", `127.0.0.1:${(server.address() as AddressInfo).port}`)]));
    // Two at once open two pooled connections; then one of them carries a slow request.
    const two = await Promise.all([request(p.proxy.address), request(p.proxy.address)]);
    assert.deepEqual(two.map((r) => r.status), [200, 200]);
    assert.equal(await conns(), 2);
    const slow = request(p.proxy.address, { path: "/slow" });
    // The idle one goes after ~4 s; the busy one (no byte for 5.5 s, under the 60 s upstream timeout) answers.
    await waitFor(async () => (await conns()) === 1, "the idle connection closed by the proxy", 8000);
    assert.equal((await slow).body, "slow");
  });

  it("maintenance: 503 page with Retry-After for every method, HEAD without body; the preview listener still serves", async () => {
    const [a, g] = await Promise.all([backend("a"), backend("g")]);
    const p = await proxy({ previewListen: "127.0.0.1:0" });
    await p.client.setTable(
      table(1, [target("a", a.address, { release: "blue" }), target("g", g.address, { release: "green", weight: 0 })], {
        preview: "green",
        maintenance: { message: "Upgrading the database", retryAfterS: 30 },
      }),
    );
    for (const method of ["GET", "POST", "HEAD"]) {
      const r = await request(p.proxy.address, { method, body: method === "POST" ? "x=1" : undefined });
      assert.equal(r.status, 503, method);
      assert.equal(r.headers["retry-after"], "30");
      assert.equal(r.headers["cache-control"], "no-store");
      if (method === "HEAD") assert.equal(r.body, "");
      else assert.match(r.body, /Upgrading the database/);
    }
    assert.equal(a.hits.length, 0);
    const pr = await request(p.proxy.previewAddress!);
    assert.equal(pr.status, 200);
    assert.equal(pr.body, "g");
    assert.deepEqual((await p.client.stats()).maintenance, { message: "Upgrading the database", retryAfterS: 30 });
  });
});

import assert from "node:assert/strict";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { probeHttp, probeTcp } from "../../src/health/probe.js";

describe("probeHttp / probeTcp", () => {
  let server: http.Server;
  let address = "";
  let closedAddress = "";
  const sockets = new Set<net.Socket>();

  before(async () => {
    server = http.createServer((req, res) => {
      if (req.url === "/ok") res.writeHead(200).end("ok");
      else if (req.url === "/redirect") res.writeHead(302, { location: "/ok" }).end();
      else if (req.url === "/hang") return; // never answers
      else res.writeHead(503).end("no");
    });
    server.on("connection", (s) => sockets.add(s));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    // A port that was just free: nothing listens there.
    const tmp = net.createServer();
    await new Promise<void>((r) => tmp.listen(0, "127.0.0.1", r));
    closedAddress = `127.0.0.1:${(tmp.address() as AddressInfo).port}`;
    await new Promise<void>((r) => tmp.close(() => r()));
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it("2xx and 3xx are ok", async () => {
    const ok = await probeHttp(address, "/ok", 2000);
    assert.equal(ok.ok, true);
    assert.equal(ok.ok && ok.status, 200);
    const redirect = await probeHttp(address, "/redirect", 2000);
    assert.equal(redirect.ok && redirect.status, 302);
  });

  it("other statuses fail with the status", async () => {
    assert.deepEqual(await probeHttp(address, "/bad", 2000), { ok: false, reason: "HTTP 503", status: 503 });
  });

  it("a hung instance fails at the timeout", async () => {
    assert.deepEqual(await probeHttp(address, "/hang", 100), { ok: false, reason: "timeout after 100ms" });
  });

  it("nothing listening fails with the errno", async () => {
    assert.deepEqual(await probeHttp(closedAddress, "/ok", 2000), { ok: false, reason: "ECONNREFUSED" });
    assert.deepEqual(await probeTcp(closedAddress, 2000), { ok: false, reason: "ECONNREFUSED" });
  });

  it("tcp probe connects", async () => {
    assert.equal((await probeTcp(address, 2000)).ok, true);
  });

  it("a bad address is a failed probe, not an exception", async () => {
    assert.equal((await probeHttp("nope", "/", 100)).ok, false);
  });
});

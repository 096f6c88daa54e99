// TLS termination: certificates made here with openssl, chosen by SNI; HTTP/2
// to clients (curl --http2 and Node's http2 client), HTTP/1.1 to instances;
// HTTPS for HTTP/1.1 clients and WebSocket on the same port; the HTTP→HTTPS
// redirect. Everything on 127.0.0.1.

import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import https from "node:https";
import http2 from "node:http2";
import path from "node:path";
import tls from "node:tls";
import { after, before, describe, it } from "node:test";
import { WebSocket } from "ws";
import { request, startBackend, table, target, tempDir, withProxy, type Backend, type TestProxy } from "../helpers.js";

function makeCert(dir: string, name: string, sans: string[]): { cert: string; key: string } {
  const cert = path.join(dir, `${name}.pem`);
  const key = path.join(dir, `${name}.key`);
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", key, "-out", cert, "-days", "1", "-subj", `/CN=${name}`,
    "-addext", `subjectAltName=${sans.map((s) => `DNS:${s}`).join(",")}`,
  ], { stdio: "ignore" });
  return { cert, key };
}

/** curl, asynchronously: the proxy runs in this process, so a synchronous spawn would starve it. */
function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile("curl", args, { timeout: 15_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as NodeJS.ErrnoException).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** The CN of the certificate the TLS listener presents for `servername`. */
function presentedCn(address: string, servername: string | undefined): Promise<string> {
  const [host, port] = address.split(":") as [string, string];
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host, port: Number(port), rejectUnauthorized: false, ...(servername ? { servername } : {}) }, () => {
      const cn = s.getPeerCertificate().subject.CN;
      s.end();
      resolve(String(Array.isArray(cn) ? cn[0] : cn));
    });
    s.on("error", reject);
  });
}

function h2Get(address: string, opts: { path?: string; servername?: string; method?: string; body?: string }): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://${address}`, { rejectUnauthorized: false, ...(opts.servername ? { servername: opts.servername } : {}) });
    session.on("error", reject);
    const req = session.request({ ":path": opts.path ?? "/", ":method": opts.method ?? "GET", ...(opts.servername ? { ":authority": opts.servername } : {}) });
    let body = "";
    let headers: http2.IncomingHttpHeaders = {};
    req.on("response", (h) => (headers = h));
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      session.close();
      resolve({ status: Number(headers[":status"]), headers, body });
    });
    req.on("error", reject);
    req.end(opts.body);
  });
}

describe("proxy TLS, HTTP/2 and redirect", () => {
  let dir: { dir: string; cleanup(): Promise<void> };
  let a: Backend;
  let p: TestProxy;
  before(async () => {
    dir = await tempDir();
    const certA = makeCert(dir.dir, "a.test", ["a.test", "*.a.test"]);
    const certB = makeCert(dir.dir, "b.test", ["b.test"]);
    a = await startBackend("a");
    p = await withProxy({ tls: { listen: "127.0.0.1:0", certificates: [certA, certB], redirectHttp: true } });
    await p.client.setTable(table(1, [target("a", a.address)]));
  });
  after(async () => {
    await p?.close();
    await a?.close();
    await dir?.cleanup();
  });

  it("chooses the certificate by SNI (exact, wildcard, default)", async () => {
    const at = p.proxy.tlsAddress!;
    assert.equal(await presentedCn(at, "b.test"), "b.test");
    assert.equal(await presentedCn(at, "x.a.test"), "a.test");
    assert.equal(await presentedCn(at, "unknown.test"), "a.test", "the first certificate is the default");
    assert.equal(await presentedCn(at, undefined), "a.test");
  });

  it("speaks HTTP/2 to curl --http2 and HTTP/1.1 to the instance", async () => {
    const port = p.proxy.tlsAddress!.split(":")[1]!;
    const r = await curl(["--http2", "-k", "-s", "-o", "-", "-w", "\\n%{http_version} %{http_code}", `https://127.0.0.1:${port}/curl`]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.split("\n"), ["a", "2 200"]);
    const viaName = await curl(["--http2", "-k", "-s", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", "--resolve", `b.test:${port}:127.0.0.1`, `https://b.test:${port}/`]);
    assert.equal(viaName.stdout, "2 200");
    const hit = a.hits.find((h) => h.url === "/curl")!;
    assert.equal(hit.headers["x-forwarded-proto"], "https");
    assert.equal(hit.headers["x-forwarded-host"], `127.0.0.1:${port}`);
    assert.equal(hit.headers["host"], `127.0.0.1:${port}`);
  });

  it("serves a Node http2 client: GET, and a POST body without content-length echoed back", async () => {
    const g = await h2Get(p.proxy.tlsAddress!, { path: "/h2", servername: "x.a.test" });
    assert.equal(g.status, 200);
    assert.equal(g.body, "a");
    assert.equal(g.headers["x-kiln-instance"], "a");
    assert.equal(g.headers["connection"], undefined);
    const post = await h2Get(p.proxy.tlsAddress!, { path: "/echo", method: "POST", body: "over h2" });
    assert.equal(post.status, 200);
    assert.equal(post.body, "over h2");
    const hit = a.hits.find((h) => h.url === "/h2")!;
    assert.equal(hit.headers["host"], "x.a.test", "the :authority becomes Host");
    assert.equal(Object.keys(hit.headers).some((k) => k.startsWith(":")), false);
  });

  it("serves HTTP/1.1 over TLS and WebSocket (wss) on the same port", async () => {
    const [host, port] = p.proxy.tlsAddress!.split(":") as [string, string];
    const r = await new Promise<{ status: number; body: string; version: string }>((resolve, reject) => {
      const req = https.request({ host, port: Number(port), path: "/h1", rejectUnauthorized: false, agent: false }, (res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body, version: res.httpVersion }));
      });
      req.on("error", reject);
      req.end();
    });
    assert.deepEqual(r, { status: 200, body: "a", version: "1.1" });
    // The helper backend is no WebSocket server: it answers the upgrade request with 200,
    // which the proxy must relay as the instance's refusal (not hang, not 501).
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`wss://${host}:${port}/ws`, { rejectUnauthorized: false });
      ws.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      ws.on("open", () => resolve(101));
      ws.on("error", () => resolve(-1));
    });
    assert.equal(status, 200);
    assert.equal(a.hits.find((h) => h.url === "/ws")?.headers["upgrade"], "websocket");
  });

  it("redirects plain HTTP to HTTPS with 308, keeping host and path", async () => {
    const port = p.proxy.tlsAddress!.split(":")[1]!;
    const r = await request(p.proxy.address, { path: "/a/b?c=1", headers: { host: "shop.test:8080" } });
    assert.equal(r.status, 308);
    assert.equal(r.headers["location"], `https://shop.test:${port}/a/b?c=1`);
    assert.equal(a.hits.some((h) => h.url === "/a/b?c=1"), false);
  });
});

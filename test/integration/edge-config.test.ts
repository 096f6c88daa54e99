// kiln.yaml's `edge.tls` and `edge.metricsListen` reach the running router through
// `kiln up`, on both routers: HTTPS with HTTP/2 (curl --http2 -k, SNI names given with
// --resolve so everything stays on 127.0.0.1), the certificate chosen by SNI, the
// plain listener redirecting to HTTPS, and a Prometheus scrape of the metrics address.
// Certificates are made here with openssl.

import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import tls from "node:tls";
import { after, describe, test } from "node:test";
import { parseDocument } from "yaml";
import { HAPROXY_BIN } from "../../src/traffic/haproxy/process.js";
import { parsePrometheus, sumOf } from "../support/prometheus.js";
import { freePort, helloWorkspace, inRotation, kiln, kilnDown, kilnStatus, requireTool } from "./support.js";

const has = (cmd: string, args: string[]) => {
  try {
    execFileSync(cmd, args, { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
};
const ready = has("bwrap", ["--version"]) && has("openssl", ["version"]) && has("curl", ["--version"]) && existsSync(HAPROXY_BIN);

function makeCert(dir: string, name: string, sans: string[]): { cert: string; key: string } {
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", join(dir, `${name}.key`), "-out", join(dir, `${name}.pem`), "-days", "1", "-subj", `/CN=${name}`,
    "-addext", `subjectAltName=${sans.map((s) => `DNS:${s}`).join(",")}`,
  ], { stdio: "ignore" });
  // Relative to kiln.yaml, as a user writes them: kiln resolves them against its directory.
  return { cert: `${name}.pem`, key: `${name}.key` };
}

function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile("curl", args, { timeout: 15_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as NodeJS.ErrnoException).code ?? 1) : 0, stdout, stderr });
    });
  });
}

function presentedCn(port: number, servername: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false, servername }, () => {
      const cn = s.getPeerCertificate().subject.CN;
      s.end();
      resolve(String(Array.isArray(cn) ? cn[0] : cn));
    });
    s.on("error", reject);
  });
}

for (const router of ["builtin", "haproxy"] as const) {
  describe(`edge settings from kiln.yaml, router ${router}`, () => {
    let ws: Awaited<ReturnType<typeof helloWorkspace>> | undefined;
    after(async () => {
      if (ws) {
        await kilnDown([], { cwd: ws.dir });
        rmSync(ws.dir, { recursive: true, force: true });
      }
    });

    test("kiln up serves HTTPS (HTTP/2, SNI), redirects plain HTTP and exposes metrics", { timeout: 300_000 }, async (t) => {
      if (!requireTool(ready, "needs bubblewrap, openssl, curl and /usr/sbin/haproxy", t)) return;
      ws = await helloWorkspace(`kiln-it-edge-${router}-`);
      const dir = ws.dir;
      const tlsPort = await freePort();
      const metricsPort = await freePort();
      const a = makeCert(dir, "a.test", ["a.test", "*.a.test"]);
      const b = makeCert(dir, "b.test", ["b.test"]);
      const doc = parseDocument(readFileSync(join(dir, "kiln.yaml"), "utf8"));
      doc.setIn(["edge", "tls"], { listen: `127.0.0.1:${tlsPort}`, certificates: [a, b], redirectHttp: true });
      doc.setIn(["edge", "metricsListen"], `127.0.0.1:${metricsPort}`);
      doc.set("instances", 2);
      writeFileSync(join(dir, "kiln.yaml"), doc.toString());

      assert.equal((await kiln(["bake"], { cwd: dir })).code, 0);
      const up = await kiln(["up", "--detach", "--router", router], { cwd: dir });
      assert.equal(up.code, 0, up.stdout + up.stderr);
      const d = await kiln(["deploy"], { cwd: dir });
      assert.equal(d.code, 0, d.stdout + d.stderr);
      assert.equal(inRotation(await kilnStatus(dir)).length, 2);

      // HTTP/2 over TLS to the fleet, the SNI name resolved to 127.0.0.1.
      for (const name of ["a.test", "www.a.test", "b.test"]) {
        const r = await curl(["--http2", "-k", "-sS", "--resolve", `${name}:${tlsPort}:127.0.0.1`, "-w", "\n%{http_version} %{http_code}", `https://${name}:${tlsPort}/`]);
        assert.equal(r.code, 0, r.stderr);
        const [body, last] = [r.stdout.slice(0, r.stdout.lastIndexOf("\n")), r.stdout.slice(r.stdout.lastIndexOf("\n") + 1)];
        assert.equal(last, "2 200", `${name}: ${r.stdout}`);
        assert.match(body, /1\.0\.0/, "the fleet answered");
      }
      assert.equal(await presentedCn(tlsPort, "b.test"), "b.test");
      assert.equal(await presentedCn(tlsPort, "x.a.test"), "a.test");
      assert.equal(await presentedCn(tlsPort, "unknown.test"), "a.test", "the first certificate is the default");

      // HTTP/1.1 over TLS too (ALPN falls back).
      const h1 = await curl(["--http1.1", "-k", "-sS", "--resolve", `a.test:${tlsPort}:127.0.0.1`, "-o", "/dev/null", "-w", "%{http_version} %{http_code}", `https://a.test:${tlsPort}/`]);
      assert.equal(h1.stdout, "1.1 200", h1.stderr);

      // The plain listener redirects to the TLS port.
      const red = await curl(["-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "--resolve", `a.test:${ws.port}:127.0.0.1`, `http://a.test:${ws.port}/x?y=1`]);
      assert.equal(red.stdout, `308 https://a.test:${tlsPort}/x?y=1`, red.stderr);

      // Metrics on the opt-in address parse as Prometheus text and count the requests above.
      const m = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      assert.equal(m.status, 200);
      const text = await m.text();
      const samples = parsePrometheus(text);
      const served = router === "builtin" ? sumOf(samples, "kiln_proxy_requests_total") : sumOf(samples, "haproxy_backend_http_responses_total", { proxy: "kiln" });
      assert.ok(served >= 4, `the router's metrics count the HTTPS requests (${served})`);
    });
  });
}

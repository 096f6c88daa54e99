// examples/hello: its HTTP API, the shared counter, graceful shutdown — run
// directly with node, then as a fleet inside the local provider's sandbox
// under load from the load generator.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startLoad } from "../../../src/loadgen/client.js";
import { LocalProvider } from "../../../src/providers/local/index.js";
import type { ObservedInstance } from "../../../src/providers/provider.js";
import { APP_GID, APP_UID, buildTestRootfs } from "../local-fixtures.js";
import { freeLoopbackPort } from "../../../src/net.js";

const HELLO_DIR = new URL("../../../../examples/hello/", import.meta.url).pathname;
const SERVER = join(HELLO_DIR, "server.js");

function call(address: string, path: string, method = "GET", body?: string): Promise<{ status: number; body: string }> {
  const [host, port] = address.split(":");
  return new Promise((resolve, reject) => {
    const r = request({ host, port: Number(port), path, method, agent: false, timeout: 3000, headers: body ? { "content-type": "text/plain" } : {} }, (res) => {
      let b = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (b += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: b }));
    });
    r.on("timeout", () => r.destroy(new Error("timeout")));
    r.on("error", reject);
    r.end(body);
  });
}

async function until<T>(what: string, fn: () => Promise<T>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${String(e)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

let base = "";
before(() => {
  base = mkdtempSync(join(tmpdir(), "kiln-hello-test-"));
});
after(() => rmSync(base, { recursive: true, force: true }));

describe("examples/hello run directly", () => {
  const procs: ChildProcess[] = [];
  after(() => procs.forEach((p) => p.kill("SIGKILL")));

  async function startHello(instance: string, dataDir: string) {
    const port = await freeLoopbackPort();
    const child = spawn(process.execPath, [SERVER], { env: { PORT: String(port), KILN_INSTANCE_ID: instance, DATA_DIR: dataDir }, stdio: ["ignore", "pipe", "pipe"] });
    procs.push(child);
    let log = "";
    child.stdout?.on("data", (d: Buffer) => (log += d));
    const address = `127.0.0.1:${port}`;
    await until("hello to listen", () => call(address, "/healthz"));
    return { child, address, log: () => log };
  }

  test("serves its API, and the counter shared through the volume only grows", async () => {
    const data = join(base, "direct-data");
    const a = await startHello("a", data);
    const b = await startHello("b", data);
    assert.deepEqual(await call(a.address, "/healthz"), { status: 200, body: "ok" });
    assert.deepEqual(JSON.parse((await call(a.address, "/version")).body), { version: "1.0.0" });
    assert.deepEqual(await call(a.address, "/echo", "POST", "hello there"), { status: 200, body: "hello there" });
    assert.equal((await call(a.address, "/nope")).status, 404);
    assert.equal((await call(a.address, "/echo")).status, 405);
    const seen: number[] = [];
    for (let i = 0; i < 10; i++) {
      const r = JSON.parse((await call(i % 2 ? b.address : a.address, "/")).body) as { version: string; instance: string; counter: number };
      assert.equal(r.version, "1.0.0");
      assert.equal(r.instance, i % 2 ? "b" : "a");
      seen.push(r.counter);
    }
    assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.deepEqual(readdirSync(join(data, "counter")).sort(), ["a.json", "b.json"]);
    // a restarted instance continues its own shard
    a.child.kill("SIGTERM");
    await new Promise((r) => a.child.on("exit", r));
    const a2 = await startHello("a", data);
    assert.equal((JSON.parse((await call(a2.address, "/")).body) as { counter: number }).counter, 11);
  });

  test("SIGTERM: stops accepting, finishes the request in flight, exits 0", async () => {
    const h = await startHello("g", join(base, "graceful-data"));
    const [host, port] = h.address.split(":");
    // a POST whose body is still arriving when SIGTERM lands
    const sock = connect(Number(port), host);
    await new Promise((r) => sock.on("connect", r));
    sock.write("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nhello");
    await new Promise((r) => setTimeout(r, 100));
    h.child.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 100));
    await assert.rejects(call(h.address, "/healthz"), "no new connections while draining");
    let reply = "";
    sock.on("data", (d: Buffer) => (reply += d));
    sock.write("world");
    const code = await new Promise((r) => h.child.on("exit", r));
    assert.equal(code, 0);
    assert.match(reply, /^HTTP\/1\.1 200 OK/);
    assert.match(reply, /connection: close/i);
    assert.ok(reply.endsWith("helloworld"), reply);
    assert.match(h.log(), /draining/);
  });

  test("config healthy:false makes /healthz fail", async () => {
    // the config is baked: a copy of the app with another config is "another image"
    const app = join(base, "unhealthy-app");
    mkdirSync(join(app, "config"), { recursive: true });
    writeFileSync(join(app, "server.js"), readFileSync(SERVER));
    const cfg = { ...(JSON.parse(readFileSync(join(HELLO_DIR, "config/app.json"), "utf8")) as object), version: "2.0.0", healthy: false, startupDelayMs: 0 };
    writeFileSync(join(app, "config/app.json"), JSON.stringify(cfg));
    const port = await freeLoopbackPort();
    const child = spawn(process.execPath, [join(app, "server.js")], { env: { PORT: String(port), DATA_DIR: join(base, "u-data") }, stdio: "ignore" });
    procs.push(child);
    const r = await until("hello to listen", () => call(`127.0.0.1:${port}`, "/healthz"));
    assert.equal(r.status, 500);
    assert.equal(JSON.parse((await call(`127.0.0.1:${port}`, "/version")).body).version, "2.0.0");
  });
});

const haveBwrap = spawnSync("bwrap", ["--version"]).status === 0;
let sandboxSkip: string | undefined;
if (!haveBwrap) {
  if (process.env.KILN_REQUIRE_ALL === "1") throw new Error("KILN_REQUIRE_ALL=1 but bubblewrap is missing");
  sandboxSkip = "needs bubblewrap (apt-get install bubblewrap)";
  console.log(`# skipping sandboxed hello test: ${sandboxSkip}`);
}

describe("examples/hello as a sandboxed fleet", { skip: sandboxSkip }, () => {
  test("three instances share the volume; under load the counter never goes backwards; all stop cleanly", async () => {
    const rootfs = join(base, "hello-rootfs");
    mkdirSync(rootfs, { mode: 0o700 });
    buildTestRootfs(rootfs, {
      "app/server.js": readFileSync(SERVER, "utf8"),
      "app/config/app.json": readFileSync(join(HELLO_DIR, "config/app.json"), "utf8"),
    });
    const provider = new LocalProvider({
      home: join(base, "hello-home"),
      sandbox: "bwrap",
      rootfs: async () => rootfs,
      imageConfig: async () => ({ env: ["NODE_ENV=production"], entrypoint: ["/usr/local/bin/node"], cmd: ["/app/server.js"], user: `${APP_UID}:${APP_GID}`, workdir: "/app" }),
    });
    const fleet: ObservedInstance[] = [];
    try {
      for (const n of [1, 2, 3])
        fleet.push(await provider.launch({ instanceId: `hello-${n}`, service: "hello", release: "r1", digest: "sha256:" + "cd".repeat(32), env: { DATA_DIR: "/data" }, volumes: [{ name: "data", path: "/data" }] }));
      for (const i of fleet) await until(`${i.id} to be healthy`, () => call(i.address, "/healthz"));

      const loads = fleet.map((i) => startLoad({ url: `http://${i.address}/`, concurrency: 4, maxRequests: 150, durationMs: 20_000 }));
      const results = await Promise.all(loads.map((l) => l.done));
      for (const r of results) {
        assert.equal(r.requests, 150);
        assert.equal(r.failed, 0, r.errors.join("\n"));
        assert.deepEqual(r.byVersion, { "1.0.0": 150 });
        assert.equal(r.counterWentBackwards, false);
      }
      const last = JSON.parse((await call(fleet[0]!.address, "/")).body) as { counter: number; instance: string };
      assert.equal(last.counter, 451, "every hit of every instance counted once");
      assert.equal(last.instance, "hello-1");
    } finally {
      for (const i of fleet) await provider.terminate(i.id, { graceMs: 5000 });
    }
    const seen = await provider.list("hello");
    assert.deepEqual(seen.map((i) => [i.state, i.exitCode]), [["exited", 0], ["exited", 0], ["exited", 0]]);
  });
});

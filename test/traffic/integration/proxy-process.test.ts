// The real proxy process (dist/src/traffic/proxy/main.js): ready line,
// persistence across kill -9, stale admin socket, EADDRINUSE, SIGTERM.

import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import net, { type AddressInfo } from "node:net";
import path from "node:path";
import { after, describe, it } from "node:test";
import { ProxyClient } from "../../../src/traffic/proxy/client.js";
import {
  PROXY_MAIN,
  firstLine,
  request,
  startBackend,
  table,
  target,
  tempDir,
  waitExit,
  waitFor,
  type Backend,
} from "../helpers.js";

interface Spawned {
  child: ChildProcess;
  ready: { ready: boolean; pid: number; listen: string; admin: string; preview?: string };
  stderr: () => string;
  /** resolves with the exit code once the process is gone and its output fully read */
  closed: Promise<number | null>;
}

function closedWithin(child: ChildProcess, ms: number): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`pid ${child.pid} still running after ${ms}ms`)), ms);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

async function spawnProxy(args: { listen: string; admin: string; state: string; log?: string; previewListen?: string }): Promise<Spawned> {
  const argv = [PROXY_MAIN, "--listen", args.listen, "--admin", args.admin, "--state", args.state, "--instance-headers"];
  if (args.log) argv.push("--log", args.log);
  if (args.previewListen) argv.push("--preview-listen", args.previewListen);
  const child = spawn(process.execPath, argv, { stdio: ["ignore", "pipe", "pipe"] });
  const closed = closedWithin(child, 30_000);
  closed.catch(() => undefined);
  let err = "";
  child.stderr!.on("data", (c: Buffer) => (err += c.toString()));
  const line = await firstLine(child, 10_000);
  return { child, ready: JSON.parse(line), stderr: () => err, closed };
}

describe("proxy process", () => {
  const children: ChildProcess[] = [];
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    for (const c of cleanups.reverse()) await c();
  });
  const backend = async (name: string): Promise<Backend> => {
    const b = await startBackend(name);
    cleanups.push(() => b.close());
    return b;
  };

  it("survives kill -9: a restart with the same state file routes at once, without a controller", async () => {
    const { dir, cleanup } = await tempDir();
    cleanups.push(cleanup);
    const a = await backend("a");
    const files = { admin: path.join(dir, "proxy.sock"), state: path.join(dir, "routes.json"), log: path.join(dir, "proxy.log") };

    const first = await spawnProxy({ listen: "127.0.0.1:0", ...files });
    children.push(first.child);
    assert.equal(first.ready.ready, true);
    assert.equal(first.ready.pid, first.child.pid);
    assert.match(first.ready.listen, /^127\.0\.0\.1:\d+$/);

    const client = new ProxyClient(files.admin);
    assert.equal(await client.ping(), true);
    await client.setTable(table(3, [target("a", a.address, { release: "r1" })], { releaseWeights: { r1: 1 }, preview: "r1" }));
    assert.equal(first.ready.preview, undefined, "no preview listener unless asked for");
    // Acknowledged means persisted.
    assert.equal(JSON.parse(readFileSync(files.state, "utf8")).version, 3);
    assert.equal((await request(first.ready.listen)).headers["x-kiln-instance"], "a");

    first.child.kill("SIGKILL");
    await waitExit(first.child, 5000);
    assert.ok(existsSync(files.admin), "kill -9 leaves the admin socket file behind");

    // Same address, same files: the stale socket is replaced and routing resumes from disk.
    const second = await spawnProxy({ listen: first.ready.listen, ...files, previewListen: "127.0.0.1:0" });
    children.push(second.child);
    assert.equal(second.ready.ready, true, second.stderr());
    assert.match(second.ready.preview ?? "", /^127\.0\.0\.1:\d+$/);
    const pr = await request(second.ready.preview!);
    assert.equal(pr.headers["x-kiln-instance"], "a", "the persisted preview release is served at once");
    const r = await request(second.ready.listen);
    assert.equal(r.status, 200);
    assert.equal(r.headers["x-kiln-instance"], "a");
    const s = await client.stats();
    assert.equal(s.tableVersion, 3);
    assert.deepEqual(s.preview, { listen: second.ready.preview, release: "r1" });
    assert.equal(s.previewCounters?.r1?.requests, 1);
    assert.equal(s.pid, second.child.pid);
    await assert.rejects(client.setTable(table(2, [])), /older than the current version 3/);
    assert.match(readFileSync(files.log, "utf8"), /loaded routing table v3/);

    // SIGTERM: an in-flight request completes, then a clean exit.
    const slow = request(second.ready.listen, { path: "/slow?ms=500" });
    await waitFor(async () => (await client.stats()).targets[0]!.inflight === 1, "in flight");
    second.child.kill("SIGTERM");
    assert.equal((await slow).status, 200);
    assert.equal(await waitExit(second.child, 10_000), 0);
    assert.equal(existsSync(files.admin), false, "a clean exit removes the admin socket");
  });

  it("refuses a taken listen address with a clear message", async () => {
    const { dir, cleanup } = await tempDir();
    cleanups.push(cleanup);
    const squatter = net.createServer();
    await new Promise<void>((r) => squatter.listen(0, "127.0.0.1", r));
    cleanups.push(() => new Promise((r) => squatter.close(() => r())));
    const taken = `127.0.0.1:${(squatter.address() as AddressInfo).port}`;

    const p = await spawnProxy({ listen: taken, admin: path.join(dir, "p.sock"), state: path.join(dir, "routes.json") });
    children.push(p.child);
    const code = await p.closed;
    assert.equal(code, 2);
    assert.equal(p.ready.ready, false);
    assert.match(p.stderr(), new RegExp(`cannot listen on ${taken}: address already in use`));
    assert.match(p.stderr(), /change `listen` in kiln\.yaml/);
    // The ready line carries the address and its kiln.yaml key, for `kiln up` to name the holder.
    assert.deepEqual((p.ready as unknown as { error: { details: unknown } }).error.details, [{ where: taken, path: "listen", message: "EADDRINUSE" }]);
  });

  it("refuses to take over an admin socket a live proxy is serving", async () => {
    const { dir, cleanup } = await tempDir();
    cleanups.push(cleanup);
    const files = { admin: path.join(dir, "proxy.sock"), state: path.join(dir, "routes.json") };
    const live = await spawnProxy({ listen: "127.0.0.1:0", ...files });
    children.push(live.child);
    const other = await spawnProxy({ listen: "127.0.0.1:0", ...files });
    children.push(other.child);
    assert.equal(await other.closed, 2);
    assert.match(other.stderr(), /already serving the admin socket/);
    assert.equal(await new ProxyClient(files.admin).ping(), true, "the live proxy is untouched");
    live.child.kill("SIGTERM");
    assert.equal(await waitExit(live.child, 10_000), 0);
  });

  it("explains bad arguments", async () => {
    const child = spawn(process.execPath, [PROXY_MAIN, "--listen", "127.0.0.1:0"], { stdio: ["ignore", "pipe", "pipe"] });
    children.push(child);
    const closed = closedWithin(child, 10_000);
    let err = "";
    child.stderr!.on("data", (c: Buffer) => (err += c.toString()));
    assert.equal(await closed, 2);
    assert.match(err, /missing --admin, --state/);
  });

  it("explains bad edge flags: a limit that is not a number, a certificate without its key, an unreadable certificate", async () => {
    const dir = await tempDir();
    cleanups.push(dir.cleanup);
    const base = [PROXY_MAIN, "--listen", "127.0.0.1:0", "--admin", path.join(dir.dir, "p.sock"), "--state", path.join(dir.dir, "r.json")];
    const cases: Array<[string[], RegExp]> = [
      [["--max-body-bytes", "lots"], /--max-body-bytes: expected a whole number >= 0, got "lots"/],
      [["--tls-listen", "127.0.0.1:0", "--tls-cert", "only.pem"], /--tls-cert: expected CERT_FILE:KEY_FILE, got "only.pem"/],
      [["--tls-listen", "127.0.0.1:0"], /--tls-listen and --tls-cert go together/],
      [["--tls-listen", "127.0.0.1:0", "--tls-cert", "/nonexistent/a.pem:/nonexistent/a.key"], /cannot read the TLS certificate file \/nonexistent\/a\.pem: ENOENT/],
    ];
    for (const [extra, want] of cases) {
      const child = spawn(process.execPath, [...base, ...extra], { stdio: ["ignore", "pipe", "pipe"] });
      children.push(child);
      const closed = closedWithin(child, 10_000);
      let out = "";
      let err = "";
      child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
      child.stderr!.on("data", (c: Buffer) => (err += c.toString()));
      assert.equal(await closed, 2, err);
      assert.match(err, want);
      assert.equal(JSON.parse(out.split("\n")[0]!).ready, false);
    }
  });
});

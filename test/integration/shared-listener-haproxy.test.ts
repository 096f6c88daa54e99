// Two services on one HAProxy listener (`router: haproxy`, kiln.yaml edge.hosts), through the
// real CLI: each has its own home, controller and fleet, and its own HAProxy backend; `kiln up`
// of the second joins the HAProxy the first started. Under load on both, a rolling replacement
// of one loses no request of either and leaves the other's instances alone; a controller killed
// with -9 leaves both serving; `kiln down` of one leaves the other serving; the last one stops HAProxy.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, test } from "node:test";
import { parseDocument } from "yaml";
import { homePaths, pidAlive, withSharedEdge } from "../../src/home.js";
import { HAPROXY_BIN } from "../../src/traffic/haproxy/process.js";
import { bakeAndDeploy, helloWorkspace, inRotation, kiln, kilnDown, kilnStatus, requireTool, until } from "./support.js";

const ready = (() => {
  try {
    execFileSync("bwrap", ["--version"], { stdio: "ignore" });
    return existsSync(HAPROXY_BIN);
  } catch {
    return false;
  }
})();

function get(port: number, host: string, agent: http.Agent | false = false): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: "/version", headers: { host }, agent, timeout: 10_000 }, (res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

/** Keep-alive load on one host (4 clients), bounded in time; every answer must be 200 and match `want`. */
function hostLoad(port: number, host: string, want: RegExp, maxMs: number) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  let stop = false;
  let requests = 0;
  const failed: string[] = [];
  const until = Date.now() + maxMs;
  const worker = async () => {
    while (!stop && Date.now() < until) {
      const r = await get(port, host, agent).catch((e: Error) => ({ status: 0, body: e.message }));
      requests++;
      if (r.status !== 200 || !want.test(r.body)) failed.push(`${r.status} ${r.body.slice(0, 80)}`);
    }
  };
  const done = Promise.all([worker(), worker(), worker(), worker()]).then(() => agent.destroy());
  return {
    get requests() {
      return requests;
    },
    failed,
    async stop() {
      stop = true;
      await done;
      return { requests, failed: failed.length };
    },
  };
}

type Ws = Awaited<ReturnType<typeof helloWorkspace>>;
const spaces: Ws[] = [];
let sharedPort: number | undefined;

after(async () => {
  for (const ws of spaces.reverse()) {
    await kilnDown([], { cwd: ws.dir });
    rmSync(ws.dir, { recursive: true, force: true });
  }
  if (sharedPort !== undefined) {
    const probe = mkdtempSync(join(tmpdir(), "kiln-edge-probe-"));
    const edge = withSharedEdge(homePaths(probe), { hosts: ["x"], listen: `127.0.0.1:${sharedPort}` });
    rmSync(dirname(edge.proxyLog), { recursive: true, force: true });
    rmSync(probe, { recursive: true, force: true });
  }
});

test("two services share one HAProxy listener by host name under load; a rollout of one does not touch the other; a controller killed with -9 leaves both serving", { timeout: 600_000 }, async (t) => {
  if (!requireTool(ready, "needs bubblewrap and HAProxy", t)) return;
  const alpha = await helloWorkspace("kiln-it-hshared-a-");
  const beta = await helloWorkspace("kiln-it-hshared-b-");
  spaces.push(alpha, beta);
  const port = alpha.port;
  sharedPort = port;
  const edit = (ws: Ws, name: string, hosts: string[]) => {
    const doc = parseDocument(readFileSync(join(ws.dir, "kiln.yaml"), "utf8"));
    doc.set("name", name);
    doc.set("listen", `127.0.0.1:${port}`);
    doc.set("router", "haproxy");
    doc.set("instances", 2);
    doc.setIn(["edge", "hosts"], hosts);
    writeFileSync(join(ws.dir, "kiln.yaml"), doc.toString());
  };
  edit(alpha, "alpha", ["alpha.test"]);
  edit(beta, "beta", ["beta.test", "*.beta.test"]);
  beta.release("7.0.0");

  const step = (what: string) => process.stderr.write(`# ${new Date().toISOString()} ${what}\n`);
  for (const ws of [alpha, beta]) {
    step(`bake, up, deploy in ${ws.dir}`);
    assert.equal((await kiln(["bake"], { cwd: ws.dir })).code, 0);
    const up = await kiln(["up", "--detach", "--json"], { cwd: ws.dir });
    assert.equal(up.code, 0, up.stdout + up.stderr);
    const d = await kiln(["deploy"], { cwd: ws.dir });
    assert.equal(d.code, 0, d.stdout + d.stderr);
  }
  const upA = JSON.parse((await kiln(["up", "--detach", "--json"], { cwd: alpha.dir })).stdout) as { proxy: { pid: number }; controller: { pid: number }; router: string };
  const upB = JSON.parse((await kiln(["up", "--detach", "--json"], { cwd: beta.dir })).stdout) as { proxy: { pid: number }; controller: { pid: number } };
  assert.equal(upA.router, "haproxy");
  assert.equal(upA.proxy.pid, upB.proxy.pid, "one HAProxy serves both");
  const hap = upA.proxy.pid;

  assert.match((await get(port, "alpha.test")).body, /1\.0\.0/);
  assert.match((await get(port, `beta.test:${port}`)).body, /7\.0\.0/);
  assert.match((await get(port, "www.beta.test")).body, /7\.0\.0/, "wildcard host");
  assert.equal((await get(port, "other.test")).status, 404, "no service for an unknown host");

  const betaBefore = inRotation(await kilnStatus(beta.dir)).map((i) => i.id).sort();
  assert.equal(betaBefore.length, 2);

  step("alpha rolls to 2.0.0 under load on both");
  const la = hostLoad(port, "alpha.test", /[12]\.0\.0/, 300_000);
  const lb = hostLoad(port, "beta.test", /7\.0\.0/, 300_000);
  const d = await bakeAndDeploy(alpha, "2.0.0", { strategy: "rolling" });
  step("alpha rolled");
  const ra = await la.stop();
  const rb = await lb.stop();
  process.stderr.write(`# rollout: alpha ${ra.requests} requests (${ra.failed} failed), beta ${rb.requests} requests (${rb.failed} failed)\n`);
  assert.equal(d.code, 0, d.stdout + d.stderr);
  assert.deepEqual(la.failed.slice(0, 5), [], `alpha failed ${ra.failed} of ${ra.requests}`);
  assert.deepEqual(lb.failed.slice(0, 5), [], `beta failed ${rb.failed} of ${rb.requests}`);
  assert.ok(ra.requests > 100 && rb.requests > 100, `both loads ran (${ra.requests}, ${rb.requests})`);
  assert.equal((await kilnStatus(alpha.dir)).release?.version, "2.0.0");
  assert.match((await get(port, "alpha.test")).body, /2\.0\.0/);
  assert.deepEqual(inRotation(await kilnStatus(beta.dir)).map((i) => i.id).sort(), betaBefore, "beta's instances untouched");

  step("alpha's controller killed with -9");
  const lb2 = hostLoad(port, "beta.test", /7\.0\.0/, 60_000);
  const la2 = hostLoad(port, "alpha.test", /2\.0\.0/, 60_000);
  process.kill(upA.controller.pid, "SIGKILL");
  for (let i = 0; i < 50 && pidAlive(upA.controller.pid); i++) await new Promise((r) => setTimeout(r, 100));
  assert.ok(!pidAlive(upA.controller.pid));
  await new Promise((r) => setTimeout(r, 2000));
  const ra2 = await la2.stop();
  const rb2 = await lb2.stop();
  process.stderr.write(`# controller killed: alpha ${ra2.requests} requests (${ra2.failed} failed), beta ${rb2.requests} requests (${rb2.failed} failed)\n`);
  assert.ok(pidAlive(hap), "HAProxy outlives alpha's controller");
  assert.equal(ra2.failed + rb2.failed, 0, `failed while alpha's controller was down: ${[...la2.failed, ...lb2.failed].slice(0, 5).join(" | ")}`);
  assert.ok(ra2.requests > 10 && rb2.requests > 10);
  const again = await kiln(["up", "--detach", "--json"], { cwd: alpha.dir });
  assert.equal(again.code, 0, again.stdout + again.stderr);
  assert.equal((JSON.parse(again.stdout) as { proxy: { pid: number } }).proxy.pid, hap, "the new controller attaches to the same HAProxy");
  // bounded: the new controller's first stats read may come before its first tick on a loaded machine
  await until(async () => inRotation(await kilnStatus(alpha.dir)).length === 2, 30_000, "alpha's new controller to read its backend back (2 in rotation)");
  assert.match((await get(port, "alpha.test")).body, /2\.0\.0/);

  step("alpha leaves");
  assert.equal((await kiln(["down"], { cwd: alpha.dir })).code, 0);
  assert.ok(pidAlive(hap), "HAProxy stays for beta");
  assert.match((await get(port, "beta.test")).body, /7\.0\.0/);
  assert.equal((await get(port, "alpha.test")).status, 404);
  assert.equal((await kiln(["down"], { cwd: beta.dir })).code, 0);
  for (let i = 0; i < 100 && pidAlive(hap); i++) await new Promise((r) => setTimeout(r, 100));
  assert.ok(!pidAlive(hap), "the last service's kiln down stops HAProxy");
});

// Two services on one listener, routed by host name (kiln.yaml edge.hosts), through the
// real CLI: each has its own home, controller and fleet; `kiln up` of the second finds the
// proxy the first started. A rolling replacement of one leaves the other's instances and
// answers untouched; `kiln down` of one leaves the other serving, the last one stops the proxy.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import http from "node:http";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, test } from "node:test";
import { parseDocument } from "yaml";
import { homePaths, pidAlive, withSharedEdge } from "../../src/home.js";
import { bakeAndDeploy, helloWorkspace, inRotation, kiln, kilnDown, kilnStatus, requireTool } from "./support.js";

const ready = (() => {
  try {
    execFileSync("bwrap", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

function get(port: number, host: string, path = "/version"): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path, headers: { host }, agent: false, timeout: 10_000 }, (res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

type Ws = Awaited<ReturnType<typeof helloWorkspace>>;
const spaces: Ws[] = [];
let sharedPort: number | undefined;

after(async () => {
  for (const ws of spaces.reverse()) {
    await kilnDown([], { cwd: ws.dir });
    rmSync(ws.dir, { recursive: true, force: true });
  }
  // The shared proxy's directory (its log stays after kiln down, as a home's logs do).
  if (sharedPort !== undefined) {
    const probe = mkdtempSync(join(tmpdir(), "kiln-edge-probe-"));
    const edge = withSharedEdge(homePaths(probe), { hosts: ["x"], listen: `127.0.0.1:${sharedPort}` });
    rmSync(dirname(edge.proxyLog), { recursive: true, force: true });
    rmSync(probe, { recursive: true, force: true });
  }
});

test("two services share one listener by host name; a rollout of one does not touch the other", { timeout: 600_000 }, async (t) => {
  if (!requireTool(ready, "needs bubblewrap", t)) return;
  const alpha = await helloWorkspace("kiln-it-shared-a-");
  const beta = await helloWorkspace("kiln-it-shared-b-");
  spaces.push(alpha, beta);
  const port = alpha.port;
  sharedPort = port;
  const edit = (ws: Ws, name: string, hosts: string[]) => {
    const doc = parseDocument(readFileSync(join(ws.dir, "kiln.yaml"), "utf8"));
    doc.set("name", name);
    doc.set("listen", `127.0.0.1:${port}`);
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
  const pidA = JSON.parse((await kiln(["up", "--detach", "--json"], { cwd: alpha.dir })).stdout).proxy.pid as number;
  const pidB = JSON.parse((await kiln(["up", "--detach", "--json"], { cwd: beta.dir })).stdout).proxy.pid as number;
  assert.equal(pidA, pidB, "one proxy serves both");

  assert.match((await get(port, "alpha.test")).body, /1\.0\.0/);
  assert.match((await get(port, `beta.test:${port}`)).body, /7\.0\.0/);
  assert.match((await get(port, "www.beta.test")).body, /7\.0\.0/, "wildcard host");
  assert.equal((await get(port, "other.test")).status, 404, "no service for an unknown host");

  const betaBefore = inRotation(await kilnStatus(beta.dir)).map((i) => i.id).sort();
  assert.equal(betaBefore.length, 2);

  // Beta's clients keep asking while alpha rolls to 2.0.0: every answer is beta's, 200, 7.0.0.
  let stop = false;
  let betaAnswers = 0;
  const betaBad: string[] = [];
  const betaLoop = (async () => {
    const until = Date.now() + 240_000;
    while (!stop && Date.now() < until) {
      const r = await get(port, "beta.test").catch((e: Error) => ({ status: 0, body: e.message }));
      if (r.status !== 200 || !/7\.0\.0/.test(r.body)) betaBad.push(`${r.status} ${r.body.slice(0, 80)}`);
      betaAnswers++;
      await new Promise((res) => setTimeout(res, 20));
    }
  })();
  step("alpha rolls to 2.0.0 while beta is asked");
  const d = await bakeAndDeploy(alpha, "2.0.0", { strategy: "rolling" });
  step("alpha rolled");
  stop = true;
  await betaLoop;
  assert.equal(d.code, 0, d.stdout + d.stderr);
  assert.equal((await kilnStatus(alpha.dir)).release?.version, "2.0.0");
  assert.match((await get(port, "alpha.test")).body, /2\.0\.0/);
  assert.ok(betaAnswers > 20, `beta was asked throughout (${betaAnswers})`);
  assert.deepEqual(betaBad, [], "beta answered every request itself");
  assert.deepEqual(inRotation(await kilnStatus(beta.dir)).map((i) => i.id).sort(), betaBefore, "beta's instances untouched");
  assert.equal((await kilnStatus(beta.dir)).release?.version, "7.0.0");

  step("alpha leaves");
  // Alpha leaves: beta keeps the proxy; the last one out stops it.
  assert.equal((await kiln(["down"], { cwd: alpha.dir })).code, 0);
  assert.ok(pidAlive(pidA), "the shared proxy stays for beta");
  assert.match((await get(port, "beta.test")).body, /7\.0\.0/);
  assert.equal((await get(port, "alpha.test")).status, 404);
  assert.equal((await kiln(["down"], { cwd: beta.dir })).code, 0);
  for (let i = 0; i < 50 && pidAlive(pidA); i++) await new Promise((r) => setTimeout(r, 100));
  assert.ok(!pidAlive(pidA), "the last service's kiln down stops the proxy");
});

// The walking product on the Docker provider, end to end through the real CLI, the real
// controller and proxy processes (`kiln up --provider docker`) and real containers on
// $DOCKER_HOST, under continuous HTTP load from a separate process: rolling, blue-green and
// an instant rollback with zero failed requests, retired releases' containers removed, and
// `kiln down` leaving no kiln container behind.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test, type TestContext } from "node:test";
import { parseDocument } from "yaml";
import type { LoadHandle } from "../../src/loadgen/client.js";
import { connectDocker, type Docker } from "../../src/providers/docker/engine.js";
import { LABEL } from "../../src/derive/index.js";
import { dockerSocket } from "../support/services.js";
import { bakeAndDeploy, helloWorkspace, inRotation, kiln, kilnDown, kilnStatus, startFleetLoad, until } from "./support.js";

let ws: Awaited<ReturnType<typeof helloWorkspace>>;
let docker: Docker | undefined;
let load: LoadHandle | undefined;
// Its own service name: other runs may share the engine, and volumes are named after it.
const service = `hellod${randomBytes(3).toString("hex")}`;

const status = () => kilnStatus(ws.dir);
const serving = inRotation;
/** Requests and failures since the previous call. */
let window: () => Promise<{ requests: number; failed: number }>;

/** Every container of the service the engine has, running or not: instance id → release. */
async function containers(): Promise<Map<string, { release: string; state: string; pid?: number }>> {
  const list = await docker!.listContainers({ all: true, filters: { label: [`${LABEL.service}=${service}`] } });
  const out = new Map<string, { release: string; state: string; pid?: number }>();
  for (const c of list) out.set(c.Labels[LABEL.instance] ?? c.Names[0] ?? c.Id, { release: c.Labels[LABEL.release] ?? "?", state: c.State });
  return out;
}

/** Waits until the engine holds exactly the serving instances, all running and of the live release. */
async function onlyLive(what: string): Promise<void> {
  let last = "";
  await until(
    async () => {
      const s = await status();
      const live = s.release?.id;
      const all = await containers();
      last = JSON.stringify({ live, serving: serving(s).map((i) => i.id), containers: [...all] });
      const want = new Set(serving(s).map((i) => i.id));
      return want.size === 3 && all.size === 3 && [...all].every(([id, c]) => want.has(id) && c.release === live && c.state === "running");
    },
    60_000,
    `${what}: only the live release's 3 containers (last seen ${last})`,
  );
}

function needsDocker(t: TestContext): boolean {
  if (docker) return true;
  const socket = dockerSocket(t);
  if (!socket) return false;
  docker = connectDocker(socket);
  return true;
}

before(async () => {
  ws = await helloWorkspace("kiln-docker-it-");
  const f = join(ws.dir, "kiln.yaml");
  const doc = parseDocument(readFileSync(f, "utf8"));
  doc.set("name", service);
  writeFileSync(f, doc.toString());
});

after(async () => {
  if (load) await load.stop();
  if (ws) {
    await kilnDown([], { cwd: ws.dir });
    rmSync(ws.dir, { recursive: true, force: true });
  }
  if (docker) {
    for (const c of await docker.listContainers({ all: true, filters: { label: [`${LABEL.service}=${service}`] } })) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
    const { Volumes } = await docker.listVolumes({ filters: { label: [`${LABEL.service}=${service}`] } });
    for (const v of Volumes ?? []) await docker.getVolume(v.Name).remove().catch(() => undefined);
  }
});

test("kiln up --provider docker, bake and first deploy: 3 containers of v1 serve through the proxy", async (t) => {
  if (!needsDocker(t)) return;
  const b = await kiln(["bake", "--json"], { cwd: ws.dir });
  assert.equal(b.code, 0, b.stderr);
  const up = await kiln(["up", "--detach", "--provider", "docker", "--json"], { cwd: ws.dir });
  assert.equal(up.code, 0, up.stderr);
  assert.equal(JSON.parse(up.stdout).provider, "docker");
  const d = await kiln(["deploy"], { cwd: ws.dir });
  assert.equal(d.code, 0, d.stdout + d.stderr);
  const s = await status();
  assert.equal(serving(s).length, 3);
  const all = await containers();
  assert.deepEqual(new Set(all.keys()), new Set(serving(s).map((i) => i.id)), "each instance is a container");
  assert.ok([...all.values()].every((c) => c.release === s.release?.id && c.state === "running"));
  ({ load, window } = await startFleetLoad(ws.port, 15_000));
});

test("rolling v1 → v2 under load: 0 failed requests; only v2's containers remain; kiln logs reads the engine's logs and the kept logs of removed containers", async (t) => {
  if (!load) return t.skip("no fleet");
  const d = await bakeAndDeploy(ws, "2.0.0", { strategy: "rolling" });
  assert.equal(d.code, 0, d.stdout + d.stderr);
  const s = await status();
  assert.equal(s.release?.version, "2.0.0");
  assert.ok(serving(s).length === 3 && serving(s).every((i) => i.version === "2.0.0"), JSON.stringify(s.instances));
  await onlyLive("after the rolling deploy");
  const w = await window();
  assert.ok(w.requests > 100, `load kept flowing (${w.requests})`);
  assert.equal(w.failed, 0);
  const logs = await kiln(["logs", serving(s)[0]!.id, "-n", "20"], { cwd: ws.dir });
  assert.equal(logs.code, 0, logs.stderr);
  assert.match(logs.stdout, /hello 2\.0\.0 listening on 0\.0\.0\.0:8080/);
  // The replaced v1 containers are gone from the engine; their kept logs are still listed and read.
  const every = await kiln(["logs", "-n", "5"], { cwd: ws.dir });
  assert.equal(every.code, 0, every.stderr);
  assert.match(every.stdout, /hello 1\.0\.0 listening on 0\.0\.0\.0:8080/, "a removed v1 container's log");
  assert.match(every.stdout, /hello 2\.0\.0 listening on 0\.0\.0\.0:8080/);
});

test("blue-green v3 under load, then kiln rollback onto the warm v2 containers: 0 failed requests; v3's containers are removed", async (t) => {
  if (!load) return t.skip("no fleet");
  const d = await bakeAndDeploy(ws, "3.0.0", { strategy: "blue-green" });
  assert.equal(d.code, 0, d.stdout + d.stderr);
  let s = await status();
  assert.ok(serving(s).length === 3 && serving(s).every((i) => i.version === "3.0.0"), JSON.stringify(s.instances));
  const warm = s.instances.filter((i) => i.routing === "standby");
  assert.equal(warm.length, 3);
  assert.ok(warm.every((i) => i.version === "2.0.0"));
  const all = await containers();
  assert.equal(all.size, 6, "green serves, blue stays warm");
  assert.equal((await window()).failed, 0);

  const rb = await kiln(["rollback"], { cwd: ws.dir });
  assert.equal(rb.code, 0, rb.stdout + rb.stderr);
  s = await status();
  assert.equal(s.release?.version, "2.0.0");
  assert.deepEqual(new Set(serving(s).map((i) => `${i.id}/${i.pid}`)), new Set(warm.map((i) => `${i.id}/${i.pid}`)), "the same warm containers serve");
  await onlyLive("after the rollback");
  assert.equal((await window()).failed, 0);
});

test("kiln down stops the fleet and leaves no kiln container; the counter never went backwards", async (t) => {
  if (!load) return t.skip("no fleet");
  const totals = await load.stop();
  load = undefined;
  assert.equal(totals.failed, 0, JSON.stringify(totals.errors ?? []));
  assert.equal(totals.counterWentBackwards, false);
  assert.ok(totals.requests > 500, `requests: ${totals.requests}`);
  t.diagnostic(`load: ${totals.requests} requests, ${totals.failed} failed, counter max ${totals.maxCounter}`);
  const d = await kiln(["down"], { cwd: ws.dir });
  assert.equal(d.code, 0, d.stderr);
  assert.deepEqual([...(await containers()).keys()], []);
});

// `docker.network: host` on the real Docker Engine ($DOCKER_HOST): an instance in the host's
// network reaches an accessory listening on the host's 127.0.0.1 with no relay (one on a
// bridge cannot: its 127.0.0.1 is its own), two instances get distinct ports kiln chose, a new
// provider object (a restarted controller) adopts them at the same addresses, and terminate
// removes them.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { bake, openStore } from "../../../src/image/index.js";
import { freeLoopbackPort } from "../../../src/net.js";
import { connectDocker } from "../../../src/providers/docker/engine.js";
import { DockerProvider } from "../../../src/providers/docker/index.js";
import type { LaunchRequest } from "../../../src/providers/provider.js";
import { dockerSocket } from "../../support/services.js";

// GET /relay → the body of GET http://$ACCESSORY/ as this instance sees it, or the error code.
const APP = `
import http from "node:http";
http.createServer((req, res) => {
  if (req.url !== "/relay") { res.end("up"); return; }
  http.get("http://" + process.env.ACCESSORY + "/", (r) => { let b = ""; r.on("data", (d) => (b += d)); r.on("end", () => res.end("accessory said: " + b)); })
    .on("error", (e) => res.end("error: " + e.code));
}).listen(Number(process.env.PORT), process.env.HOST);
`;

async function get(address: string, path: string): Promise<string | undefined> {
  const res = await fetch(`http://${address}${path}`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
  return res?.ok ? res.text() : undefined;
}

async function answers(address: string, path: string, timeoutMs = 20_000): Promise<string> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const body = await get(address, path);
    if (body !== undefined) return body;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing answered on ${address}${path} within ${timeoutMs} ms`);
}

test("docker.network host: the instance reaches the host's loopback, on a port kiln chose, adopted after a restart", async (t: TestContext) => {
  const socket = dockerSocket(t);
  if (!socket) return;
  const docker = connectDocker(socket);
  const dir = mkdtempSync(join(tmpdir(), "kiln-docker-hostnet-"));
  writeFileSync(join(dir, "app.mjs"), APP);
  const store = openStore(join(dir, ".kiln"));
  const service = `hostnet${randomBytes(3).toString("hex")}`;
  const provider = new DockerProvider({ docker, store });
  const ids: string[] = [];
  t.after(async () => {
    for (const id of ids) await provider.terminate(id, { graceMs: 0 }).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  const t0 = performance.now();
  const lap = (what: string) => t.diagnostic(`${what}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const { digest } = await bake(
    { name: service, version: "1.0.0", contextDir: dir, base: "node", dependencies: [], files: [{ src: "app.mjs", dest: "/app/" }], config: [], workdir: "/app", env: {}, entrypoint: ["/usr/local/bin/node"], cmd: ["/app/app.mjs"], user: "1000:1000", port: 8080, labels: {} },
    { store, sourceDateEpoch: 0 },
  );
  lap("baked");
  // The accessory: on the host's loopback only, as a database or a cache would be.
  const accessoryPort = await freeLoopbackPort();
  const accessory = createServer((_req, res) => res.end("hello from the host")).listen(accessoryPort, "127.0.0.1");
  t.after(() => accessory.close());

  const req = (n: number, network?: "host"): LaunchRequest => {
    const instanceId = `${service}-r1-${n}${randomBytes(2).toString("hex")}`;
    ids.push(instanceId);
    return { instanceId, service, release: "r1", digest, env: { ACCESSORY: `127.0.0.1:${accessoryPort}` }, volumes: [], ...(network ? { network } : {}) };
  };
  const a = await provider.launch(req(1, "host"));
  const b = await provider.launch(req(2, "host"));
  const bridged = await provider.launch(req(3));
  lap("launched");

  for (const i of [a, b]) {
    assert.match(i.address, /^127\.0\.0\.1:\d+$/);
    assert.equal(i.state, "running");
  }
  assert.notEqual(a.address, b.address, "each instance its own port");
  assert.equal(await answers(a.address, "/relay"), "accessory said: hello from the host");
  assert.equal(await answers(b.address, "/relay"), "accessory said: hello from the host");
  // The same image on a bridge: the host's loopback is out of reach (that is what a relay was for).
  assert.equal(await answers(bridged.address, "/relay"), "error: ECONNREFUSED");

  // The container really is in the host's network, and its port is the one in PORT.
  const info = await docker.getContainer(`kiln-${a.id}`).inspect();
  assert.equal(info.HostConfig.NetworkMode, "host");
  assert.ok(info.Config.Env.includes(`PORT=${a.address.split(":")[1]}`));
  assert.ok(info.Config.Env.includes("HOST=127.0.0.1"));

  lap("relayed");
  // A restarted controller (a new provider object) finds them at the same addresses.
  const again = new DockerProvider({ docker, store });
  const seen = new Map((await again.list(service)).map((i) => [i.id, i.address]));
  assert.equal(seen.get(a.id), a.address);
  assert.equal(seen.get(b.id), b.address);
  // …and, asked for a third host-network instance, does not hand out a port they hold.
  const c = await again.launch(req(4, "host"));
  assert.ok(![a.address, b.address].includes(c.address));
  assert.equal(await answers(c.address, "/"), "up");

  lap("adopted");
  for (const i of [a, b, c, bridged]) await again.terminate(i.id, { graceMs: 2000 });
  lap("terminated");
  assert.deepEqual(await again.list(service), []);
});

// kiln.yaml `resources` on the Docker provider (issue 12), against the real engine: the container
// is created with the memory, pids and CPU limits, as the engine itself reports them, and runs.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { LABEL } from "../../../src/derive/index.js";
import { bake, openStore } from "../../../src/image/index.js";
import { DockerProvider, containerName } from "../../../src/providers/docker/index.js";
import { connectDocker, engineImageId, type Docker } from "../../../src/providers/docker/engine.js";
import { dockerSocket } from "../../support/services.js";
import { FIXTURE_APP } from "../fixture-app.js";

const service = `limits${randomBytes(3).toString("hex")}`;
let dir: string | undefined;
let cleanup: (() => Promise<void>) | undefined;
after(async () => {
  await cleanup?.();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("Docker: resources become the container's Memory, MemorySwap, PidsLimit and NanoCpus", { timeout: 240_000 }, async (t) => {
  const socket = dockerSocket(t);
  if (!socket) return;
  const docker: Docker = connectDocker(socket);
  dir = mkdtempSync(join(tmpdir(), "kiln-docker-limits-"));
  writeFileSync(join(dir, "fixture.mjs"), FIXTURE_APP);
  const store = openStore(join(dir, ".kiln"));
  const { digest } = await bake(
    { name: "kiln-limits", version: "1.0.0", contextDir: dir, base: "node", dependencies: [], files: [{ src: "fixture.mjs", dest: "/app/" }], config: [], workdir: "/app", env: {}, entrypoint: ["/usr/local/bin/node"], cmd: ["/app/fixture.mjs"], user: "1000:1000", port: 8080, labels: {} },
    { store, sourceDateEpoch: 0 },
  );
  cleanup = async () => {
    for (const c of await docker.listContainers({ all: true, filters: { label: [`${LABEL.service}=${service}`] } })) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
    await docker.getImage(await engineImageId(store, digest)).remove().catch(() => undefined);
  };
  const p = new DockerProvider({ docker, store });
  const instanceId = `${service}-1`;
  const inst = await p.launch({ instanceId, service, release: "r1", digest, env: { FIXTURE: "serve" }, volumes: [], resources: { memoryBytes: 96 * 1024 * 1024, pids: 64, cpu: 0.5 } });
  assert.equal(inst.state, "running");
  const info = await docker.getContainer(containerName(instanceId)).inspect();
  assert.equal(info.HostConfig.Memory, 96 * 1024 * 1024);
  assert.equal(info.HostConfig.MemorySwap, 96 * 1024 * 1024);
  assert.equal(info.HostConfig.PidsLimit, 64);
  assert.equal(info.HostConfig.NanoCpus, 500_000_000);
  assert.equal(p.limitsEnforcement(), "engine");
  await p.terminate(instanceId, { graceMs: 1000 });
});

// The shared provider conformance suite on the Docker provider, against the real Docker
// Engine ($DOCKER_HOST), then what only Docker has to prove: the container's hardening as
// the engine reports it, refusals, engine errors as kiln errors, and logs.
//
// The fixture image is baked once per file with the real bake() into a temporary store
// (the first, cold bake of the node base takes ~10-20 s) and loaded untagged.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { after, describe, test, type TestContext } from "node:test";
import { isKilnError } from "../../../src/errors.js";
import { bake, openStore, type Store } from "../../../src/image/index.js";
import { connectDocker, engineImageId, type Docker } from "../../../src/providers/docker/engine.js";
import { engineVolumeName as volumeName, LABEL } from "../../../src/derive/index.js";
import { DockerProvider, containerName } from "../../../src/providers/docker/index.js";
import type { LaunchRequest } from "../../../src/providers/provider.js";
import { dockerSocket } from "../../support/services.js";
import { get, providerConformance } from "../conformance.js";
import { FIXTURE_APP, type FixtureName, type FixtureReport } from "../fixture-app.js";

const APP_UID = 1000;
const run = randomBytes(3).toString("hex"); // services of this run only: other runs may share the engine
let dir: string | undefined;
let images: Promise<{ store: Store; digest: string; rootDigest: string; namedDigest: string }> | undefined;
const services = new Set<string>();

/** Bakes the fixture image (and two variants for the refusal cases) once per file. */
function fixtureImages() {
  images ??= (async () => {
    dir = mkdtempSync(join(tmpdir(), "kiln-docker-conformance-"));
    writeFileSync(join(dir, "fixture.mjs"), FIXTURE_APP);
    const store = openStore(join(dir, ".kiln"));
    const recipe = (version: string, user: string) => ({
      name: "kiln-conformance",
      version,
      contextDir: dir!,
      base: "node",
      dependencies: [],
      files: [{ src: "fixture.mjs", dest: "/app/" }],
      config: [],
      workdir: "/app",
      env: {},
      entrypoint: ["/usr/local/bin/node"],
      cmd: ["/app/fixture.mjs"],
      user,
      port: 8080,
      labels: {},
    });
    const digest = (await bake(recipe("1.0.0", `${APP_UID}:${APP_UID}`), { store, sourceDateEpoch: 0 })).digest;
    const rootDigest = (await bake(recipe("1.0.0-root", "0:0"), { store, sourceDateEpoch: 0 })).digest;
    const namedDigest = (await bake(recipe("1.0.0-named", "kiln"), { store, sourceDateEpoch: 0 })).digest;
    return { store, digest, rootDigest, namedDigest };
  })();
  return images;
}

async function engine(t: TestContext): Promise<{ docker: Docker; store: Store; digest: string; rootDigest: string; namedDigest: string } | undefined> {
  const socket = dockerSocket(t);
  if (!socket) return undefined;
  return { docker: connectDocker(socket), ...(await fixtureImages()) };
}

async function removeService(docker: Docker, service: string): Promise<void> {
  for (const c of await docker.listContainers({ all: true, filters: { label: [`${LABEL.service}=${service}`] } })) {
    await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
  }
  const { Volumes } = await docker.listVolumes({ filters: { label: [`${LABEL.service}=${service}`] } });
  for (const v of Volumes ?? []) await docker.getVolume(v.Name).remove().catch(() => undefined);
}

after(async () => {
  if (images) {
    const { store, digest, rootDigest, namedDigest } = await images;
    const docker = connectDocker();
    for (const s of services) await removeService(docker, s).catch(() => undefined);
    for (const d of [digest, rootDigest, namedDigest]) await docker.getImage(await engineImageId(store, d)).remove().catch(() => undefined);
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

let worlds = 0;
function requestFor(service: string, digest: string) {
  let n = 0;
  return (fixture: FixtureName, over: Partial<LaunchRequest> = {}): LaunchRequest => ({
    instanceId: `${service}-${++n}`,
    service,
    release: `r-${fixture}`,
    digest,
    volumes: [],
    ...over,
    env: { FIXTURE: fixture, DATA_DIR: "/data", ...over.env },
  });
}

providerConformance("docker", async (t) => {
  const e = await engine(t);
  if (!e) return undefined;
  const service = `conf${run}w${++worlds}`;
  services.add(service);
  const make = () => new DockerProvider({ docker: e.docker, store: e.store });
  return {
    provider: make(),
    reopen: make,
    service,
    request: requestFor(service, e.digest),
    lacks: {},
    appUid: APP_UID,
    pass: (ms: number) => new Promise<void>((r) => setTimeout(r, ms)),
    cleanup: () => removeService(e.docker, service),
  };
});

describe("Docker provider: what the engine is asked for", () => {
  const isProviderError = (re: RegExp) => (err: unknown) => isKilnError(err) && err.code === "KILN_E_PROVIDER" && re.test(err.message) && !!err.hint;

  test("the container is hardened (engine image ID, read-only root, no capabilities, no-new-privileges, 127.0.0.1 only, labels, only the declared volume); its logs are readable", async (t) => {
    const e = await engine(t);
    if (!e) return;
    const service = `conf${run}hard`;
    services.add(service);
    const p = new DockerProvider({ docker: e.docker, store: e.store });
    const req = requestFor(service, e.digest)("serve", { volumes: [{ name: "data", path: "/data" }] });
    try {
      const inst = await p.launch(req);
      const info = await e.docker.getContainer(containerName(req.instanceId)).inspect();
      assert.equal(info.Image, await engineImageId(e.store, e.digest), "run by the engine image ID");
      assert.equal(info.Config.Image, await engineImageId(e.store, e.digest), "not by a tag that could move");
      assert.equal(info.Config.User, `${APP_UID}:${APP_UID}`);
      assert.equal(info.HostConfig.ReadonlyRootfs, true);
      assert.deepEqual(info.HostConfig.CapDrop, ["ALL"]);
      assert.deepEqual(info.HostConfig.CapAdd ?? [], []);
      assert.deepEqual(info.HostConfig.SecurityOpt, ["no-new-privileges"]);
      assert.equal(info.HostConfig.Privileged, false);
      assert.equal(info.HostConfig.RestartPolicy?.Name, "no");
      assert.deepEqual(Object.keys(info.HostConfig.Tmpfs ?? {}), ["/tmp"]);
      const bindings = Object.values(info.NetworkSettings.Ports ?? {}).flat();
      assert.deepEqual(bindings.map((b) => b?.HostIp), ["127.0.0.1"], "published on 127.0.0.1 only");
      assert.equal(inst.address, `127.0.0.1:${bindings[0]?.HostPort}`);
      assert.deepEqual(
        info.Mounts.map((m) => ({ type: m.Type, name: m.Name, to: m.Destination, rw: m.RW })),
        [{ type: "volume", name: volumeName(service, "data"), to: "/data", rw: true }],
      );
      assert.deepEqual(
        // the provider's own labels; the image's (dev.kiln.runtime.*) come with it from the image config
        Object.fromEntries(Object.entries(info.Config.Labels).filter(([k]) => k.startsWith("dev.kiln.") && !k.startsWith("dev.kiln.runtime."))),
        { [LABEL.service]: service, [LABEL.release]: req.release, [LABEL.digest]: req.digest, [LABEL.instance]: req.instanceId },
      );
      const r = await waitServing(inst.address);
      assert.equal(r.capEff, "0000000000000000", "no effective capabilities");
      assert.equal(r.noNewPrivs, "1");
      assert.equal(r.env.PORT, "8080", "the image's port, inside the container");
      assert.match((await p.readLogs(req.instanceId, { lines: 10 })) ?? "", /serve listening on 8080/);
      assert.equal(await p.readLogs(`${service}-nope`, { lines: 10 }), undefined);
    } finally {
      await p.terminate(req.instanceId, { graceMs: 0 });
    }
  });

  test("a removed container's log is kept under logDir: kiln logs still reads it, and lists it", async (t) => {
    const e = await engine(t);
    if (!e) return;
    const service = `conf${run}logs`;
    services.add(service);
    const logDir = mkdtempSync(join(tmpdir(), "kiln-docker-logs-"));
    t.after(() => rmSync(logDir, { recursive: true, force: true }));
    const p = new DockerProvider({ docker: e.docker, store: e.store, logDir });
    const req = requestFor(service, e.digest)("serve", {});
    const inst = await p.launch(req);
    await waitServing(inst.address);
    assert.deepEqual(p.keptLogs(service), [], "nothing kept while the container exists");
    await p.terminate(req.instanceId, { graceMs: 2000 });
    await assert.rejects(e.docker.getContainer(containerName(req.instanceId)).inspect(), "the container is gone");
    assert.deepEqual(p.keptLogs(service), [req.instanceId]);
    assert.match((await p.readLogs(req.instanceId, { lines: 10 })) ?? "", /serve listening on 8080/, "its output, read after removal");
    assert.equal(await p.readLogs(`${service}-nope`, { lines: 10 }), undefined);
  });

  test("an image user given by name is resolved from the image's /etc/passwd", async (t) => {
    const e = await engine(t);
    if (!e) return;
    const service = `conf${run}named`;
    services.add(service);
    const p = new DockerProvider({ docker: e.docker, store: e.store });
    const req = requestFor(service, e.namedDigest)("serve", { volumes: [{ name: "data", path: "/data" }] });
    try {
      const inst = await p.launch(req);
      const r = await waitServing(inst.address);
      assert.equal(r.uid, 1000, "the node base's kiln user");
      assert.equal(r.writeData, "ok", "the volume was handed to that user");
    } finally {
      await p.terminate(req.instanceId, { graceMs: 0 });
    }
  });

  test("an image that runs as root is refused before anything is created", async (t) => {
    const e = await engine(t);
    if (!e) return;
    const service = `conf${run}root`;
    services.add(service);
    const p = new DockerProvider({ docker: e.docker, store: e.store });
    const req = requestFor(service, e.rootDigest)("serve");
    await assert.rejects(p.launch(req), isProviderError(/root/));
    assert.deepEqual(await e.docker.listContainers({ all: true, filters: { label: [`${LABEL.service}=${service}`] } }), []);
  });

  test("engine errors become kiln errors with a hint: engine unreachable, image not in the store, unsafe names", async (t) => {
    const e = await engine(t);
    if (!e) return;
    const service = `conf${run}err`;
    const unreachable = new DockerProvider({ docker: connectDocker(join(tmpdir(), `no-docker-${run}.sock`)), store: e.store });
    await assert.rejects(unreachable.launch(requestFor(service, e.digest)("serve")), isProviderError(/Docker Engine is unreachable/));
    await assert.rejects(unreachable.list(service), isProviderError(/unreachable/));
    const p = new DockerProvider({ docker: e.docker, store: e.store });
    await assert.rejects(p.launch(requestFor(service, `sha256:${"0".repeat(64)}`)("serve")), (err) => isKilnError(err) && !!err.hint);
    await assert.rejects(p.launch(requestFor(service, e.digest)("serve", { instanceId: "../escape" })), isProviderError(/not a safe name/));
    await p.terminate("../escape", { graceMs: 0 });
  });
});

async function waitServing(address: string): Promise<FixtureReport> {
  let last: unknown;
  for (let i = 0; i < 200; i++) {
    try {
      const r = await get(address);
      if (r.status === 200) return JSON.parse(r.body) as FixtureReport;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${address} never served: ${String(last)}`);
}

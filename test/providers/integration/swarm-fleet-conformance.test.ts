// The shared provider conformance suite on the Swarm fleet provider, against the real
// three-node swarm of scripts/swarm-cluster.sh, then what only Swarm has to prove: one
// service per instance with kiln's labels, run by registry digest, spread over the nodes,
// placement constraints, logs, and refusals. Skips unless the rig's env is set.
//
// The fixture image is baked once per file with the real bake() into a temporary store and
// pushed by the provider to the rig's registry (every node pulls it from there by digest).

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { after, describe, test, type TestContext } from "node:test";
import { isKilnError } from "../../../src/errors.js";
import { bake, openStore, type Store } from "../../../src/image/index.js";
import { LABEL } from "../../../src/derive/index.js";
import type { Docker } from "../../../src/providers/docker/engine.js";
import { SwarmFleetProvider, connectManager, serviceName, type SwarmFleetOptions, type SwarmNode } from "../../../src/providers/swarm-fleet/index.js";
import type { LaunchRequest } from "../../../src/providers/provider.js";
import { RIG_ADDRESS, swarmRig, type SwarmRig } from "../../support/swarm-rig.js";
import { get, providerConformance } from "../conformance.js";
import { FIXTURE_APP, type FixtureName, type FixtureReport } from "../fixture-app.js";

const APP_UID = 1000;
const run = randomBytes(3).toString("hex");
let dir: string | undefined;
let images: Promise<{ store: Store; digest: string; rootDigest: string }> | undefined;
const services = new Set<string>();
let manager: Docker | undefined;

function fixtureImages() {
  images ??= (async () => {
    dir = mkdtempSync(join(tmpdir(), "kiln-swarm-conformance-"));
    writeFileSync(join(dir, "fixture.mjs"), FIXTURE_APP);
    const store = openStore(join(dir, ".kiln"));
    const recipe = (version: string, user: string) => ({
      name: "kiln-conformance", version, contextDir: dir!, base: "node", dependencies: [], files: [{ src: "fixture.mjs", dest: "/app/" }],
      config: [], workdir: "/app", env: {}, entrypoint: ["/usr/local/bin/node"], cmd: ["/app/fixture.mjs"], user, port: 8080, labels: {},
    });
    const digest = (await bake(recipe("1.0.0", `${APP_UID}:${APP_UID}`), { store, sourceDateEpoch: 0 })).digest;
    const rootDigest = (await bake(recipe("1.0.0-root", "0:0"), { store, sourceDateEpoch: 0 })).digest;
    return { store, digest, rootDigest };
  })();
  return images;
}

async function world(t: TestContext): Promise<(SwarmRig & { docker: Docker; store: Store; digest: string; rootDigest: string }) | undefined> {
  const rig = swarmRig(t);
  if (!rig) return undefined;
  manager ??= connectManager(rig.manager);
  return { ...rig, docker: manager, ...(await fixtureImages()) };
}

async function removeService(docker: Docker, service: string): Promise<void> {
  const list = (await docker.listServices({ filters: { label: [`${LABEL.service}=${service}`] } } as never)) as unknown as { ID: string }[];
  for (const s of list) await docker.getService(s.ID).remove().catch(() => undefined);
}

after(async () => {
  if (manager) for (const s of services) await removeService(manager, s).catch(() => undefined);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

let worlds = 0;
function requestFor(service: string, digest: string) {
  let n = 0;
  return (fixture: FixtureName, over: Partial<LaunchRequest> = {}): LaunchRequest => ({
    instanceId: `${service}-${++n}`, service, release: `r-${fixture}`, digest, volumes: [], ...over, env: { FIXTURE: fixture, ...over.env },
  });
}

const options = (e: NonNullable<Awaited<ReturnType<typeof world>>>, over: Partial<SwarmFleetOptions> = {}): SwarmFleetOptions => ({
  docker: e.docker, store: e.store, registry: `${e.registry}/kiln-conformance`, insecureRegistry: true, stopGraceMs: 700, launchTimeoutMs: 90_000, ...over,
});

providerConformance("swarm", async (t) => {
  const e = await world(t);
  if (!e) return undefined;
  const service = `sconf${run}w${++worlds}`;
  services.add(service);
  const make = () => new SwarmFleetProvider(options(e));
  return {
    provider: make(),
    reopen: make,
    service,
    request: requestFor(service, e.digest),
    lacks: { volumes: "a declared volume lives on one node and kiln places instances on any node: provider swarm refuses volumes" },
    appUid: APP_UID,
    address: RIG_ADDRESS,
    pass: (ms: number) => new Promise<void>((r) => setTimeout(r, ms)),
    cleanup: () => removeService(e.docker, service),
  };
});

async function waitServing(address: string): Promise<FixtureReport> {
  let last: unknown;
  for (let i = 0; i < 300; i++) {
    try {
      const r = await get(address);
      if (r.status === 200) return JSON.parse(r.body) as FixtureReport;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${address} never served: ${String(last)}`);
}

describe("Swarm fleet provider: what the swarm is asked for", () => {
  const isProviderError = (re: RegExp) => (err: unknown) => isKilnError(err) && err.code === "KILN_E_PROVIDER" && re.test(err.message) && !!err.hint;

  test("one service per instance: kiln's labels, the registry digest, one replica, no restart, hardening; a release spreads over all three nodes; logs", async (t) => {
    const e = await world(t);
    if (!e) return;
    const service = `sconf${run}spread`;
    services.add(service);
    const p = new SwarmFleetProvider(options(e));
    const req = requestFor(service, e.digest);
    const reqs = [req("serve"), req("serve"), req("serve")];
    try {
      // Launched together, as the controller does: the provider must still spread them.
      const insts = await Promise.all(reqs.map((r) => p.launch(r)));
      const svc = (await e.docker.getService(serviceName(reqs[0]!.instanceId)).inspect()) as { Spec: Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
      const spec = svc.Spec;
      assert.deepEqual(
        Object.fromEntries(Object.entries(spec.Labels as Record<string, string>).filter(([k]) => k.startsWith("dev.kiln."))),
        { [LABEL.managedBy]: "kiln", [LABEL.service]: service, [LABEL.release]: "r-serve", [LABEL.digest]: e.digest, [LABEL.instance]: reqs[0]!.instanceId },
      );
      assert.equal(spec.TaskTemplate.ContainerSpec.Image, `${e.registry}/kiln-conformance/${service}@${e.digest}`, "run by registry digest");
      assert.equal(spec.Mode.Replicated.Replicas, 1);
      assert.equal(spec.TaskTemplate.RestartPolicy.Condition, "none");
      assert.equal(spec.TaskTemplate.ContainerSpec.ReadOnly, true);
      assert.deepEqual(spec.TaskTemplate.ContainerSpec.CapabilityDrop, ["ALL"]);
      assert.equal(spec.TaskTemplate.ContainerSpec.User, `${APP_UID}:${APP_UID}`);
      assert.deepEqual(spec.EndpointSpec.Ports.map((x: { PublishMode: string; TargetPort: number; PublishedPort?: number }) => [x.PublishMode, x.TargetPort, x.PublishedPort ?? 0]), [["host", 8080, 0]]);

      const hosts = new Set(insts.map((i) => i.address.split(":")[0]));
      assert.equal(hosts.size, 3, `three instances of one release on three nodes: ${insts.map((i) => i.address).join(", ")}`);
      for (const h of hosts) assert.ok(e.nodeAddrs.includes(h!), `${h} is a node's address`);
      for (const i of insts) {
        const r = await waitServing(i.address);
        assert.equal(r.capEff, "0000000000000000", "no effective capabilities");
        assert.equal(r.env.PORT, "8080");
      }
      assert.match((await p.readLogs(reqs[0]!.instanceId, { lines: 10 })) ?? "", /serve listening on 8080/);
      assert.equal(await p.readLogs(`${service}-nope`, { lines: 10 }), undefined);
    } finally {
      await Promise.all(reqs.map((r) => p.terminate(r.instanceId, { graceMs: 0 })));
    }
  });

  test("placement constraints from kiln.yaml hold: node.role==worker never lands on the manager", async (t) => {
    const e = await world(t);
    if (!e) return;
    const service = `sconf${run}constr`;
    services.add(service);
    const p = new SwarmFleetProvider(options(e, { constraints: ["node.role==worker"] }));
    const req = requestFor(service, e.digest);
    const reqs = [req("serve"), req("serve"), req("serve"), req("serve")];
    try {
      const insts = await Promise.all(reqs.map((r) => p.launch(r)));
      const nodes = (await e.docker.listNodes()) as SwarmNode[];
      const managerAddr = nodes.find((n) => n.Spec?.Role === "manager")!.Status!.Addr!;
      const hosts = insts.map((i) => i.address.split(":")[0]);
      assert.ok(!hosts.includes(managerAddr), `none on the manager ${managerAddr}: ${hosts.join(", ")}`);
      assert.equal(new Set(hosts).size, 2, "spread over both workers");
    } finally {
      await Promise.all(reqs.map((r) => p.terminate(r.instanceId, { graceMs: 0 })));
    }
  });

  test("refusals before anything is created: a root image, declared volumes, unsafe names; a task that cannot start fails the launch and leaves nothing", async (t) => {
    const e = await world(t);
    if (!e) return;
    const service = `sconf${run}refuse`;
    services.add(service);
    const p = new SwarmFleetProvider(options(e, { launchTimeoutMs: 20_000 }));
    const req = requestFor(service, e.digest);
    await assert.rejects(p.launch(requestFor(service, e.rootDigest)("serve")), isProviderError(/root/));
    await assert.rejects(p.launch(req("serve", { volumes: [{ name: "data", path: "/data" }] })), isProviderError(/volumes/));
    await assert.rejects(p.launch(req("serve", { instanceId: "../escape" })), isProviderError(/not a safe name/));
    // No node satisfies this: refused by kiln's own placement, before a service exists.
    const nowhere = new SwarmFleetProvider(options(e, { constraints: ["node.labels.kiln-test-nowhere==yes"] }));
    await assert.rejects(nowhere.launch(req("serve")), isProviderError(/no Ready, Active node/));
    assert.deepEqual(await p.list(service), []);
  });
});

// The three-node rig of scripts/swarm-cluster.sh, as the Swarm provider's tests will use it:
// three Ready nodes, one manager, each at its own bridge address; and the path a release takes
// there — baked by kiln, pushed by kiln to the rig's registry, run by digest as a service whose
// host-mode published port answers on the address of the node the task landed on (no routing
// mesh: this kernel has no IPVS). Skips unless the rig's env is set:
//   eval "$(scripts/swarm-cluster.sh start)"   # as root

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { loadSpec } from "../../../src/config/index.js";
import { bake, openStore } from "../../../src/image/index.js";
import { parseRegistryRef, pushImage } from "../../../src/image/registry/index.js";
import { recipeOf } from "../../../src/ops/recipe.js";
import { helloWorkspace, until } from "../../integration/support.js";

interface Rig {
  manager: string;
  nodeAddrs: string[];
  registry: string;
}

function rig(t: TestContext): Rig | undefined {
  const manager = process.env.KILN_SWARM_MANAGER;
  const reason = manager ? undefined : "KILN_SWARM_MANAGER is not set: the three-node rig is not up — run `eval \"$(scripts/swarm-cluster.sh start)\"` as root first";
  if (reason) {
    if (process.env.KILN_REQUIRE_ALL === "1") throw new Error(`KILN_REQUIRE_ALL=1 but ${reason}`);
    t.diagnostic(`skipped: ${reason}`);
    t.skip(reason);
    return undefined;
  }
  return {
    manager: manager!,
    nodeAddrs: (process.env.KILN_SWARM_NODE_ADDRS ?? "").split(",").filter(Boolean),
    registry: process.env.KILN_SWARM_REGISTRY ?? "",
  };
}

function docker(r: Rig, args: string[]): string {
  const res = spawnSync("docker", ["-H", r.manager, ...args], { encoding: "utf8", timeout: 30_000 });
  if (res.status !== 0) throw new Error(`docker ${args.join(" ")}: ${(res.stderr || res.error?.message || "").trim()}`);
  return res.stdout.trim();
}

interface NodeView {
  ID: string;
  Spec: { Role: string };
  Status: { State: string; Addr: string };
}

function nodes(r: Rig): NodeView[] {
  const ids = docker(r, ["node", "ls", "-q"]).split("\n").filter(Boolean);
  return JSON.parse(docker(r, ["node", "inspect", ...ids])) as NodeView[];
}

test("the rig: 3 Ready nodes, 1 manager, each at its own bridge address", (t) => {
  const r = rig(t);
  if (!r) return;
  const ns = nodes(r);
  assert.equal(ns.length, 3);
  assert.deepEqual(ns.map((n) => n.Status.State), ["ready", "ready", "ready"]);
  assert.equal(ns.filter((n) => n.Spec.Role === "manager").length, 1);
  assert.deepEqual(ns.map((n) => n.Status.Addr).sort(), [...r.nodeAddrs].sort(), "each node advertises its own address");
  assert.match(r.registry, /^10\.77\.0\.1:\d+$/);
});

test("an image kiln pushed to the rig's registry runs by digest as a service; its host-mode port answers on its node's address", async (t) => {
  const r = rig(t);
  if (!r) return;
  const ws = await helloWorkspace("kiln-swarm-rig-");
  t.after(() => rm(ws.dir, { recursive: true, force: true }));
  const store = openStore(join(ws.dir, ".kiln"));
  const baked = await bake(recipeOf(loadSpec(join(ws.dir, "kiln.yaml"))), { store, sourceDateEpoch: 1_700_000_000 });
  const repo = `kiln-it/rig-${randomBytes(4).toString("hex")}`;
  const pushed = await pushImage(store, baked.digest, parseRegistryRef(`${r.registry}/${repo}:1.0.0`), { insecure: true });
  assert.equal(pushed.reference, `${r.registry}/${repo}@${baked.digest}`);

  const name = `kiln-rig-probe-${randomBytes(3).toString("hex")}`;
  t.after(() => { spawnSync("docker", ["-H", r.manager, "service", "rm", name], { timeout: 30_000 }); });
  docker(r, ["service", "create", "--detach", "--name", name, "--replicas", "1", "--restart-condition", "none",
    "--publish", "mode=host,target=8080", "--env", "PORT=8080", "--env", "HOST=0.0.0.0", pushed.reference]);

  // Where the task runs and which port its node gave it: only the task knows (the service shows 0).
  let where: { node: string; port: number } | undefined;
  await until(() => {
    const ids = docker(r, ["service", "ps", "-q", "--filter", "desired-state=running", name]).split("\n").filter(Boolean);
    if (ids.length !== 1) return false;
    const task = JSON.parse(docker(r, ["inspect", ids[0]!]))[0] as {
      NodeID: string; Status: { State: string; Err?: string; PortStatus?: { Ports?: { PublishedPort: number }[] } };
    };
    if (task.Status.State === "failed" || task.Status.State === "rejected") throw new Error(`task ${task.Status.State}: ${task.Status.Err}`);
    const port = task.Status.PortStatus?.Ports?.[0]?.PublishedPort;
    if (task.Status.State !== "running" || !port) return false;
    where = { node: task.NodeID, port };
    return true;
  }, 90_000, "the task to run with a published port");
  const addr = nodes(r).find((n) => n.ID === where!.node)!.Status.Addr;
  assert.ok(r.nodeAddrs.includes(addr));
  let body = "";
  await until(async () => {
    const res = await fetch(`http://${addr}:${where!.port}/version`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
    if (res?.status !== 200) return false;
    body = await res.text();
    return true;
  }, 30_000, `the service to answer on ${addr}:${where!.port}`);
  assert.match(body, /1\.0\.0/);
  // The engine ran exactly the digest kiln pushed.
  const image = docker(r, ["service", "inspect", name, "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}"]);
  assert.ok(image.endsWith(`@${baked.digest}`), image);
});

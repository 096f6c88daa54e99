// The Swarm fleet provider's pure parts, row by row as their doc comments give them: service
// names, the service spec, published ports, node addresses, constraints, node choice, and a
// task read as an instance (a task on a lost node is an exited instance).

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { LABEL } from "../../src/derive/index.js";
import {
  chooseNode,
  joinAddress,
  nodeAddress,
  observeInstance,
  pinnedNode,
  planService,
  publishedPort,
  readTask,
  registryAuth,
  registryTarget,
  satisfies,
  serviceName,
  type SwarmNode,
  type SwarmService,
  type SwarmTask,
} from "../../src/providers/swarm-fleet/plan.js";
import type { LaunchRequest } from "../../src/providers/provider.js";

const node = (id: string, over: Partial<SwarmNode> & { addr?: string; state?: string; role?: string; labels?: Record<string, string>; availability?: string } = {}): SwarmNode => ({
  ID: id,
  Spec: { Role: over.role ?? "worker", Availability: over.availability ?? "active", Labels: over.labels ?? {} },
  Description: { Hostname: "vm", Platform: { OS: "linux", Architecture: "x86_64" } },
  Status: { State: over.state ?? "ready", Addr: over.addr ?? `10.77.0.${id.charCodeAt(0) - 85}` },
  ...(over.ManagerStatus ? { ManagerStatus: over.ManagerStatus } : {}),
});

const task = (state: string, over: Partial<SwarmTask> = {}, ports: { TargetPort: number; PublishedPort: number; Protocol?: string }[] = []): SwarmTask => ({
  ID: "t1",
  NodeID: "b",
  DesiredState: "running",
  ...over,
  Status: { State: state, PortStatus: { Ports: ports.map((p) => ({ Protocol: "tcp", PublishMode: "host", ...p })) }, ...over.Status },
});

describe("serviceName", () => {
  test("kiln-<id> when Swarm accepts it, else a readable prefix and a hash", () => {
    assert.equal(serviceName("hello-r3-a1b2c3"), "kiln-hello-r3-a1b2c3");
    const dotted = serviceName("hello-1.2.0-a1b2c3");
    assert.match(dotted, /^kiln-hello-1-2-0-a1b2c3-[0-9a-f]{8}$/);
    const long = serviceName("x".repeat(100));
    assert.match(long, /^kiln-x{49}-[0-9a-f]{8}$/);
    assert.ok(long.length <= 63);
    assert.notEqual(serviceName("a.b"), serviceName("a_b"), "different ids, different names");
    assert.equal(serviceName("hello-1.2.0-a1b2c3"), dotted, "the same id, the same name");
  });
});

describe("planService", () => {
  const req: LaunchRequest = { instanceId: "hello-r2-abc123", service: "hello", release: "r2", digest: `sha256:${"a".repeat(64)}`, env: { GREETING: "hi", PORT: "1" }, volumes: [] };
  test("one replica, never restarted, host-mode port without a published port, labels, hardening, kiln's constraint", () => {
    const s = planService({ req, image: `10.77.0.1:5000/hello@${req.digest}`, containerPort: 8080, user: "1000:1000", constraints: ["node.labels.zone==a", "node.id==n2"], stopGraceMs: 2500, tmpSizeBytes: 1024 });
    const labels = { [LABEL.managedBy]: "kiln", [LABEL.service]: "hello", [LABEL.release]: "r2", [LABEL.digest]: req.digest, [LABEL.instance]: req.instanceId };
    assert.deepEqual(s, {
      Name: "kiln-hello-r2-abc123",
      Labels: labels,
      TaskTemplate: {
        ContainerSpec: {
          Image: `10.77.0.1:5000/hello@${req.digest}`,
          Labels: labels,
          Env: ["GREETING=hi", "PORT=8080", "HOST=0.0.0.0", "KILN_INSTANCE_ID=hello-r2-abc123"],
          User: "1000:1000",
          Hostname: "hello-r2-abc123",
          ReadOnly: true,
          Init: true,
          CapabilityDrop: ["ALL"],
          Mounts: [{ Type: "tmpfs", Target: "/tmp", TmpfsOptions: { SizeBytes: 1024, Mode: 0o1777 } }],
          StopGracePeriod: 2_500_000_000,
        },
        RestartPolicy: { Condition: "none" },
        Placement: { Constraints: ["node.labels.zone==a", "node.id==n2"] },
        LogDriver: { Name: "json-file", Options: { "max-size": "10m", "max-file": "2" } },
      },
      Mode: { Replicated: { Replicas: 1 } },
      EndpointSpec: { Ports: [{ Protocol: "tcp", TargetPort: 8080, PublishMode: "host" }] },
    });
    assert.equal(pinnedNode(s), "n2");
    assert.equal(pinnedNode({ TaskTemplate: { ...s.TaskTemplate, Placement: { Constraints: ["node.role==worker"] } } }), undefined);
  });
});

describe("publishedPort", () => {
  test("the first tcp binding of the target port (IPv4 and IPv6 repeat it); none before the task runs", () => {
    assert.equal(publishedPort(task("running", {}, [{ TargetPort: 8080, PublishedPort: 32768 }, { TargetPort: 8080, PublishedPort: 32768 }]), 8080), 32768);
    assert.equal(publishedPort(task("running", {}, [{ TargetPort: 8080, PublishedPort: 40000, Protocol: "udp" }, { TargetPort: 8080, PublishedPort: 32769 }]), 8080), 32769);
    assert.equal(publishedPort(task("running", {}, [{ TargetPort: 9090, PublishedPort: 32770 }]), 8080), undefined);
    assert.equal(publishedPort({ ID: "t", Status: { State: "pending" } }, 8080), undefined);
  });
});

describe("nodeAddress", () => {
  test("Status.Addr, else the host part of a manager's advertise address", () => {
    assert.equal(nodeAddress(node("a", { addr: "10.77.0.12" })), "10.77.0.12");
    assert.equal(nodeAddress(node("a", { addr: "0.0.0.0", ManagerStatus: { Addr: "10.77.0.11:2377" } })), "10.77.0.11");
    assert.equal(nodeAddress(node("a", { addr: "127.0.0.1", ManagerStatus: { Addr: "[fd00::11]:2377" } })), "fd00::11");
    assert.equal(nodeAddress(node("a", { addr: "127.0.0.1" })), undefined);
    assert.equal(joinAddress("10.77.0.12", 32768), "10.77.0.12:32768");
    assert.equal(joinAddress("fd00::11", 32768), "[fd00::11]:32768");
  });
});

describe("satisfies", () => {
  const worker = node("b", { labels: { zone: "A" } });
  const rows: [string, SwarmNode, boolean][] = [
    ["node.role==manager", worker, false],
    ["node.role!=manager", worker, true],
    ["node.labels.zone==a", worker, true],
    ["node.labels.zone!=a", node("c"), true],
    ["node.labels.zone==a", node("c"), false],
    ["node.id==b", worker, true],
    ["node.platform.os==linux", worker, true],
    ["engine.labels.ssd==true", worker, false],
    ["nonsense", worker, false],
  ];
  for (const [c, n, want] of rows) test(`${c} on ${n.ID}${n.Spec?.Labels?.zone ? ` (zone ${n.Spec.Labels.zone})` : ""} → ${want}`, () => assert.equal(satisfies(n, c), want));
});

describe("chooseNode", () => {
  const nodes = [node("a", { role: "manager" }), node("b"), node("c")];
  const rows: { name: string; nodes: SwarmNode[]; placed: { node: string; release: string }[]; constraints?: string[]; want: string | undefined }[] = [
    { name: "the node with the fewest of the release", nodes, placed: [{ node: "a", release: "r2" }, { node: "b", release: "r1" }, { node: "b", release: "r1" }], want: "c" },
    { name: "fewest of the release first, even where the service has more", nodes, placed: [{ node: "a", release: "r2" }, { node: "b", release: "r1" }, { node: "b", release: "r1" }, { node: "c", release: "r2" }], want: "b" },
    { name: "a tie on the release: fewest of the service", nodes, placed: [{ node: "a", release: "r2" }, { node: "b", release: "r2" }, { node: "c", release: "r2" }, { node: "a", release: "r1" }, { node: "c", release: "r1" }], want: "b" },
    { name: "a full tie: the lowest id", nodes, placed: [], want: "a" },
    { name: "constraints narrow the choice", nodes, placed: [], constraints: ["node.role==worker"], want: "b" },
    { name: "a down node is never chosen", nodes: [node("a", { state: "down" }), node("b")], placed: [{ node: "b", release: "r2" }], want: "b" },
    { name: "a drained node is never chosen", nodes: [node("a", { availability: "drain" }), node("b")], placed: [{ node: "b", release: "r2" }], want: "b" },
    { name: "every node down: none", nodes: [node("a", { state: "down" }), node("b", { state: "down" })], placed: [], want: undefined },
  ];
  for (const r of rows) test(r.name, () => assert.equal(chooseNode(r.nodes, r.placed, "r2", r.constraints ?? [])?.ID, r.want));
});

describe("readTask", () => {
  const b = node("b", { addr: "10.77.0.12" });
  const rows: { name: string; task: SwarmTask | undefined; node: SwarmNode | undefined; want: ReturnType<typeof readTask> }[] = [
    { name: "running on a ready node", task: task("running", {}, [{ TargetPort: 8080, PublishedPort: 32768 }]), node: b, want: { kind: "running", address: "10.77.0.12:32768" } },
    { name: "running on a down node: lost", task: task("running", {}, [{ TargetPort: 8080, PublishedPort: 32768 }]), node: node("b", { state: "down" }), want: { kind: "exited", exitCode: null, reason: "node b is down" } },
    { name: "running on a disconnected node: lost", task: task("running", {}, [{ TargetPort: 8080, PublishedPort: 32768 }]), node: node("b", { state: "disconnected" }), want: { kind: "exited", exitCode: null, reason: "node b is disconnected" } },
    { name: "running on a node in state unknown (a manager just restarted): still running", task: task("running", {}, [{ TargetPort: 8080, PublishedPort: 32768 }]), node: node("b", { addr: "10.77.0.12", state: "unknown" }), want: { kind: "running", address: "10.77.0.12:32768" } },
    { name: "failed with exit 3", task: task("failed", { Status: { State: "failed", Err: "task: non-zero exit (3)", ContainerStatus: { ExitCode: 3 } } }), node: b, want: { kind: "exited", exitCode: 3, reason: "task: non-zero exit (3)" } },
    { name: "rejected: no exit code", task: task("rejected", { Status: { State: "rejected", Err: "No such image", ContainerStatus: { ExitCode: 0 } } }), node: b, want: { kind: "exited", exitCode: null, reason: "No such image" } },
    { name: "being stopped (desired shutdown) but still running: serves until it stops", task: task("running", { DesiredState: "shutdown" }, [{ TargetPort: 8080, PublishedPort: 32768 }]), node: b, want: { kind: "running", address: "10.77.0.12:32768" } },
    { name: "shut down with exit 0", task: task("shutdown", { DesiredState: "shutdown", Status: { State: "shutdown", ContainerStatus: { ExitCode: 0 } } }), node: b, want: { kind: "exited", exitCode: 0, reason: "shutdown" } },
    { name: "pending", task: task("pending"), node: undefined, want: { kind: "starting" } },
    { name: "pending, pinned to a node that is down: lost", task: task("pending", { NodeID: "" }), node: node("c", { state: "down" }), want: { kind: "exited", exitCode: null, reason: "node c is down" } },
    { name: "running, no port read back yet", task: task("running"), node: b, want: { kind: "starting" } },
    { name: "no task yet", task: undefined, node: undefined, want: { kind: "starting" } },
  ];
  for (const r of rows) test(r.name, () => assert.deepEqual(readTask(r.task, r.node, 8080), r.want));
});

describe("observeInstance", () => {
  const svc: SwarmService = {
    ID: "s1",
    CreatedAt: "2026-12-02T22:00:00.000Z",
    Spec: planService({ req: { instanceId: "hello-r2-x", service: "hello", release: "r2", digest: `sha256:${"b".repeat(64)}`, env: {}, volumes: [] }, image: "img", containerPort: 8080, user: "1000", constraints: [], stopGraceMs: 0, tmpSizeBytes: 1 }),
  };
  test("labels give the identity; the task gives state and address; startedAt is the service's creation", () => {
    assert.deepEqual(observeInstance(svc, task("running", {}, [{ TargetPort: 8080, PublishedPort: 32768 }]), node("b", { addr: "10.77.0.12" })), {
      id: "hello-r2-x", service: "hello", release: "r2", digest: `sha256:${"b".repeat(64)}`, address: "10.77.0.12:32768", state: "running", startedAt: Date.parse("2026-12-02T22:00:00.000Z"),
    });
    const lost = observeInstance(svc, task("running", {}, [{ TargetPort: 8080, PublishedPort: 32768 }]), node("b", { state: "down" }));
    assert.deepEqual([lost.state, lost.exitCode, lost.address], ["exited", null, ""]);
    const starting = observeInstance(svc, task("preparing"), undefined);
    assert.deepEqual([starting.state, starting.address], ["running", ""]);
  });
});

describe("registry", () => {
  test("X-Registry-Auth is base64url JSON of username, password and server", () => {
    const h = registryAuth({ username: "u", password: "p?>" }, "10.77.0.1:5000");
    assert.doesNotMatch(h, /[+/=]/);
    assert.deepEqual(JSON.parse(Buffer.from(h, "base64url").toString("utf8")), { username: "u", password: "p?>", serveraddress: "10.77.0.1:5000" });
  });
  test("the repository is the service, under the setting's prefix", () => {
    assert.deepEqual(registryTarget("10.77.0.1:5000", "hello"), { registry: "10.77.0.1:5000", repository: "hello" });
    assert.deepEqual(registryTarget("ghcr.io/acme", "hello"), { registry: "ghcr.io", repository: "acme/hello" });
  });
});

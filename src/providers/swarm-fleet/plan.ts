// What the Swarm fleet provider asks a Swarm manager for, and how it reads the answers, as
// pure functions: the service spec of one instance, the node a new instance goes to, and a
// service with its task and node read back as an ObservedInstance. The provider
// (swarm-fleet-provider.ts) does the I/O around them.
//
// One Swarm service per kiln instance, so kiln (not Swarm) decides which instance stops:
// removing a service stops exactly that instance, where scaling a multi-replica service down
// lets Swarm pick the task. Each service has one replica, never restarts (kiln replaces
// instances), runs the image by registry digest, and publishes its port in host mode with no
// fixed published port, so two releases can share a node and nothing needs the routing mesh
// (IPVS): the router reaches the task at NODE_ADDRESS:PUBLISHED_PORT.

import { swarmResources } from "../docker/engine-limits.js";
import { createHash } from "node:crypto";
import { LABEL, digestLabel } from "../../derive/index.js";
import type { LaunchRequest, ObservedInstance } from "../provider.js";

/** The subset of the engine's Swarm objects the provider reads (Docker Engine API, /services, /tasks, /nodes). */
export interface SwarmNode {
  ID: string;
  Spec?: { Role?: string; Availability?: string; Labels?: Record<string, string> };
  Description?: { Hostname?: string; Platform?: { OS?: string; Architecture?: string }; Engine?: { Labels?: Record<string, string> } };
  Status?: { State?: string; Addr?: string };
  ManagerStatus?: { Addr?: string; Leader?: boolean };
}

export interface SwarmTask {
  ID: string;
  NodeID?: string;
  DesiredState?: string;
  CreatedAt?: string;
  Version?: { Index?: number };
  Status?: {
    State?: string;
    Timestamp?: string;
    Err?: string;
    Message?: string;
    ContainerStatus?: { ContainerID?: string; ExitCode?: number };
    PortStatus?: { Ports?: { Protocol?: string; TargetPort?: number; PublishedPort?: number; PublishMode?: string }[] };
  };
}

export interface SwarmService {
  ID: string;
  CreatedAt?: string;
  Version?: { Index?: number };
  Spec: ServiceSpec;
}

export interface ServiceSpec {
  Name: string;
  Labels: Record<string, string>;
  TaskTemplate: {
    ContainerSpec: {
      Image: string;
      Labels: Record<string, string>;
      Env: string[];
      User?: string;
      Hostname?: string;
      ReadOnly: boolean;
      Init: boolean;
      CapabilityDrop: string[];
      Mounts: { Type: "tmpfs"; Target: string; TmpfsOptions: { SizeBytes: number; Mode: number } }[];
      StopGracePeriod: number;
    };
    RestartPolicy: { Condition: "none" };
    Placement: { Constraints: string[] };
    LogDriver: { Name: string; Options: Record<string, string> };
    /** kiln.yaml `resources` (absent: none) */
    Resources?: { Limits: { MemoryBytes?: number; Pids?: number; NanoCPUs?: number } };
  };
  Mode: { Replicated: { Replicas: number } };
  EndpointSpec: { Ports: { Protocol: "tcp"; TargetPort: number; PublishMode: "host" }[] };
}

/**
 * The service's name: "kiln-<instance id>" when Swarm accepts it (letters, digits, "-" and
 * "_", at most 63), else a readable prefix and a hash of the id, so every id has one name
 * (which makes a second create of the same instance a 409, not a second instance).
 *
 *   "hello-r3-a1b2c3"                → "kiln-hello-r3-a1b2c3"
 *   "hello-1.2.0-a1b2c3"             → "kiln-hello-1-2-0-a1b2c3-<8 hex>"  (dots are not allowed)
 *   a 100-character id               → "kiln-<first 49 characters>-<8 hex>"
 */
export function serviceName(instanceId: string): string {
  const plain = `kiln-${instanceId}`;
  if (/^[A-Za-z0-9](?:[-_]*[A-Za-z0-9]+)*$/.test(plain) && plain.length <= 63) return plain;
  const hash = createHash("sha256").update(instanceId).digest("hex").slice(0, 8);
  const safe = instanceId.replace(/[^A-Za-z0-9_-]+/g, "-").replace(/^[-_]+|[-_]+$/g, "").slice(0, 49).replace(/[-_]+$/, "");
  return `kiln-${safe || "i"}-${hash}`;
}

export interface ServicePlanInput {
  req: LaunchRequest;
  /** "REGISTRY/REPO@sha256:…" (or the engine image ID on a one-node swarm) */
  image: string;
  /** the port the app listens on inside the container */
  containerPort: number;
  /** "UID:GID" or a user name the engine resolves in the image; never root (checked before) */
  user: string;
  /** the user's constraints, and kiln's node.id constraint when it chose the node */
  constraints: string[];
  stopGraceMs: number;
  tmpSizeBytes: number;
}

/** The app's environment: declared env, then PORT, HOST and KILN_INSTANCE_ID (as the Docker provider gives them). */
export function serviceEnv(req: LaunchRequest, containerPort: number): string[] {
  const env = new Map(Object.entries(req.env));
  env.set("PORT", String(containerPort));
  env.set("HOST", "0.0.0.0");
  env.set("KILN_INSTANCE_ID", req.instanceId);
  return [...env].map(([k, v]) => `${k}=${v}`);
}

export function planService(input: ServicePlanInput): ServiceSpec {
  const { req } = input;
  const labels = {
    [LABEL.managedBy]: "kiln",
    [LABEL.service]: req.service,
    [LABEL.release]: req.release,
    [LABEL.digest]: req.digest,
    [LABEL.instance]: req.instanceId,
  };
  return {
    Name: serviceName(req.instanceId),
    Labels: labels,
    TaskTemplate: {
      ContainerSpec: {
        Image: input.image,
        Labels: labels,
        Env: serviceEnv(req, input.containerPort),
        User: input.user,
        Hostname: req.instanceId.slice(0, 63),
        ReadOnly: true,
        Init: true,
        CapabilityDrop: ["ALL"],
        Mounts: [{ Type: "tmpfs", Target: "/tmp", TmpfsOptions: { SizeBytes: input.tmpSizeBytes, Mode: 0o1777 } }],
        // Swarm stops a task with the image's stop signal, then SIGKILL after this (ns).
        StopGracePeriod: Math.max(0, Math.round(input.stopGraceMs)) * 1_000_000,
      },
      RestartPolicy: { Condition: "none" },
      Placement: { Constraints: input.constraints },
      LogDriver: { Name: "json-file", Options: { "max-size": "10m", "max-file": "2" } },
      ...withResources(swarmResources(req.resources)),
    },
    Mode: { Replicated: { Replicas: 1 } },
    // No PublishedPort: the node's engine picks a free one; it is read back from the task.
    EndpointSpec: { Ports: [{ Protocol: "tcp", TargetPort: input.containerPort, PublishMode: "host" }] },
  };
}

/**
 * The host port a task publishes `targetPort` on, from its PortStatus (the service's Endpoint
 * shows 0 for host-mode ports). The engine lists one binding per address family (IPv4 and
 * IPv6, same port): the first is the port.
 *
 *   [{tcp 8080→32768 host}, {tcp 8080→32768 host}] → 32768
 *   [{udp 8080→40000}, {tcp 8080→32769}]            → 32769
 *   no PortStatus (not running yet)                  → undefined
 */
export function publishedPort(task: SwarmTask, targetPort: number): number | undefined {
  const p = (task.Status?.PortStatus?.Ports ?? []).find((x) => (x.Protocol ?? "tcp") === "tcp" && x.TargetPort === targetPort && (x.PublishedPort ?? 0) > 0);
  return p?.PublishedPort;
}

const unusable = (ip: string | undefined) => !ip || ip === "0.0.0.0" || ip === "::" || ip.startsWith("127.") || ip === "::1";
const hostOf = (addr: string) => (addr.startsWith("[") ? addr.slice(1, addr.indexOf("]")) : addr.replace(/:\d+$/, ""));

/**
 * The address other machines reach a node at. Status.Addr is the source address the manager
 * saw, which on a manager itself may read 0.0.0.0 or 127.0.0.1: there the host part of its
 * ManagerStatus.Addr (its advertise address) is the right one.
 *
 *   {Status.Addr 10.77.0.12}                                → "10.77.0.12"
 *   {Status.Addr 0.0.0.0, ManagerStatus.Addr 10.77.0.11:2377} → "10.77.0.11"
 *   {Status.Addr 127.0.0.1, no ManagerStatus}                → undefined
 */
export function nodeAddress(node: SwarmNode): string | undefined {
  const s = node.Status?.Addr;
  if (!unusable(s)) return s;
  const m = node.ManagerStatus?.Addr ? hostOf(node.ManagerStatus.Addr) : undefined;
  return unusable(m) ? undefined : m;
}

/** "HOST:PORT", bracketing an IPv6 host. */
export function joinAddress(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A node kiln may place on: Ready (reported by the manager) and Active (not paused or drained). */
export function isSchedulable(node: SwarmNode): boolean {
  return node.Status?.State === "ready" && (node.Spec?.Availability ?? "active") === "active";
}

/**
 * Whether a node satisfies one placement constraint as Swarm reads it (the forms kiln.yaml
 * accepts: node.id, node.hostname, node.role, node.platform.os/arch, node.labels.K,
 * engine.labels.K, with == or !=). Swarm compares case-insensitively; a missing label is ""
 * (so "node.labels.zone!=a" holds on a node without the label).
 *
 *   "node.role==manager" on a worker          → false
 *   "node.labels.zone==a" on {zone: "A"}      → true
 *   "node.labels.zone!=a" on a node without it → true
 */
export function satisfies(node: SwarmNode, constraint: string): boolean {
  const m = /^\s*([A-Za-z0-9_.-]+)\s*(==|!=)\s*(.+?)\s*$/.exec(constraint);
  if (!m) return false;
  const [, key, op, want] = m as unknown as [string, string, string, string];
  let have: string | undefined;
  if (key === "node.id") have = node.ID;
  else if (key === "node.hostname") have = node.Description?.Hostname;
  else if (key === "node.role") have = node.Spec?.Role;
  else if (key === "node.platform.os") have = node.Description?.Platform?.OS;
  else if (key === "node.platform.arch") have = node.Description?.Platform?.Architecture;
  else if (key.startsWith("node.labels.")) have = node.Spec?.Labels?.[key.slice("node.labels.".length)];
  else if (key.startsWith("engine.labels.")) have = node.Description?.Engine?.Labels?.[key.slice("engine.labels.".length)];
  else return false;
  const equal = (have ?? "").toLowerCase() === want.toLowerCase();
  return op === "==" ? equal : !equal;
}

/** Where an instance of the service already runs (or is placed): its node and release. */
export interface Placed {
  node: string;
  release: string;
}

/**
 * The node a new instance of `release` goes to, or undefined when no node can take it.
 * Swarm's `spread` preference works only within one service, and across single-replica
 * services its scheduler merely breaks ties towards fewer tasks, so kiln chooses:
 * among Ready, Active nodes that satisfy every constraint, the one with the fewest
 * instances of this release (what a node loss costs the release), then the fewest of the
 * service (blue and green together stay spread), then the lowest node id (deterministic).
 *
 *   nodes a b c, r2 on a: 1, b: 0, c: 0, service a: 1 b: 2 c: 0 → c
 *   nodes a b c, r2 on a: 1, b: 1, c: 1                          → the one with fewest of the service, then a
 *   constraint node.role==worker, a is the manager               → b or c only
 *   every node Down                                               → undefined
 */
export function chooseNode(nodes: SwarmNode[], placed: Placed[], release: string, constraints: string[]): SwarmNode | undefined {
  const eligible = nodes.filter((n) => isSchedulable(n) && constraints.every((c) => satisfies(n, c)));
  const count = (node: string, rel?: string) => placed.filter((p) => p.node === node && (rel === undefined || p.release === rel)).length;
  return eligible
    .map((n) => ({ n, rel: count(n.ID, release), svc: count(n.ID) }))
    .sort((a, b) => a.rel - b.rel || a.svc - b.svc || (a.n.ID < b.n.ID ? -1 : a.n.ID > b.n.ID ? 1 : 0))[0]?.n;
}

/** The node an instance's service is pinned to (kiln's "node.id==X" constraint), if any. */
export function pinnedNode(spec: Pick<ServiceSpec, "TaskTemplate">): string | undefined {
  for (const c of spec.TaskTemplate?.Placement?.Constraints ?? []) {
    const m = /^node\.id\s*==\s*(\S+)$/.exec(c);
    if (m) return m[1];
  }
  return undefined;
}

/** Task states before the container runs. */
const PRE_RUNNING = new Set(["new", "pending", "assigned", "accepted", "preparing", "ready", "starting"]);

/** The task that stands for the instance: the most recent one (a one-replica service that never restarts has one). */
export function currentTask(tasks: SwarmTask[]): SwarmTask | undefined {
  return [...tasks].sort((a, b) => (b.Version?.Index ?? 0) - (a.Version?.Index ?? 0) || Date.parse(b.CreatedAt ?? "") - Date.parse(a.CreatedAt ?? ""))[0];
}

export type TaskReading =
  /** not running yet (scheduled, pulling, starting) */
  | { kind: "starting" }
  | { kind: "running"; address: string }
  /** gone for good: exited, failed, rejected, shut down, or on a node the manager lost */
  | { kind: "exited"; exitCode: number | null; reason: string };

/**
 * One instance's state from its task and the node the task is on (or, before Swarm assigned
 * it, the node kiln pinned it to: a task pinned to a lost node would wait for it forever).
 *
 * A task on a node the manager marks down (or disconnected) is read as exited with no exit
 * code: Swarm itself reports it still "running" (it cannot know), and may go on reporting
 * that for 24 h, but whether the container still serves is unknown (the node's engine may be
 * dead while the container survives, or its link may be cut). kiln's controller treats an
 * exited instance as lost — out of the router, stopped (the service is removed, so a node
 * that comes back stops the container), replaced from the live release on the nodes left —
 * which is the right answer for an unknown one too. A node in state "unknown" (a manager that
 * has just restarted has not heard from it yet) is not treated as lost.
 *
 *   task running on a ready node, port 8080→32768, node 10.77.0.12  → running 10.77.0.12:32768
 *   task running on a down node                                      → exited, null, "node … is down"
 *   task failed, exit 3                                              → exited, 3
 *   task rejected ("no such image")                                  → exited, null
 *   task pending / preparing                                         → starting
 *   task pending, pinned to a node that is down                      → exited, null, "node … is down"
 *   task running, no published port read back yet                    → starting
 */
export function readTask(task: SwarmTask | undefined, node: SwarmNode | undefined, targetPort: number): TaskReading {
  if (!task) return { kind: "starting" };
  const state = task.Status?.State ?? "new";
  const code = task.Status?.ContainerStatus?.ExitCode;
  const why = task.Status?.Err || task.Status?.Message || state;
  if (task.DesiredState !== undefined && task.DesiredState !== "running" && state !== "running" && !PRE_RUNNING.has(state)) {
    return { kind: "exited", exitCode: typeof code === "number" ? code : null, reason: why };
  }
  const nodeState = node?.Status?.State;
  if ((state === "running" || PRE_RUNNING.has(state)) && (nodeState === "down" || nodeState === "disconnected")) {
    return { kind: "exited", exitCode: null, reason: `node ${node?.ID ?? task.NodeID ?? "?"} is ${nodeState}` };
  }
  if (state === "running") {
    const port = publishedPort(task, targetPort);
    const host = node ? nodeAddress(node) : undefined;
    if (port === undefined || host === undefined) return { kind: "starting" };
    // Also while Swarm stops it (desired shutdown): it serves until it has stopped.
    return { kind: "running", address: joinAddress(host, port) };
  }
  if (PRE_RUNNING.has(state)) return { kind: "starting" };
  // complete, failed, shutdown, rejected, orphaned, remove
  return { kind: "exited", exitCode: typeof code === "number" && state !== "rejected" ? code : null, reason: why };
}

/** The container port a service's task serves on (its host-mode published target). */
export function targetPortOf(spec: Pick<ServiceSpec, "EndpointSpec">): number | undefined {
  return spec.EndpointSpec?.Ports?.[0]?.TargetPort;
}

/**
 * An instance as the controller sees it, from its service, task and node. A task not
 * running yet is "running" with no address (its launch is still settling); startedAt is the
 * service's creation (stable for the instance's life, unlike the task's state timestamps).
 */
export function observeInstance(svc: SwarmService, task: SwarmTask | undefined, node: SwarmNode | undefined): ObservedInstance {
  const labels = svc.Spec.Labels ?? {};
  const r = readTask(task, node, targetPortOf(svc.Spec) ?? 0);
  const base: ObservedInstance = {
    id: labels[LABEL.instance] ?? svc.Spec.Name,
    service: labels[LABEL.service] ?? "",
    release: labels[LABEL.release] ?? "",
    digest: digestLabel(labels) ?? "",
    address: r.kind === "running" ? r.address : "",
    state: r.kind === "exited" ? "exited" : "running",
    startedAt: Date.parse(svc.CreatedAt ?? "") || 0,
  };
  if (r.kind === "exited") base.exitCode = r.exitCode;
  return base;
}

/**
 * The value of the X-Registry-Auth header Swarm stores with a service so every node can pull
 * its image: base64url of {username, password, serveraddress}.
 */
export function registryAuth(creds: { username: string; password: string }, registry: string): string {
  return Buffer.from(JSON.stringify({ username: creds.username, password: creds.password, serveraddress: registry })).toString("base64url");
}

/**
 * Where a service's images go in the registry the nodes pull from, from kiln.yaml
 * `swarm.registry` ("HOST[:PORT][/PREFIX]").
 *
 *   "10.77.0.1:5000", service hello       → {registry 10.77.0.1:5000, repository hello}
 *   "ghcr.io/acme", service hello          → {registry ghcr.io, repository acme/hello}
 */
export function registryTarget(setting: string, service: string): { registry: string; repository: string } {
  const slash = setting.indexOf("/");
  if (slash < 0) return { registry: setting, repository: service };
  return { registry: setting.slice(0, slash), repository: `${setting.slice(slash + 1).replace(/\/+$/, "")}/${service}` };
}

function withResources(r: ServiceSpec["TaskTemplate"]["Resources"]): Pick<ServiceSpec["TaskTemplate"], "Resources"> {
  return r ? { Resources: r } : {};
}

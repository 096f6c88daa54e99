// The Swarm fleet provider: kiln's controller runs instances on a Docker Swarm. Each instance
// is one Swarm service (plan.ts) created through a manager's Engine API; the engine places
// and runs it, kiln decides when it starts and stops and verifies it through its router.
//
// The swarm is the durable record: services carry kiln's labels, so a restarted controller
// adopts them with one label query, and an instance's service name is derived from its id,
// so launching an id twice finds the first service. Engine errors become KilnErrors here.

import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import Docker from "dockerode";
import { KilnError } from "../../errors.js";
import { readImage, type Store } from "../../image/index.js";
import { pushImage, type Credentials } from "../../image/registry/index.js";
import { LABEL } from "../../derive/index.js";
import { badEnvName, demuxLogs, imagePort, type EngineImageConfig } from "../docker/container-plan.js";
import { ensureImage, translateDockerError } from "../docker/engine.js";
import { resolveImageUser } from "../local/image-user.js";
import type { LaunchRequest, ObservedInstance, Provider } from "../provider.js";
import { LaunchFlights, SAFE_SEGMENT } from "../single-flight.js";
import {
  chooseNode,
  currentTask,
  observeInstance,
  pinnedNode,
  planService,
  readTask,
  registryAuth,
  registryTarget,
  serviceName,
  targetPortOf,
  type Placed,
  type SwarmNode,
  type SwarmService,
  type SwarmTask,
} from "./plan.js";

export interface SwarmFleetOptions {
  /** a client for a Swarm manager's engine */
  docker: Docker;
  /** the image store releases are pushed from */
  store: Store;
  /** kiln.yaml swarm.registry ("HOST[:PORT][/PREFIX]"); absent: images are loaded into the manager's engine and instances run on the manager only */
  registry?: string;
  /** plain HTTP to a registry not on loopback */
  insecureRegistry?: boolean;
  /** pushed with, and given to Swarm as X-Registry-Auth so every node can pull */
  credentials?: Credentials;
  /** kiln.yaml swarm.constraints */
  constraints?: string[];
  /** kiln.yaml swarm.spread (default true): kiln chooses the node (plan.ts chooseNode) */
  spread?: boolean;
  /** every service's StopGracePeriod: SIGTERM, then SIGKILL after this (default 10 s, the controller's own cap) */
  stopGraceMs?: number;
  /** a launch that is not running after this is removed and fails (default 120 s: the first pull on a node) */
  launchTimeoutMs?: number;
  tmpSizeBytes?: number;
  /** where a removed instance's log is kept (DIR/<instance>/log) */
  logDir?: string;
  /** nodes are listed at most this often (default 500 ms): a node's state is what loss detection reads */
  nodeCacheMs?: number;
}

const POLL_MS = 100;
/** how long terminate waits for the manager to reap a stopped task before removing its service */
const REAP_WAIT_MS = 3000;
const KEPT_LOG_BYTES = 1 << 20;
const LOG_TIMEOUT_MS = 5000;
/** adoption waits this long for a launch an earlier controller left starting */
const ADOPT_WAIT_MS = 30_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const statusOf = (e: unknown) => (e as { statusCode?: number }).statusCode;

function providerError(message: string, hint: string, where?: string, cause?: unknown): KilnError {
  return new KilnError("KILN_E_PROVIDER", message, { hint, cause, details: where ? [{ where, message }] : undefined });
}

/** A Swarm manager's engine from kiln.yaml swarm.manager, $KILN_SWARM_MANAGER or $DOCKER_HOST ("unix:///path", a path, or "tcp://host:port"). */
export function connectManager(setting: string | undefined, env: NodeJS.ProcessEnv = process.env): Docker {
  const s = setting ?? env.KILN_SWARM_MANAGER ?? env.DOCKER_HOST ?? "unix:///var/run/docker.sock";
  if (s.startsWith("unix://")) return new Docker({ socketPath: s.slice("unix://".length) });
  if (s.startsWith("/")) return new Docker({ socketPath: s });
  const m = /^tcp:\/\/([^:/]+|\[[^\]]+\]):(\d+)\/?$/.exec(s);
  if (m) return new Docker({ host: m[1]!.replace(/^\[|\]$/g, ""), port: Number(m[2]), protocol: "http" });
  throw new KilnError("KILN_E_USAGE", `swarm manager ${JSON.stringify(s)} is neither a unix socket nor tcp://HOST:PORT`, {
    hint: "set swarm.manager in kiln.yaml (or KILN_SWARM_MANAGER) to e.g. unix:///run/swarm/manager.sock",
  });
}

/** Throws a KilnError unless the engine is an active Swarm manager; returns its node id. */
export async function ensureManager(docker: Docker): Promise<string> {
  let info: { Swarm?: { LocalNodeState?: string; ControlAvailable?: boolean; NodeID?: string } };
  try {
    info = await docker.info();
  } catch (e) {
    throw translateDockerError(e, "reach the Swarm manager's engine");
  }
  const s = info.Swarm ?? {};
  if (s.LocalNodeState !== "active" || !s.ControlAvailable || !s.NodeID) {
    throw new KilnError("KILN_E_PROVIDER", `provider swarm needs a Swarm manager, but this engine is ${s.LocalNodeState !== "active" ? `not in a swarm (${s.LocalNodeState || "inactive"})` : "a worker"}`, {
      hint: "point swarm.manager (or KILN_SWARM_MANAGER) at a manager's socket; `scripts/swarm-cluster.sh start` runs a three-node swarm on this machine",
    });
  }
  return s.NodeID;
}

export class SwarmFleetProvider implements Provider {
  readonly name = "swarm";

  /** kiln.yaml `resources` go to the engine (engine-limits.ts), which enforces them with the node's cgroups. */
  limitsEnforcement(): "engine" {
    return "engine";
  }
  private readonly docker: Docker;
  private readonly launches = new LaunchFlights<ObservedInstance>();
  /** ids this object is launching right now (list() does not wait for them) */
  private readonly launchesInFlight = new Set<string>();
  /** digest → the image reference tasks run (pushed or loaded once per provider object) */
  private readonly images = new Map<string, Promise<string>>();
  /** placements chosen but not yet visible as services, so concurrent launches spread too */
  private readonly pending = new Map<string, Placed & { service: string }>();
  private placing: Promise<unknown> = Promise.resolve();
  private nodesCache?: { at: number; nodes: SwarmNode[] };
  private managerNode?: Promise<string>;

  constructor(private readonly opts: SwarmFleetOptions) {
    this.docker = opts.docker;
  }

  launch(req: LaunchRequest): Promise<ObservedInstance> {
    return this.launches.run(req.instanceId, () => this.launchOnce(req));
  }

  /**
   * Stops exactly this instance: its service is scaled to 0, so Swarm stops its task (the
   * image's stop signal, SIGKILL after the service's StopGracePeriod), then removed. graceMs
   * cannot shorten a StopGracePeriod fixed at launch (changing it would replace the task).
   */
  async terminate(instanceId: string, opts: { graceMs: number }): Promise<void> {
    if (!SAFE_SEGMENT.test(instanceId)) return;
    await this.launches.settled(instanceId);
    const svc = await this.findService(instanceId);
    if (!svc) return;
    if ((svc.Spec.Mode?.Replicated?.Replicas ?? 1) > 0) {
      try {
        await this.docker.getService(svc.ID).update({ _query: { version: svc.Version?.Index ?? 0 }, _body: { ...svc.Spec, Mode: { Replicated: { Replicas: 0 } } } } as never);
      } catch (e) {
        // 404: removed meanwhile; 500 "update out of sequence": another terminate got there first
        if (statusOf(e) === 404) return;
        if (!/out of sequence/i.test(String((e as Error).message))) throw translateDockerError(e, `stop instance ${instanceId}`);
      }
    }
    const bound = Date.now() + Math.max(opts.graceMs, this.stopGraceMs()) + 20_000;
    while (Date.now() < bound) {
      const task = currentTask(await this.tasksOf([svc.ID]));
      const nodeId = task?.NodeID || pinnedNode(svc.Spec);
      const node = nodeId ? (await this.nodes(true)).find((n) => n.ID === nodeId) : undefined;
      // On a lost node nothing will report the task stopped: removing the service makes the node stop it when it returns.
      if (!task || readTask(task, node, targetPortOf(svc.Spec) ?? 0).kind === "exited") break;
      await sleep(POLL_MS);
    }
    await this.keepLog(svc.ID, instanceId);
    // Scaled to 0, the stopped task is marked for removal and the manager's task reaper deletes
    // it soon after. Removing the service in that window crashed Debian's Docker 20.10 manager
    // (swarmkit's SetServiceTasksRemove reads back a task the reaper just deleted: a nil pointer,
    // seen in this project's CI): so the service goes only once its tasks are gone, or after
    // REAP_WAIT_MS if a manager keeps them.
    for (const until = Date.now() + REAP_WAIT_MS; Date.now() < until; await sleep(POLL_MS)) {
      if ((await this.tasksOf([svc.ID])).length === 0) break;
    }
    try {
      await this.docker.getService(svc.ID).remove();
    } catch (e) {
      if (statusOf(e) !== 404) throw translateDockerError(e, `remove instance ${instanceId}`);
    }
  }

  async list(service: string): Promise<ObservedInstance[]> {
    const until = Date.now() + ADOPT_WAIT_MS;
    for (;;) {
      const { out, unsettled } = await this.listOnce(service);
      // A launch an earlier controller left half-way (scheduled, pulling): wait (bounded) until
      // it runs or fails, so adoption records it with its address instead of without one.
      if (unsettled === 0 || Date.now() >= until) return out;
      await sleep(POLL_MS * 2);
    }
  }

  /** The last `lines` lines of the instance's output, from the engine (service logs) or the copy kept when it was removed. */
  async readLogs(instanceId: string, opts: { lines: number }): Promise<string | undefined> {
    if (!SAFE_SEGMENT.test(instanceId)) return undefined;
    const lines = Math.max(1, Math.floor(opts.lines));
    const svc = await this.findService(instanceId);
    if (svc) return this.serviceLogs(svc.ID, lines);
    const kept = this.keptLogPath(instanceId);
    if (!kept || !existsSync(kept)) return undefined;
    return readFileSync(kept, "utf8").split("\n").slice(-lines - 1).join("\n");
  }

  keptLogs(service: string): string[] {
    const dir = this.opts.logDir;
    if (!dir || !existsSync(dir)) return [];
    return readdirSync(dir).filter((d) => d.startsWith(`${service}-`) && existsSync(join(dir, d, "log")));
  }

  // ---------------------------------------------------------------- private

  private stopGraceMs(): number {
    return this.opts.stopGraceMs ?? 10_000;
  }

  private async listOnce(service: string): Promise<{ out: ObservedInstance[]; unsettled: number }> {
    const services = await this.servicesOf(service);
    if (services.length === 0) return { out: [], unsettled: 0 };
    const tasks = await this.tasksOf(services.map((s) => s.ID));
    const nodes = await this.nodes();
    const byService = new Map<string, SwarmTask[]>();
    for (const t of tasks as (SwarmTask & { ServiceID?: string })[]) {
      const k = t.ServiceID ?? "";
      byService.set(k, [...(byService.get(k) ?? []), t]);
    }
    let unsettled = 0;
    const out = services.map((s) => {
      const task = currentTask(byService.get(s.ID) ?? []);
      const nodeId = task?.NodeID || pinnedNode(s.Spec);
      const node = nodeId ? nodes.find((n) => n.ID === nodeId) : undefined;
      const seen = observeInstance(s, task, node);
      const launching = this.pending.has(seen.id) || this.launchesInFlight.has(seen.id);
      if (seen.state === "running" && seen.address === "" && !launching && (s.Spec.Mode?.Replicated?.Replicas ?? 1) > 0) unsettled++;
      return seen;
    });
    return { out: out.sort((a, b) => a.startedAt - b.startedAt || a.id.localeCompare(b.id)), unsettled };
  }

  private async servicesOf(service: string): Promise<SwarmService[]> {
    try {
      return (await this.docker.listServices({ filters: { label: [`${LABEL.service}=${service}`, LABEL.instance] } } as never)) as unknown as SwarmService[];
    } catch (e) {
      throw translateDockerError(e, `list the instances of ${service}`);
    }
  }

  private async tasksOf(serviceIds: string[]): Promise<SwarmTask[]> {
    if (serviceIds.length === 0) return [];
    try {
      return (await this.docker.listTasks({ filters: JSON.stringify({ service: serviceIds }) })) as SwarmTask[];
    } catch (e) {
      throw translateDockerError(e, "list the tasks of the instances");
    }
  }

  private async nodes(fresh = false): Promise<SwarmNode[]> {
    const now = Date.now();
    if (!fresh && this.nodesCache && now - this.nodesCache.at < (this.opts.nodeCacheMs ?? 500)) return this.nodesCache.nodes;
    let nodes: SwarmNode[];
    try {
      nodes = (await this.docker.listNodes()) as SwarmNode[];
    } catch (e) {
      throw translateDockerError(e, "list the swarm's nodes");
    }
    this.nodesCache = { at: now, nodes };
    return nodes;
  }

  /** The instance's service, if it exists and is kiln's. */
  private async findService(instanceId: string): Promise<SwarmService | undefined> {
    let s: SwarmService;
    try {
      s = (await this.docker.getService(serviceName(instanceId)).inspect()) as SwarmService;
    } catch (e) {
      if (statusOf(e) === 404) return undefined;
      throw translateDockerError(e, `inspect instance ${instanceId}`);
    }
    if (s.Spec.Labels?.[LABEL.instance] !== instanceId) {
      throw providerError(`a Swarm service named ${serviceName(instanceId)} exists and is not kiln instance ${instanceId}`, `remove it (\`docker service rm ${serviceName(instanceId)}\`) or let kiln choose another instance id`, instanceId);
    }
    return s;
  }

  private async launchOnce(req: LaunchRequest): Promise<ObservedInstance> {
    for (const [what, v] of [["instance id", req.instanceId], ["service", req.service]] as const) {
      if (!SAFE_SEGMENT.test(v)) throw providerError(`${what} "${v}" is not a safe name`, "use letters, digits, '.', '_' and '-' (at most 128)", req.instanceId);
    }
    const bad = badEnvName(req.env);
    if (bad !== undefined) throw providerError(`environment variable ${JSON.stringify(bad)} cannot be passed`, "names may not be empty or contain '=' or NUL, values may not contain NUL", req.instanceId);
    if (req.volumes.length > 0) {
      throw providerError(
        `provider swarm does not run declared volumes (${req.volumes.map((v) => v.name).join(", ")}): a volume lives on one node, and kiln places instances on any node`,
        "keep state in a database or object store outside the fleet, or run this service with provider docker or local",
        req.instanceId,
      );
    }
    this.launchesInFlight.add(req.instanceId);
    try {
      const existing = await this.findService(req.instanceId);
      if (existing) return await this.waitRunning(existing.ID, req.instanceId, false);

      const config = ((await readImage(this.opts.store, req.digest)).config.config ?? {}) as EngineImageConfig & { User?: string };
      if (!config.Entrypoint?.length && !config.Cmd?.length)
        throw providerError(`image ${req.digest} has no entrypoint or cmd`, "set image.entrypoint / image.cmd in kiln.yaml and bake again", req.digest);
      const user = (config.User ?? "").trim();
      // A numeric user is checked here; a name is resolved by the engine in the image, so only "root" is refused by name.
      const numeric = /^\d+(:\d+)?$/.test(user) || user === "" ? resolveImageUser(user, undefined, undefined) : undefined;
      if (numeric && !numeric.ok) throw providerError(numeric.reason, numeric.hint, req.digest);
      if (/^root(:|$)/.test(user)) throw providerError("the image runs as root", 'set image.user in kiln.yaml to a non-root "UID:GID" such as "1000:1000"', req.digest);

      const image = await this.imageFor(req);
      const containerPort = imagePort(config);
      const constraints = await this.placeAndReserve(req);
      const spec = planService({ req, image, containerPort, user, constraints, stopGraceMs: this.stopGraceMs(), tmpSizeBytes: this.opts.tmpSizeBytes ?? 64 * 1024 * 1024 });
      let id: string;
      try {
        const auth = this.opts.credentials && this.opts.registry ? { key: registryAuth(this.opts.credentials, registryTarget(this.opts.registry, req.service).registry) } : undefined;
        id = ((await this.docker.createService(auth as never, spec as never)) as unknown as { id?: string; ID?: string } | undefined)?.id ?? "";
      } catch (e) {
        // 409: a concurrent launch of the same id (another controller) created it first
        if (statusOf(e) !== 409) throw translateDockerError(e, `create the Swarm service for ${req.instanceId}`);
        const raced = await this.findService(req.instanceId);
        if (!raced) throw translateDockerError(e, `create the Swarm service for ${req.instanceId}`);
        return await this.waitRunning(raced.ID, req.instanceId, false);
      } finally {
        this.pending.delete(req.instanceId);
      }
      if (!id) id = (await this.findService(req.instanceId))?.ID ?? "";
      return await this.waitRunning(id, req.instanceId, true);
    } finally {
      this.launchesInFlight.delete(req.instanceId);
      this.pending.delete(req.instanceId);
    }
  }

  /**
   * The constraints of a new instance: the user's, plus the node kiln chose. Node choice and
   * reservation happen one launch at a time, so instances launched together spread too.
   */
  private placeAndReserve(req: LaunchRequest): Promise<string[]> {
    const user = this.opts.constraints ?? [];
    const run = this.placing.then(async () => {
      if (!this.opts.registry) {
        // Only the manager's engine holds the image: that is where every instance runs.
        return [...user, `node.id==${await this.managerNodeId()}`];
      }
      if (this.opts.spread === false) return user;
      const nodes = await this.nodes(true);
      const placed: Placed[] = [];
      for (const s of await this.servicesOf(req.service)) {
        const node = pinnedNode(s.Spec);
        if (node && (s.Spec.Mode?.Replicated?.Replicas ?? 1) > 0) placed.push({ node, release: s.Spec.Labels?.[LABEL.release] ?? "" });
      }
      for (const p of this.pending.values()) if (p.service === req.service) placed.push(p);
      const node = chooseNode(nodes, placed, req.release, user);
      if (!node) {
        throw providerError(
          `no Ready, Active node of the swarm satisfies the placement constraints${user.length ? ` (${user.join(", ")})` : ""}`,
          "see `docker node ls` on the manager: bring a node back, or relax swarm.constraints in kiln.yaml",
          req.instanceId,
        );
      }
      this.pending.set(req.instanceId, { node: node.ID, release: req.release, service: req.service });
      return [...user, `node.id==${node.ID}`];
    });
    this.placing = run.catch(() => undefined);
    return run;
  }

  private managerNodeId(): Promise<string> {
    this.managerNode ??= ensureManager(this.docker).catch((e) => {
      this.managerNode = undefined;
      throw e;
    });
    return this.managerNode;
  }

  /** The reference tasks run: pushed by digest to the registry the nodes pull from, or loaded into the manager's engine. */
  private imageFor(req: LaunchRequest): Promise<string> {
    let p = this.images.get(req.digest);
    if (!p) {
      const registry = this.opts.registry;
      p = registry
        ? pushImage(this.opts.store, req.digest, registryTarget(registry, req.service), { credentials: this.opts.credentials, insecure: this.opts.insecureRegistry }).then((r) => r.reference)
        : ensureImage(this.docker, this.opts.store, req.digest);
      p.catch(() => this.images.delete(req.digest));
      this.images.set(req.digest, p);
    }
    return p;
  }

  /**
   * Waits until the instance's task runs and its published port is read back; a task that
   * fails first (or a launch past its deadline) takes its service with it when this object
   * created it, and the launch fails with the engine's reason.
   */
  private async waitRunning(serviceId: string, instanceId: string, created: boolean): Promise<ObservedInstance> {
    const deadline = Date.now() + (this.opts.launchTimeoutMs ?? 120_000);
    let last = "no task yet";
    for (;;) {
      let svc: SwarmService;
      try {
        svc = (await this.docker.getService(serviceId).inspect()) as SwarmService;
      } catch (e) {
        if (statusOf(e) === 404) throw providerError(`instance ${instanceId} vanished while it started`, "something else removed its Swarm service: see `docker service ls` on the manager", instanceId);
        throw translateDockerError(e, `inspect instance ${instanceId}`);
      }
      const task = currentTask(await this.tasksOf([serviceId]));
      const nodeId = task?.NodeID || pinnedNode(svc.Spec);
      const node = nodeId ? (await this.nodes()).find((n) => n.ID === nodeId) : undefined;
      const r = readTask(task, node, targetPortOf(svc.Spec) ?? 0);
      if (r.kind === "running") return observeInstance(svc, task, node);
      if (r.kind === "exited" && !created) return observeInstance(svc, task, node);
      if (r.kind === "exited" || Date.now() >= deadline) {
        const why = r.kind === "exited" ? `its task ${r.reason}` : `it was not running after ${Math.round((this.opts.launchTimeoutMs ?? 120_000) / 1000)} s (task ${last})`;
        if (created) await this.docker.getService(serviceId).remove().catch(() => undefined); // nothing half-made stays behind
        throw providerError(`instance ${instanceId} did not start on the swarm: ${why}`, "see `docker service ps --no-trunc` on the manager: an image the node cannot pull, or no node that satisfies the constraints", instanceId);
      }
      last = `${task?.Status?.State ?? "not created"}${task?.Status?.Err ? `: ${task.Status.Err}` : ""}`;
      await sleep(POLL_MS);
    }
  }

  private async serviceLogs(serviceId: string, tail?: number): Promise<string> {
    const svc = this.docker.getService(serviceId) as unknown as { logs(o: Record<string, unknown>): Promise<unknown> };
    const data = await Promise.race([
      svc.logs({ stdout: true, stderr: true, follow: false, ...(tail === undefined ? {} : { tail }) }),
      sleep(LOG_TIMEOUT_MS).then(() => {
        throw providerError("the swarm did not return the instance's log in time", "its node may be down: see `docker node ls` on the manager");
      }),
    ]).catch((e) => {
      throw translateDockerError(e, "read the instance's log");
    });
    return demuxLogs(Buffer.isBuffer(data) ? data : Buffer.from(String(data ?? "")));
  }

  private keptLogPath(instanceId: string): string | undefined {
    return this.opts.logDir ? join(this.opts.logDir, instanceId, "log") : undefined;
  }

  private async keepLog(serviceId: string, instanceId: string): Promise<void> {
    const file = this.keptLogPath(instanceId);
    if (!file) return;
    try {
      const bytes = Buffer.from(await this.serviceLogs(serviceId));
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, bytes.length > KEPT_LOG_BYTES ? bytes.subarray(bytes.length - KEPT_LOG_BYTES) : bytes);
    } catch {
      // A log that cannot be read (a lost node) must not keep an instance's service around.
    }
  }
}

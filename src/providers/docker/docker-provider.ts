// The Docker provider: every instance is a container on the local Docker Engine, created
// from the image's engine ID (see engine.ts for how images get there) with the isolation
// container-plan.ts spells out.
//
// The engine is the durable record: containers carry their service, release, digest and
// instance id as labels and are named kiln-<instanceId>, so a restarted controller finds
// (adopts) them with one label query, and launching an id twice finds the first container.
// Engine errors become KilnErrors here, at the boundary.

import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type Docker from "dockerode";
import tar from "tar-stream";
import { KilnError } from "../../errors.js";
import { readImage, type Store } from "../../image/index.js";
import { resolveImageUser } from "../local/image-user.js";
import type { LaunchRequest, ObservedInstance, Provider } from "../provider.js";
import { LaunchFlights, SAFE_SEGMENT } from "../single-flight.js";
import { digestLabel, engineVolumeName, LABEL } from "../../derive/index.js";
import { freeLoopbackPort } from "../../net.js";
import {
  HOST_PORT_LABEL,
  PREP_VOLUME_ROOT,
  badEnvName,
  containerName,
  demuxLogs,
  engineTime,
  imagePort,
  planContainer,
  planPrepContainer,
  prepContainerName,
  type EngineImageConfig,
} from "./container-plan.js";
import { ensureImage, translateDockerError } from "./engine.js";

export interface DockerProviderOptions {
  docker: Docker;
  /** the image store images are loaded from */
  store: Store;
  /** size of each instance's /tmp tmpfs (default 64 MiB) */
  tmpSizeBytes?: number;
  /**
   * Where a container's log is kept when it is removed (`DIR/<instance>/log`), so that `kiln logs`
   * still shows why a quarantined or replaced instance went; absent: logs go with the container.
   */
  logDir?: string;
}

/** At most this much of a removed container's output is kept (the end of it). */
const KEPT_LOG_BYTES = 1 << 20;

const POLL_MS = 25;
/** A port handed to a launch stays reserved this long (its container may not exist yet). */
const HANDED_OUT_MS = 60_000;
const KILL_WAIT_MS = 10_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const statusOf = (e: unknown) => (e as { statusCode?: number }).statusCode;

function providerError(message: string, hint: string, where?: string, cause?: unknown): KilnError {
  return new KilnError("KILN_E_PROVIDER", message, { hint, cause, details: where ? [{ where, message }] : undefined });
}

/** A user given as numbers needs no /etc/passwd: refuse root before loading anything. */
function earlyUserCheck(user: string): ReturnType<typeof resolveImageUser> | undefined {
  return /^\s*\d+:\d+\s*$/.test(user) || user.trim() === "" ? resolveImageUser(user, undefined, undefined) : undefined;
}

/** What list() learned by inspecting a container; fixed for as long as it stays in that state. */
interface Seen {
  key: string;
  observed: ObservedInstance;
}

export class DockerProvider implements Provider {
  readonly name = "docker";

  /** kiln.yaml `resources` go to the engine (engine-limits.ts), which enforces them with the node's cgroups. */
  limitsEnforcement(): "engine" {
    return "engine";
  }
  private readonly docker: Docker;
  private readonly opts: DockerProviderOptions;
  private readonly launches = new LaunchFlights<ObservedInstance>();
  /** container id → its observation, so the reconcile loop's list() costs one engine call when nothing changed */
  private readonly seen = new Map<string, Seen>();
  /** "volume uid:gid" whose top directory this object already handed to the image user */
  private readonly owned = new Set<string>();
  /** engine image ID → its user resolved against its own /etc/passwd (an image never changes) */
  private readonly users = new Map<string, { uid: number; gid: number }>();
  /** host ports given to host-network launches → when (a concurrent launch has no container yet) */
  private readonly handedOut = new Map<number, number>();

  constructor(opts: DockerProviderOptions) {
    this.opts = opts;
    this.docker = opts.docker;
  }

  launch(req: LaunchRequest): Promise<ObservedInstance> {
    return this.launches.run(req.instanceId, () => this.launchOnce(req));
  }

  async terminate(instanceId: string, opts: { graceMs: number }): Promise<void> {
    if (!SAFE_SEGMENT.test(instanceId)) return;
    await this.launches.settled(instanceId);
    const c = this.docker.getContainer(containerName(instanceId));
    let info = await this.inspect(c, `inspect instance ${instanceId}`);
    if (!info) return;
    if (info.State.Running) {
      // Polite first: the image's stop signal (SIGTERM unless it says otherwise) to the
      // init, which passes it to the app; SIGKILL once the grace period is over.
      const signal = (info.Config as { StopSignal?: string }).StopSignal || "SIGTERM";
      await this.kill(c, signal, instanceId);
      info = await this.waitStopped(c, Math.max(0, opts.graceMs), instanceId);
      if (info?.State.Running) {
        await this.kill(c, "SIGKILL", instanceId);
        info = await this.waitStopped(c, KILL_WAIT_MS, instanceId);
        if (info?.State.Running)
          throw providerError(`instance ${instanceId} did not stop after SIGKILL`, "check the dockerd log and `docker inspect` the container", instanceId);
      }
    }
    await this.keepLog(c, instanceId);
    try {
      await c.remove({ force: true, v: false });
    } catch (e) {
      // 404: gone already; 409: another removal is in progress
      if (statusOf(e) !== 404 && statusOf(e) !== 409) throw translateDockerError(e, `remove instance ${instanceId}`);
    }
  }

  async list(service: string): Promise<ObservedInstance[]> {
    let containers: Docker.ContainerInfo[];
    try {
      containers = await this.docker.listContainers({ all: true, filters: { label: [`${LABEL.service}=${service}`, LABEL.instance] } });
    } catch (e) {
      throw translateDockerError(e, `list the instances of ${service}`);
    }
    const out: ObservedInstance[] = [];
    const live = new Set<string>();
    for (const c of containers) {
      live.add(c.Id);
      // Fixed while the container stays in this state (and, running, on this host port).
      const key = `${c.State}/${c.Ports.map((p) => p.PublicPort).join(",")}`;
      const cached = this.seen.get(c.Id);
      if (cached?.key === key) {
        out.push({ ...cached.observed });
        continue;
      }
      const info = await this.inspect(this.docker.getContainer(c.Id), `inspect container ${c.Id.slice(0, 12)}`);
      if (!info) continue; // removed between the list and the inspect
      const observed = this.observe(info);
      this.seen.set(c.Id, { key, observed });
      out.push({ ...observed });
    }
    for (const [id, s] of this.seen) if (s.observed.service === service && !live.has(id)) this.seen.delete(id);
    return out.sort((a, b) => a.startedAt - b.startedAt || a.id.localeCompare(b.id));
  }

  /** The last `lines` lines of the instance's output (stdout and stderr); undefined for an unknown instance. */
  async readLogs(instanceId: string, opts: { lines: number }): Promise<string | undefined> {
    if (!SAFE_SEGMENT.test(instanceId)) return undefined;
    try {
      return await logText(this.docker.getContainer(containerName(instanceId)), Math.max(1, Math.floor(opts.lines)));
    } catch (e) {
      if (statusOf(e) !== 404) throw translateDockerError(e, `read the log of ${instanceId}`);
    }
    // Removed: what terminate kept of it, if anything.
    const kept = this.keptLogPath(instanceId);
    if (!kept || !existsSync(kept)) return undefined;
    return readFileSync(kept, "utf8").split("\n").slice(-Math.max(1, Math.floor(opts.lines)) - 1).join("\n");
  }

  /** Instances whose log terminate kept (their containers are gone), for `kiln logs`. */
  keptLogs(service: string): string[] {
    const dir = this.opts.logDir;
    if (!dir || !existsSync(dir)) return [];
    return readdirSync(dir).filter((d) => d.startsWith(`${service}-`) && existsSync(join(dir, d, "log")));
  }

  // ---------------------------------------------------------------- private

  private keptLogPath(instanceId: string): string | undefined {
    return this.opts.logDir ? join(this.opts.logDir, instanceId, "log") : undefined;
  }

  /** Copy the end of a stopped container's output next to the local provider's logs, before removal. */
  private async keepLog(c: Docker.Container, instanceId: string): Promise<void> {
    const file = this.keptLogPath(instanceId);
    if (!file) return;
    try {
      const bytes = Buffer.from(await logText(c));
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, bytes.length > KEPT_LOG_BYTES ? bytes.subarray(bytes.length - KEPT_LOG_BYTES) : bytes);
    } catch {
      // A log that cannot be read or kept must not keep a container running: removal goes on.
    }
  }

  private async inspect(c: Docker.Container, doing: string): Promise<Docker.ContainerInspectInfo | undefined> {
    try {
      return await c.inspect();
    } catch (e) {
      if (statusOf(e) === 404) return undefined;
      throw translateDockerError(e, doing);
    }
  }

  private async kill(c: Docker.Container, signal: string, instanceId: string): Promise<void> {
    try {
      await c.kill({ signal });
    } catch (e) {
      // 409: not running any more; 404: gone. Both are what we wanted.
      if (statusOf(e) !== 409 && statusOf(e) !== 404) throw translateDockerError(e, `signal instance ${instanceId}`);
    }
  }

  private async waitStopped(c: Docker.Container, ms: number, instanceId: string): Promise<Docker.ContainerInspectInfo | undefined> {
    const deadline = Date.now() + ms;
    for (;;) {
      const info = await this.inspect(c, `inspect instance ${instanceId}`);
      if (!info?.State.Running || Date.now() >= deadline) return info;
      await sleep(Math.min(POLL_MS, Math.max(1, deadline - Date.now())));
    }
  }

  private observe(info: Docker.ContainerInspectInfo): ObservedInstance {
    const labels = info.Config.Labels ?? {};
    const running = info.State.Running;
    const base: ObservedInstance = {
      id: labels[LABEL.instance] ?? info.Name.replace(/^\/kiln-/, ""),
      service: labels[LABEL.service] ?? "",
      release: labels[LABEL.release] ?? "",
      digest: digestLabel(labels) ?? "",
      address: running ? this.addressOf(info) ?? "" : "",
      state: running ? "running" : "exited",
      startedAt: engineTime(info.State.StartedAt) ?? engineTime(info.Created) ?? 0,
    };
    if (running && info.State.Pid > 0) base.pid = info.State.Pid; // the container's init, as the host sees it
    // A container created but never started (a launch interrupted between create and start) has no code.
    if (!running) base.exitCode = engineTime(info.State.StartedAt) === undefined ? null : info.State.ExitCode;
    return base;
  }

  private addressOf(info: Docker.ContainerInspectInfo): string | undefined {
    const hostPort = Number(info.Config.Labels?.[HOST_PORT_LABEL]);
    if (info.HostConfig.NetworkMode === "host") return Number.isInteger(hostPort) && hostPort > 0 ? `127.0.0.1:${hostPort}` : undefined;
    const ports = info.NetworkSettings.Ports ?? {};
    for (const bindings of Object.values(ports)) {
      const b = (bindings ?? []).find((x) => x.HostIp === "127.0.0.1" && Number(x.HostPort) > 0);
      if (b) return `127.0.0.1:${b.HostPort}`;
    }
    return undefined;
  }

  private async launchOnce(req: LaunchRequest): Promise<ObservedInstance> {
    for (const [what, v] of [["instance id", req.instanceId], ["service", req.service], ...req.volumes.map((vol) => ["volume name", vol.name] as const)] as const) {
      if (!SAFE_SEGMENT.test(v)) throw providerError(`${what} "${v}" is not a safe name`, "use letters, digits, '.', '_' and '-' (at most 128)", req.instanceId);
    }
    const bad = badEnvName(req.env);
    if (bad !== undefined) throw providerError(`environment variable ${JSON.stringify(bad)} cannot be passed`, "names may not be empty or contain '=' or NUL, values may not contain NUL", req.instanceId);

    const c = this.docker.getContainer(containerName(req.instanceId));
    const existing = await this.inspect(c, `inspect instance ${req.instanceId}`);
    if (existing) return this.adopt(c, existing, req);

    // The run configuration is read from the store (the same config blob the engine loads):
    // a bad image is refused before anything is loaded or created.
    const config = ((await readImage(this.opts.store, req.digest)).config.config ?? {}) as EngineImageConfig;
    if (!config.Entrypoint?.length && !config.Cmd?.length)
      throw providerError(`image ${req.digest} has no entrypoint or cmd`, "set image.entrypoint / image.cmd in kiln.yaml and bake again", req.digest);
    const early = earlyUserCheck(config.User ?? "");
    if (early && !early.ok) throw providerError(early.reason, early.hint, req.digest);
    const imageId = await ensureImage(this.docker, this.opts.store, req.digest);

    const { uid, gid } = await this.prepare(req, imageId, config.User ?? "");
    const hostNetwork = req.network === "host";
    const containerPort = hostNetwork ? await this.freeHostPort() : imagePort(config);
    const plan = planContainer({ req, imageId, uid, gid, containerPort, hostNetwork, tmpSizeBytes: this.opts.tmpSizeBytes ?? 64 * 1024 * 1024 });
    try {
      await this.docker.createContainer(plan);
    } catch (e) {
      // 409: a concurrent launch of the same id (another controller) created it first
      if (statusOf(e) !== 409) throw translateDockerError(e, `create the container for ${req.instanceId}`);
      const raced = await this.inspect(c, `inspect instance ${req.instanceId}`);
      if (!raced) throw translateDockerError(e, `create the container for ${req.instanceId}`);
      return this.adopt(c, raced, req);
    }
    return this.start(c, req);
  }

  /**
   * A free 127.0.0.1 port for an instance in the host's network. Another process may take it
   * before the app binds it (the instance then fails its health check and is replaced), but
   * kiln never gives one port twice: the ports of kiln's own host-network containers (any
   * service, running or about to be restarted by nobody: all of them) and of launches of the
   * last minute are skipped.
   */
  private async freeHostPort(): Promise<number> {
    const now = Date.now();
    for (const [p, at] of this.handedOut) if (now - at > HANDED_OUT_MS) this.handedOut.delete(p);
    let taken: Set<number>;
    try {
      const cs = await this.docker.listContainers({ all: true, filters: { label: [HOST_PORT_LABEL] } });
      taken = new Set(cs.map((c) => Number(c.Labels[HOST_PORT_LABEL])));
    } catch (e) {
      throw translateDockerError(e, "list the host ports of kiln's containers");
    }
    for (let i = 0; i < 20; i++) {
      const port = await freeLoopbackPort();
      if (!taken.has(port) && !this.handedOut.has(port)) {
        this.handedOut.set(port, now);
        return port;
      }
    }
    throw providerError("no free 127.0.0.1 port found for an instance in the host's network after 20 tries", "free some ports, or use docker.network: bridge");
  }

  /** An existing container for this id: ours (by label) is the instance; start it if a launch was interrupted. */
  private async adopt(c: Docker.Container, info: Docker.ContainerInspectInfo, req: LaunchRequest): Promise<ObservedInstance> {
    if (info.Config.Labels?.[LABEL.instance] !== req.instanceId)
      throw providerError(
        `a container named ${containerName(req.instanceId)} exists and is not a kiln instance`,
        `remove it (\`docker rm -f ${containerName(req.instanceId)}\`) or let kiln choose another instance id`,
        req.instanceId,
      );
    if (info.State.Status === "created") return this.start(c, req);
    return this.observe(info);
  }

  private async start(c: Docker.Container, req: LaunchRequest): Promise<ObservedInstance> {
    try {
      await c.start();
    } catch (e) {
      // 304: already started (a concurrent launch)
      if (statusOf(e) !== 304) {
        await c.remove({ force: true }).catch(() => undefined); // nothing half-made stays behind
        throw translateDockerError(e, `start the container for ${req.instanceId}`);
      }
    }
    const info = await this.inspect(c, `inspect instance ${req.instanceId}`);
    if (!info) throw providerError(`instance ${req.instanceId} vanished right after it started`, "something else removed the container: check `docker events`", req.instanceId);
    const seen = this.observe(info);
    if (seen.state === "running" && !seen.address) {
      await c.remove({ force: true }).catch(() => undefined);
      throw providerError(`the engine published no 127.0.0.1 port for ${req.instanceId}`, "check the dockerd configuration (userland proxy, iptables)", req.instanceId);
    }
    return seen;
  }

  /**
   * Resolves the image user (refusing root) and hands each declared volume's top directory
   * to it. Needs the image's /etc/passwd only when the user is a name, and the helper
   * container only for that or for a volume this object has not prepared yet.
   */
  private async prepare(req: LaunchRequest, imageId: string, user: string): Promise<{ uid: number; gid: number }> {
    const vols = req.volumes.map((v) => ({ ...v, volume: engineVolumeName(req.service, v.name) }));
    const known = this.users.get(imageId);
    let resolved = earlyUserCheck(user) ?? (known ? { ok: true as const, ...known } : undefined);
    const todo = (r: { uid: number; gid: number }) => vols.filter((v) => !this.owned.has(`${v.volume} ${r.uid}:${r.gid}`));
    if (resolved?.ok && todo(resolved).length === 0) return { uid: resolved.uid, gid: resolved.gid };
    if (resolved && !resolved.ok) throw providerError(resolved.reason, resolved.hint, req.digest);

    for (const v of vols) {
      try {
        await this.docker.createVolume({ Name: v.volume, Labels: { [LABEL.service]: req.service, [LABEL.volume]: v.name } });
      } catch (e) {
        throw translateDockerError(e, `create volume ${v.volume}`);
      }
    }
    const prep = this.docker.getContainer(prepContainerName(req.instanceId));
    await prep.remove({ force: true }).catch(() => undefined); // left by an interrupted launch
    try {
      await this.docker.createContainer(planPrepContainer(req, imageId));
    } catch (e) {
      throw translateDockerError(e, `prepare the volumes of ${req.instanceId}`);
    }
    try {
      if (!resolved) resolved = resolveImageUser(user, await this.readFile(prep, "/etc/passwd"), await this.readFile(prep, "/etc/group"));
      if (!resolved.ok) throw providerError(resolved.reason, resolved.hint, req.digest);
      const r = { uid: resolved.uid, gid: resolved.gid };
      this.users.set(imageId, r);
      const pending = todo(r);
      if (pending.length > 0) {
        const pack = tar.pack();
        pack.entry({ name: `${PREP_VOLUME_ROOT}/`, type: "directory", mode: 0o755, uid: 0, gid: 0, mtime: new Date() });
        for (const v of pending) pack.entry({ name: `${PREP_VOLUME_ROOT}/${v.name}/`, type: "directory", mode: 0o750, uid: r.uid, gid: r.gid, mtime: new Date() });
        pack.finalize();
        const chunks: Buffer[] = [];
        for await (const chunk of pack) chunks.push(chunk as Buffer);
        try {
          await prep.putArchive(Buffer.concat(chunks), { path: "/" });
        } catch (e) {
          throw translateDockerError(e, `set the owner of the volumes of ${req.instanceId}`);
        }
        for (const v of pending) this.owned.add(`${v.volume} ${r.uid}:${r.gid}`);
      }
      return r;
    } finally {
      await prep.remove({ force: true, v: false }).catch(() => undefined);
    }
  }

  /** A small text file from the image, through a created container; undefined when missing. */
  private async readFile(c: Docker.Container, path: string): Promise<string | undefined> {
    let stream: NodeJS.ReadableStream;
    try {
      stream = await c.getArchive({ path });
    } catch (e) {
      if (statusOf(e) === 404) return undefined;
      throw translateDockerError(e, `read ${path} from the image`);
    }
    return new Promise<string | undefined>((resolve, reject) => {
      const extract = tar.extract();
      let text: string | undefined;
      extract.on("entry", (header, body, next) => {
        const chunks: Buffer[] = [];
        body.on("data", (d: unknown) => chunks.push(d as Buffer));
        body.on("end", () => {
          if (text === undefined && header.type === "file" && header.size !== undefined && header.size <= 1 << 20) text = Buffer.concat(chunks).toString("utf8");
          next();
        });
        body.resume();
      });
      extract.on("finish", () => resolve(text));
      extract.on("error", reject);
      stream.pipe(extract);
    });
  }
}

/** A container's output (stdout and stderr, demultiplexed), all of it or its last `tail` lines. */
async function logText(c: Docker.Container, tail?: number): Promise<string> {
  const buf = await c.logs({ stdout: true, stderr: true, follow: false, ...(tail === undefined ? {} : { tail }) });
  return demuxLogs(Buffer.isBuffer(buf) ? buf : Buffer.from(buf as unknown as string));
}

/** Removes the service's declared volumes (its state). Refused by the engine while a container uses one. */
export async function removeServiceVolumes(docker: Docker, service: string): Promise<string[]> {
  let volumes: Docker.VolumeInspectInfo[];
  try {
    volumes = (await docker.listVolumes({ filters: { label: [`${LABEL.service}=${service}`] } })).Volumes ?? [];
  } catch (e) {
    throw translateDockerError(e, `list the volumes of ${service}`);
  }
  const removed: string[] = [];
  for (const v of volumes) {
    try {
      await docker.getVolume(v.Name).remove();
      removed.push(v.Name);
    } catch (e) {
      if (statusOf(e) !== 404) throw translateDockerError(e, `remove volume ${v.Name}`);
    }
  }
  return removed;
}

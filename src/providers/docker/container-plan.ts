// What the Docker provider asks the engine for, as data: pure functions from a launch
// request and the image's config to the engine's create options, so the isolation every
// instance gets is visible in one place and tested by equality.
//
// Every instance container:
//   - runs the image by its engine ID ("sha256:<config digest>"), never by a name that could move;
//   - as the image's user, resolved to numbers and never root;
//   - on a read-only root filesystem, with a private tmpfs at /tmp and the declared volumes
//     (named volumes kiln-<service>-<volume>) as the only writable places;
//   - with no capabilities, no-new-privileges, and a tiny init (docker-init) as PID 1 so
//     SIGTERM reaches the app even when it installs no handler and zombies are reaped;
//   - publishing its port on 127.0.0.1 only, on a host port the engine picks — or, with
//     `docker.network: host`, in the host's network, listening on 127.0.0.1 at a port kiln
//     picks (recorded in a label, so an adopted instance's address is known);
//   - never restarted by the engine: kiln replaces instances, it does not revive them.

import type Docker from "dockerode";
import { engineVolumeName, LABEL } from "../../derive/index.js";
import type { LaunchRequest } from "../provider.js";
import { containerLimits } from "./engine-limits.js";

/** The port an app listens on when its image declares none. */
export const DEFAULT_CONTAINER_PORT = 8080;
/** Where the helper container mounts each volume while kiln sets its owner. */
export const PREP_VOLUME_ROOT = "kiln-volumes";

/** The 127.0.0.1 port of an instance in the host's network (its address, since nothing is published). */
export const HOST_PORT_LABEL = "dev.kiln.host-port";

export const containerName = (instanceId: string) => `kiln-${instanceId}`;
export const prepContainerName = (instanceId: string) => `kiln-${instanceId}-prep`;

/** The subset of an engine image config the provider reads. */
export interface EngineImageConfig {
  User?: string;
  ExposedPorts?: Record<string, unknown>;
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  StopSignal?: string;
}

/** The image's first declared TCP port ("8080/tcp"), lowest first; the default when it declares none. */
export function imagePort(config: EngineImageConfig): number {
  const ports = Object.keys(config.ExposedPorts ?? {})
    .map((k) => /^(\d+)\/tcp$/.exec(k))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .filter((p) => p > 0 && p < 65536)
    .sort((a, b) => a - b);
  return ports[0] ?? DEFAULT_CONTAINER_PORT;
}

export interface ContainerPlanInput {
  req: LaunchRequest;
  /** engine image ID, "sha256:<config digest>" */
  imageId: string;
  uid: number;
  gid: number;
  /** the port the app listens on inside the container; in the host's network, on the host's 127.0.0.1 */
  containerPort: number;
  tmpSizeBytes: number;
  /** run in the host's network (req.network "host"): containerPort is then a host port kiln chose */
  hostNetwork?: boolean;
}

/**
 * The environment of the app: declared env, then what the provider adds. The image's own env
 * is merged under it by the engine. HOST=0.0.0.0 because inside its own network namespace
 * the app must listen on the container's interface for the published port to reach it; the
 * port is published on the host's 127.0.0.1 only. In the host's network there is no such
 * namespace: HOST=127.0.0.1 keeps the app off the host's other interfaces.
 */
export function containerEnv(req: LaunchRequest, containerPort: number, hostNetwork = false): string[] {
  const env = new Map(Object.entries(req.env));
  env.set("PORT", String(containerPort));
  env.set("HOST", hostNetwork ? "127.0.0.1" : "0.0.0.0");
  env.set("KILN_INSTANCE_ID", req.instanceId);
  return [...env].map(([k, v]) => `${k}=${v}`);
}

/** A variable the engine cannot pass faithfully, or undefined when all are fine. */
export function badEnvName(env: Record<string, string>): string | undefined {
  return Object.entries(env).find(([k, v]) => !k || k.includes("=") || k.includes("\0") || v.includes("\0"))?.[0];
}

export function planContainer(input: ContainerPlanInput): Docker.ContainerCreateOptions {
  const { req, containerPort } = input;
  const host = input.hostNetwork === true;
  const port = `${containerPort}/tcp`;
  return {
    name: containerName(req.instanceId),
    Image: input.imageId,
    // The host's network comes with the host's name: the engine refuses another.
    ...(host ? {} : { Hostname: req.instanceId.slice(0, 63) }),
    User: `${input.uid}:${input.gid}`,
    Env: containerEnv(req, containerPort, host),
    ...(host ? {} : { ExposedPorts: { [port]: {} } }),
    Labels: {
      [LABEL.service]: req.service,
      [LABEL.release]: req.release,
      [LABEL.digest]: req.digest,
      [LABEL.instance]: req.instanceId,
      ...(host ? { [HOST_PORT_LABEL]: String(containerPort) } : {}),
    },
    HostConfig: {
      ReadonlyRootfs: true,
      Tmpfs: { "/tmp": `rw,nosuid,nodev,size=${input.tmpSizeBytes}` },
      CapDrop: ["ALL"],
      SecurityOpt: ["no-new-privileges"],
      Init: true,
      // HostPort "" = the engine picks a free one; read back with inspect after start.
      ...(host ? { NetworkMode: "host" } : { PortBindings: { [port]: [{ HostIp: "127.0.0.1", HostPort: "" }] } }),
      Mounts: req.volumes.map((v) => ({ Type: "volume" as const, Source: engineVolumeName(req.service, v.name), Target: v.path, ReadOnly: false })),
      RestartPolicy: { Name: "no" },
      LogConfig: { Type: "json-file", Config: { "max-size": "10m", "max-file": "2" } },
      // kiln.yaml `resources` (engine-limits.ts); nothing when absent
      ...containerLimits(req.resources),
    },
  };
}

/**
 * A container that is created but never started: the image's files are visible to the
 * engine's archive API through it, and the volumes are mounted under /kiln-volumes so their
 * top directory can be given to the image user (a fresh named volume belongs to root).
 * Nothing from the image runs.
 */
export function planPrepContainer(req: LaunchRequest, imageId: string): Docker.ContainerCreateOptions {
  return {
    name: prepContainerName(req.instanceId),
    Image: imageId,
    Entrypoint: ["/kiln-never-started"],
    Cmd: [],
    NetworkDisabled: true,
    Labels: { [LABEL.service]: req.service, [LABEL.role]: "prep" },
    HostConfig: {
      Mounts: req.volumes.map((v) => ({ Type: "volume" as const, Source: engineVolumeName(req.service, v.name), Target: `/${PREP_VOLUME_ROOT}/${v.name}`, ReadOnly: false })),
      RestartPolicy: { Name: "no" },
    },
  };
}

/** Docker's "0001-01-01T00:00:00Z" (never started) and garbage become undefined. */
export function engineTime(s: string | undefined): number | undefined {
  if (!s) return undefined;
  const t = Date.parse(s);
  return Number.isFinite(t) && t > 0 ? t : undefined;
}

/** Split the engine's multiplexed log stream (8-byte frame headers) into text. */
export function demuxLogs(buf: Buffer): string {
  const parts: Buffer[] = [];
  let i = 0;
  while (i + 8 <= buf.length) {
    const kind = buf[i];
    const size = buf.readUInt32BE(i + 4);
    if ((kind !== 0 && kind !== 1 && kind !== 2) || buf[i + 1] !== 0 || buf[i + 2] !== 0 || buf[i + 3] !== 0) {
      // not multiplexed (a TTY container): the rest is raw output
      parts.push(buf.subarray(i));
      return Buffer.concat(parts).toString("utf8");
    }
    parts.push(buf.subarray(i + 8, i + 8 + size));
    i += 8 + size;
  }
  if (i < buf.length) parts.push(buf.subarray(i));
  return Buffer.concat(parts).toString("utf8");
}

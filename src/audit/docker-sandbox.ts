// The audit's Docker backend: a container from the image's engine ID (loaded untagged
// by ensureImage), its root writable as always in Docker, its port published on
// 127.0.0.1 only, declared volumes bound from fresh host directories. Writes come from
// `container.changes()` (docker diff); processes from `container.top()`; listening
// ports from the host's /proc for those processes (the engine runs on this host: its
// socket is local). The container is removed, with its anonymous volumes, at the end.
//
// Inside a container the app must listen on the container's own interfaces for the
// published port to reach it: besides PORT the audit passes HOST=0.0.0.0 (what
// examples/hello reads; an app that always binds 0.0.0.0 ignores it).

import { randomBytes } from "node:crypto";
import { chownSync, mkdirSync } from "node:fs";
import { mkdtemp, rm, lstat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectDocker, ensureImage, pingDocker, translateDockerError, type Docker } from "../providers/docker/engine.js";
import type { Store } from "../image/index.js";
import { uidOf } from "./classify.js";
import { describeProcess, listeningPortsOf } from "./procfs.js";
import type { AuditSandbox, RunConfig } from "./sandbox.js";
import type { PathChange, SandboxProcess } from "./types.js";
import { freeLoopbackPort } from "../net.js";
import { LABEL } from "../derive/index.js";

/** One line of `docker diff`: Kind 0 = changed, 1 = added, 2 = deleted. */
export interface DockerChange {
  Path: string;
  Kind: number;
}

/**
 * docker diff → PathChange. The engine does not say which paths are directories:
 * a path with changes below it is one; `isDirAt` (the container's upper directory,
 * when the host can read it) settles the rest. Pure apart from that callback.
 */
export function fromDockerChanges(changes: readonly DockerChange[], isDirAt: (path: string) => boolean | undefined = () => undefined): PathChange[] {
  const paths = changes.map((c) => c.Path);
  const hasChildren = (p: string) => paths.some((q) => q.startsWith(p === "/" ? "/" : p + "/") && q !== p);
  return changes.map((c) => ({
    path: c.Path,
    change: c.Kind === 1 ? "created" : c.Kind === 2 ? "deleted" : "modified",
    isDir: hasChildren(c.Path) || (isDirAt(c.Path) ?? false),
  }));
}

export async function createDockerSandbox(
  store: Store,
  digest: string,
  cfg: RunConfig,
  opts: { passwd?: string; containerPort: number; log: (line: string) => void },
): Promise<AuditSandbox> {
  const docker: Docker = connectDocker();
  await pingDocker(docker);
  opts.log("  loading the image into the Docker Engine");
  const imageId = await ensureImage(docker, store, digest);

  const dir = await mkdtemp(join(tmpdir(), "kiln-audit-docker-"));
  const uid = uidOf(cfg.user, opts.passwd);
  const gidPart = cfg.user.split(":")[1];
  const gid = gidPart && /^[0-9]+$/.test(gidPart) ? Number(gidPart) : uid;
  const binds = cfg.volumes.map((v) => {
    const hostDir = join(dir, "volumes", v.name);
    mkdirSync(hostDir, { recursive: true, mode: 0o750 });
    if (uid !== undefined && process.geteuid?.() === 0) chownSync(hostDir, uid, gid ?? uid);
    return `${hostDir}:${v.path}`;
  });

  const hostPort = await freeLoopbackPort();
  const env = new Map<string, string>();
  for (const [k, v] of Object.entries(cfg.env)) env.set(k, v);
  env.set("PORT", String(opts.containerPort));
  env.set("HOST", "0.0.0.0");
  env.set("KILN_INSTANCE_ID", "kiln-audit");
  const portKey = `${opts.containerPort}/tcp`;
  const name = `kiln-audit-${randomBytes(5).toString("hex")}`;

  let container: Docker.Container;
  try {
    container = await docker.createContainer({
      name,
      Image: imageId,
      Env: [...env.entries()].map(([k, v]) => `${k}=${v}`),
      Labels: { [LABEL.audit]: digest },
      ExposedPorts: { [portKey]: {} },
      HostConfig: {
        PortBindings: { [portKey]: [{ HostIp: "127.0.0.1", HostPort: String(hostPort) }] },
        Binds: binds,
        // as the docker provider runs instances, except that the root is writable (to see writes)
        ReadonlyRootfs: false,
        Tmpfs: { "/tmp": "rw,nosuid,nodev,size=67108864" },
        CapDrop: ["ALL"],
        SecurityOpt: ["no-new-privileges"],
        Init: true,
      },
    });
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw translateDockerError(e, `create an audit container from ${digest}`);
  }
  opts.log(`  container ${name} (image ${imageId.slice(0, 19)})`);

  let upperDir: string | undefined;
  const inspect = async () => {
    try {
      return await container.inspect();
    } catch (e) {
      throw translateDockerError(e, `inspect ${name}`);
    }
  };
  const hostPids = async (): Promise<{ pids: number[]; names: SandboxProcess[] }> => {
    try {
      const top = await container.top({ ps_args: "-o pid,comm" });
      const pidCol = top.Titles.indexOf("PID");
      const commCol = top.Titles.findIndex((t: string) => t === "COMMAND" || t === "CMD");
      const names: SandboxProcess[] = [];
      for (const row of top.Processes ?? []) {
        const pid = Number(row[pidCol]);
        if (!Number.isInteger(pid) || String(row[commCol] ?? "").includes("docker-init")) continue;
        const seen = describeProcess(pid);
        names.push(seen ?? { pid, comm: String(row[commCol] ?? ""), exe: String(row[commCol] ?? "") });
      }
      return { pids: names.map((p) => p.pid), names };
    } catch {
      return { pids: [], names: [] };
    }
  };

  const sandbox: AuditSandbox = {
    provider: "docker",
    async start() {
      try {
        await container.start();
      } catch (e) {
        throw translateDockerError(e, `start ${name}`);
      }
      const info = await inspect();
      upperDir = (info.GraphDriver?.Data as Record<string, string> | undefined)?.UpperDir;
      opts.log(`  started container ${name}, port 127.0.0.1:${hostPort} → ${opts.containerPort}`);
      return { address: `127.0.0.1:${hostPort}` };
    },
    async isRunning() {
      try {
        return (await container.inspect()).State.Running;
      } catch {
        return false;
      }
    },
    async observe() {
      const { pids, names } = await hostPids();
      return { processes: names, listeningPorts: listeningPortsOf(pids) };
    },
    async stop(graceMs: number) {
      try {
        await container.stop({ t: Math.max(1, Math.ceil(graceMs / 1000)) });
      } catch (e) {
        if ((e as { statusCode?: number }).statusCode !== 304) throw translateDockerError(e, `stop ${name}`);
      }
      const st = (await inspect()).State;
      return { exitCode: st.ExitCode ?? null, killed: st.ExitCode === 137 };
    },
    async changes() {
      let raw: DockerChange[];
      try {
        raw = ((await container.changes()) as DockerChange[] | null) ?? [];
      } catch (e) {
        throw translateDockerError(e, `list the changes of ${name}`);
      }
      const dirs = new Map<string, boolean>();
      if (upperDir) {
        for (const c of raw) {
          const st = await lstat(join(upperDir, c.Path)).catch(() => undefined);
          if (st) dirs.set(c.Path, st.isDirectory());
        }
      }
      return fromDockerChanges(raw, (p) => dirs.get(p));
    },
    async hostPathOf(path: string) {
      if (!upperDir) return undefined;
      const p = join(upperDir, path);
      return (await lstat(p).catch(() => undefined)) ? p : undefined;
    },
    async logTail() {
      try {
        const buf = (await container.logs({ stdout: true, stderr: true, tail: 30 })) as unknown as Buffer;
        // multiplexed frames: 8-byte headers before each chunk
        const parts: string[] = [];
        for (let i = 0; i + 8 <= buf.length; ) {
          const len = buf.readUInt32BE(i + 4);
          parts.push(buf.subarray(i + 8, i + 8 + len).toString());
          i += 8 + len;
        }
        return parts.join("");
      } catch {
        return "";
      }
    },
    async dispose() {
      try {
        await container.remove({ force: true, v: true });
      } catch {
        // already gone
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
  return sandbox;
}

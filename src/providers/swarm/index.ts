// The Swarm driver: kiln compiles a release into a service spec (compile.ts), Docker Swarm
// performs the rollout, and this driver applies the spec, watches UpdateStatus and the
// tasks, and turns what Swarm reports into kiln release states (observe.ts).
//
// There is no kiln controller or proxy for a Swarm service: the service's UpdateConfig is
// the strategy and the routing mesh is the data plane.

import { KilnError } from "../../errors.js";
import type { Store } from "../../image/index.js";
import { isNodeBase, type Spec } from "../../config/index.js";
import { demuxLogs } from "../docker/container-plan.js";
import { ensureImage, translateDockerError, type Docker } from "../docker/engine.js";
import { LABEL, sharedVolumeName } from "../../derive/index.js";
import type { SwarmServiceSpec } from "./compile.js";
import { judge, type SwarmObservation, type SwarmTaskView, type SwarmUpdateState, type SwarmVerdict } from "./observe.js";

export * from "./compile.js";
export * from "./observe.js";

export interface SwarmServiceView {
  id: string;
  /** the service's version index: every update must name it */
  version: number;
  spec: SwarmServiceSpec;
  previousRelease?: string;
  observation: SwarmObservation;
}

export interface WatchOptions {
  /** release id being rolled out (or rolled back to) */
  target: string;
  /** epoch ms the update was requested */
  since: number;
  created: boolean;
  /** a rollback's success is Swarm's rollback_completed onto `target` */
  kind?: "deploy" | "rollback";
  /** ms from `since`; past it kiln rolls back (autoRollback) or gives up watching */
  deadlineMs: number;
  autoRollback: boolean;
  onProgress?: (message: string) => void;
  /** poll interval, ms */
  pollMs?: number;
  now?: () => number;
}

export interface WatchOutcome {
  outcome: "live" | "rolled-back" | "failed";
  reason?: string;
  /** ms from `since` to the outcome */
  durationMs: number;
  /** ms from the first sign of rollback to rollback_completed */
  rollbackMs?: number;
}

const SWARM_HINT = "this engine is not a Swarm manager: run `docker swarm init --advertise-addr 127.0.0.1` (one node), or point DOCKER_HOST at a manager";

type Raw = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function toTask(t: Raw): SwarmTaskView {
  const labels = (t.Spec?.ContainerSpec?.Labels ?? {}) as Record<string, string>;
  return {
    id: t.ID,
    slot: t.Slot,
    release: labels[LABEL.release],
    version: labels[LABEL.version],
    digest: labels[LABEL.digest],
    state: t.Status?.State ?? "unknown",
    desiredState: t.DesiredState ?? "unknown",
    error: t.Status?.Err || undefined,
    message: t.Status?.Message || undefined,
    containerId: t.Status?.ContainerStatus?.ContainerID,
    at: Date.parse(t.Status?.Timestamp ?? t.UpdatedAt ?? "") || 0,
  };
}

/** A task's state in kiln's words, or "" for the engine's bookkeeping states (new, assigned, …). */
function taskEvent(t: SwarmTaskView): string {
  if (t.state === "failed" || t.state === "rejected") return `${t.state}${t.error ? `: ${t.error}` : ""}`;
  if (t.desiredState !== "running") return t.state === "running" || t.state === "starting" ? "stopping" : ["shutdown", "complete"].includes(t.state) ? "stopped" : "";
  if (t.state === "running") return "running (healthy)";
  if (t.state === "starting") return "starting";
  if (t.state === "complete") return "exited";
  return "";
}

export class SwarmDriver {
  constructor(readonly docker: Docker) {}

  /** Throw a KilnError with the `docker swarm init` hint unless the engine is an active Swarm manager. */
  async ensureSwarm(): Promise<{ nodeId: string }> {
    let info: Raw;
    try {
      info = await this.docker.info();
    } catch (e) {
      throw translateDockerError(e, "reach the Docker Engine");
    }
    const s = info.Swarm ?? {};
    if (s.LocalNodeState !== "active") {
      throw new KilnError("KILN_E_PROVIDER", `provider swarm needs Docker Swarm, but this engine's swarm state is "${s.LocalNodeState || "inactive"}"`, { hint: SWARM_HINT });
    }
    if (!s.ControlAvailable) throw new KilnError("KILN_E_PROVIDER", "this engine is a Swarm worker: services are managed on a manager node", { hint: SWARM_HINT });
    return { nodeId: s.NodeID };
  }

  /** Load the release's image into this node's engine (idempotent) and return the engine image ID. */
  async ensureImage(store: Store, digest: string): Promise<string> {
    return ensureImage(this.docker, store, digest);
  }

  /**
   * Create each declared volume once and give its root to the image's user, so a non-root
   * instance can write to it (a fresh local volume is root's). Done with a one-shot
   * container of the same image, as root, running Node's chown: nothing is installed.
   */
  async prepareVolumes(spec: Spec, image: string): Promise<void> {
    if (!spec.volumes.length) return;
    const [uid, gid] = spec.image.user.split(":").map(Number);
    for (const v of spec.volumes) {
      const name = sharedVolumeName(spec.name, v.name);
      try {
        await this.docker.getVolume(name).inspect();
        continue; // exists: its owner was settled when it was made
      } catch (e) {
        if ((e as { statusCode?: number }).statusCode !== 404) throw translateDockerError(e, `inspect volume ${name}`);
      }
      try {
        await this.docker.createVolume({ Name: name, Labels: { [LABEL.managedBy]: "kiln", [LABEL.service]: spec.name } });
        if (!isNodeBase(spec.image.base)) continue; // only kiln's node base is known to hold a program that can chown
        const c = await this.docker.createContainer({
          Image: image,
          User: "0:0",
          Entrypoint: ["/usr/local/bin/node"],
          Cmd: ["-e", `require("fs").chownSync(${JSON.stringify(v.path)},${uid ?? 0},${gid ?? uid ?? 0})`],
          NetworkDisabled: true,
          HostConfig: { Mounts: [{ Type: "volume", Source: name, Target: v.path }], AutoRemove: false },
          Labels: { [LABEL.managedBy]: "kiln", [LABEL.service]: spec.name },
        });
        await c.start();
        const r = (await c.wait()) as { StatusCode: number };
        await c.remove({ force: true });
        if (r.StatusCode !== 0) throw new KilnError("KILN_E_PROVIDER", `could not hand volume ${name} to user ${spec.image.user} (exit ${r.StatusCode})`, { hint: "chown the volume's root to the image user yourself" });
      } catch (e) {
        throw translateDockerError(e, `prepare volume ${name}`);
      }
    }
  }

  async inspect(name: string): Promise<SwarmServiceView | undefined> {
    let s: Raw;
    try {
      s = await this.docker.getService(name).inspect();
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404) return undefined;
      throw translateDockerError(e, `inspect service ${name}`);
    }
    let tasks: Raw[];
    try {
      tasks = (await this.docker.listTasks({ filters: JSON.stringify({ service: [s.ID] }) })) as Raw[];
    } catch (e) {
      throw translateDockerError(e, `list the tasks of ${name}`);
    }
    const spec = s.Spec as SwarmServiceSpec;
    const u = s.UpdateStatus as { State?: SwarmUpdateState; Message?: string; StartedAt?: string; CompletedAt?: string } | undefined;
    return {
      id: s.ID,
      version: s.Version.Index,
      spec,
      previousRelease: s.PreviousSpec?.Labels?.[LABEL.release],
      observation: {
        specRelease: spec.Labels?.[LABEL.release],
        replicas: spec.Mode?.Replicated?.Replicas ?? 0,
        update: u?.State ? { state: u.State, message: u.Message, startedAt: Date.parse(u.StartedAt ?? "") || undefined, completedAt: Date.parse(u.CompletedAt ?? "") || undefined } : undefined,
        tasks: tasks.map(toTask),
      },
    };
  }

  /** Create the service, or update it in place at its current version index (`docker service update`). */
  async apply(spec: SwarmServiceSpec): Promise<{ created: boolean }> {
    const cur = await this.inspect(spec.Name);
    if (cur && cur.spec.Labels?.[LABEL.managedBy] !== "kiln") {
      throw new KilnError("KILN_E_PROVIDER", `a Swarm service named ${spec.Name} exists and kiln did not create it`, { hint: `rename the service in kiln.yaml, or remove it: docker service rm ${spec.Name}` });
    }
    try {
      if (!cur) {
        await this.docker.createService(spec as never);
        return { created: true };
      }
      await this.update(cur, spec);
      return { created: false };
    } catch (e) {
      throw translateDockerError(e, `${cur ? "update" : "create"} Swarm service ${spec.Name}`);
    }
  }

  private async update(cur: SwarmServiceView, spec: SwarmServiceSpec, query: Record<string, string> = {}): Promise<void> {
    // dockerode sends `_query` as the query string and `_body` as the JSON body.
    await this.docker.getService(cur.id).update({ _query: { version: cur.version, ...query }, _body: spec } as never);
  }

  /** Swarm's own rollback: the service returns to its PreviousSpec with RollbackConfig. */
  async rollback(name: string): Promise<{ from?: string; to?: string }> {
    const cur = await this.mustInspect(name);
    if (!cur.previousRelease) throw new KilnError("KILN_E_NOT_FOUND", `Swarm keeps no previous spec for ${name}: there is nothing to roll back to`, { hint: "deploy an earlier image by name: `kiln deploy NAME:VERSION`" });
    try {
      await this.update(cur, cur.spec, { rollback: "previous" });
    } catch (e) {
      throw translateDockerError(e, `roll back Swarm service ${name}`);
    }
    return { from: cur.observation.specRelease, to: cur.previousRelease };
  }

  /** Set the replica count; nothing else in the spec changes, so no task is replaced. */
  async scale(name: string, replicas: number): Promise<void> {
    const cur = await this.mustInspect(name);
    try {
      await this.update(cur, { ...cur.spec, Mode: { Replicated: { Replicas: replicas } } });
    } catch (e) {
      throw translateDockerError(e, `scale Swarm service ${name}`);
    }
  }

  async remove(name: string): Promise<boolean> {
    try {
      await this.docker.getService(name).remove();
      return true;
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404) return false;
      throw translateDockerError(e, `remove Swarm service ${name}`);
    }
  }

  /**
   * Why a task failed, from the engine: its error, else its container's last health-check
   * output ("GET http://127.0.0.1:8080/healthz 500, 4 failed checks in a row"). Best effort.
   */
  async describeTask(taskId: string): Promise<string | undefined> {
    try {
      const t = (await this.docker.getTask(taskId).inspect()) as Raw;
      if (t.Status?.Err) return `task ${taskId.slice(0, 12)}: ${t.Status.Err}`;
      const cid = t.Status?.ContainerStatus?.ContainerID;
      if (!cid) return undefined;
      const c = (await this.docker.getContainer(cid).inspect()) as Raw;
      const h = c.State?.Health;
      if (h?.Status === "unhealthy" || (h?.FailingStreak ?? 0) > 0) {
        const last = (h.Log ?? []).slice(-1)[0];
        return `task ${taskId.slice(0, 12)} unhealthy: ${(last?.Output ?? "").trim() || `exit ${last?.ExitCode}`}, ${h.FailingStreak} failed checks in a row`;
      }
      return c.State?.ExitCode ? `task ${taskId.slice(0, 12)}: exited ${c.State.ExitCode}` : undefined;
    } catch {
      return undefined;
    }
  }

  /** The last `lines` lines a task's container wrote (stdout and stderr), from the engine. */
  async taskLogs(taskId: string, lines: number): Promise<string> {
    try {
      // dockerode has Task#logs (GET /tasks/ID/logs); its typings do not.
      const task = this.docker.getTask(taskId) as unknown as { logs(o: Record<string, unknown>): Promise<unknown> };
      const data = (await task.logs({ stdout: true, stderr: true, tail: Math.max(1, Math.floor(lines)), follow: false })) as unknown;
      return demuxLogs(Buffer.isBuffer(data) ? data : Buffer.from(String(data ?? "")));
    } catch (e) {
      throw translateDockerError(e, `read the log of task ${taskId}`);
    }
  }

  async mustInspect(name: string): Promise<SwarmServiceView> {
    const cur = await this.inspect(name);
    if (!cur) throw new KilnError("KILN_E_NOT_FOUND", `no Swarm service ${name}`, { hint: "run `kiln deploy` first" });
    return cur;
  }

  /**
   * Follow an update (or rollback) until Swarm settles it. Past the deadline kiln does what
   * its own controller would: ask Swarm to roll back (autoRollback), else report failure.
   * Bounded: never longer than the deadline plus one more deadline for the rollback.
   */
  async watch(name: string, o: WatchOptions): Promise<WatchOutcome> {
    const now = o.now ?? Date.now;
    const poll = o.pollMs ?? 250;
    const seen = new Map<string, string>();
    let lastUpdate: string | undefined;
    let rollbackStartedAt: number | undefined;
    let firstReason: string | undefined;
    let deadlineRollback = false;
    const hardStop = o.since + 2 * o.deadlineMs + 30_000;
    for (;;) {
      const cur = await this.mustInspect(name);
      const obs = cur.observation;
      for (const t of obs.tasks) {
        const what = taskEvent(t);
        const first = !seen.has(t.id);
        if (seen.get(t.id) === what) continue;
        seen.set(t.id, what);
        // Tasks already settled when the watch began are context, not progress.
        if (what && !(first && (what === "stopped" || (what === "running (healthy)" && t.release !== o.target)))) {
          o.onProgress?.(`task ${t.id.slice(0, 12)}${t.slot ? ` (slot ${t.slot})` : ""} of ${t.release ?? "?"}: ${what}`);
        }
      }
      if (obs.update && `${obs.update.state}:${obs.update.message}` !== lastUpdate) {
        lastUpdate = `${obs.update.state}:${obs.update.message}`;
        if (!obs.update.startedAt || obs.update.startedAt >= o.since - 2000) o.onProgress?.(`swarm: ${obs.update.state}${obs.update.message ? ` — ${obs.update.message}` : ""}`);
      }
      let v: SwarmVerdict = judge(obs, o.target, o.since, { created: o.created });
      if (o.kind === "rollback" && (v.kind === "rolled-back" || v.kind === "rolling-back")) {
        v = v.kind === "rolled-back" && obs.specRelease === o.target ? { kind: "live" } : { kind: "progressing", running: 0, starting: 0 };
      }
      const t = now();
      if ((v.kind === "rolling-back" || v.kind === "rolled-back" || v.kind === "paused") && rollbackStartedAt === undefined) {
        rollbackStartedAt = t;
        const id = /task ([a-z0-9]{25})/.exec(v.reason)?.[1];
        const detail = id ? await this.describeTask(id) : undefined;
        firstReason ??= detail && !v.reason.includes(detail) ? `${v.reason} (${detail})` : v.reason;
      }
      switch (v.kind) {
        case "live":
          return { outcome: "live", durationMs: t - o.since };
        case "rolled-back":
          return { outcome: "rolled-back", reason: firstReason ?? v.reason, durationMs: t - o.since, rollbackMs: t - (rollbackStartedAt ?? t) };
        case "paused":
          return { outcome: "failed", reason: firstReason ?? v.reason, durationMs: t - o.since };
        case "failed":
          return { outcome: "failed", reason: v.reason, durationMs: t - o.since };
      }
      if (v.kind === "progressing" && t - o.since > o.deadlineMs && !deadlineRollback) {
        const reason = `not live within the deadline (${Math.round(o.deadlineMs / 1000)} s): ${v.running} of ${obs.replicas} tasks of ${o.target} running`;
        if (!o.autoRollback || o.created || !cur.previousRelease) return { outcome: "failed", reason, durationMs: t - o.since };
        o.onProgress?.(`${reason} — asking Swarm to roll back`);
        firstReason = reason;
        deadlineRollback = true;
        await this.rollback(name);
      }
      if (t > hardStop) throw new KilnError("KILN_E_ROLLOUT", `Swarm has not settled ${name} after ${Math.round((t - o.since) / 1000)} s`, { hint: "see `docker service ps` and `kiln status`; Swarm keeps going" });
      await new Promise((r) => setTimeout(r, poll));
    }
  }
}

// Docker Swarm as the rollout performer (`provider: swarm` with `swarm: { rollouts: native }`): there is no kiln controller or
// proxy; kiln compiles kiln.yaml into the service's UpdateConfig, Swarm replaces the tasks,
// the routing mesh serves, and kiln records releases, rollouts and events in its state so
// `kiln history` and `kiln status` work as with its own controller.
//
// Crash safety: a rollout's intent (target, method, the time it was asked) is committed
// before Swarm is asked for anything, and marked applied once Swarm accepted it. Every
// invocation first reconciles a rollout an interrupted one left running with what Swarm
// reports (recovery.ts): settled ones are recorded live / rolled back / failed; one Swarm is
// still performing is followed to the end by deploy, rollback, scale and resume, and
// reported by status and history.

import { commandLine, currentActor } from "../../actor.js";
import type { ChangeNote, DeployRequest, ReleaseSettings, ReleaseView, RolloutView } from "../../controller/types.js";
import type { RecordRequest } from "../../server/client.js";
import { KilnError } from "../../errors.js";
import { openStore, type Store } from "../../image/index.js";
import { isRegistryRef, parseRegistryRef } from "../../image/registry/index.js";
import { connectDocker, pingDocker } from "../../providers/docker/engine.js";
import {
  compileRollbackConfig,
  compileService,
  compileUpdateConfig,
  explainSwarmLimits,
  swarmCapacity,
  SwarmDriver,
  tasksByRelease,
  type WatchOptions,
  type WatchOutcome,
} from "../../providers/swarm/index.js";
import { LABEL, limitsOf } from "../../derive/index.js";
import type { StrategyName } from "../../rollout/types.js";
import { canonicalJson, type Spec } from "../../config/index.js";
import { StateDb, type ChangeRecord, type Release, type RolloutRecord } from "../../state/db.js";
import type { FollowOptions, PerformerStatus, Recovery, RolloutOutcome, RolloutPerformer } from "../performer.js";
import { judgeRecovery, type SwarmIntent } from "./recovery.js";

/** The part of the Swarm driver the performer uses: a real SwarmDriver, or a fake in unit tests. */
export type SwarmEngine = Pick<SwarmDriver, "inspect" | "mustInspect" | "apply" | "rollback" | "scale" | "remove" | "prepareVolumes" | "taskLogs"> & {
  ensureImage(store: Store, digest: string): Promise<string>;
  watch(name: string, o: WatchOptions): Promise<WatchOutcome>;
};

export interface IngressProbe {
  address: string;
  answering: boolean;
  status?: number;
  error?: string;
}

export interface SwarmPerformerDeps {
  /** kiln.yaml as loaded */
  spec: Spec;
  home: string;
  stateDb: string;
  /** the engine, connected on first use (a real SwarmDriver unless a test passes a fake) */
  engine?: () => Promise<SwarmEngine>;
  /** does the routing mesh answer at kiln.yaml's listen address */
  probe?: (spec: Spec) => Promise<IngressProbe>;
  now?: () => number;
}

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());
const secs = (ns: number) => `${Math.round(ns / 1e6) / 1000}s`;

export function releaseView(r: Release): ReleaseView {
  return {
    id: r.id, version: r.version, ref: r.ref, digest: r.digest, configHash: r.configHash, strategy: r.strategy, status: r.status,
    reason: r.reason, createdAt: iso(r.createdAt)!, liveAt: iso(r.liveAt), finishedAt: iso(r.finishedAt), previous: r.previous,
  };
}

export function rolloutView(r: RolloutRecord): RolloutView {
  return {
    id: r.id, kind: r.kind, strategy: r.strategy, target: r.target, previous: r.previous, state: r.state, reason: r.reason,
    startedAt: iso(r.startedAt)!, finishedAt: iso(r.finishedAt),
  };
}

async function connectSwarm(): Promise<SwarmEngine> {
  const docker = connectDocker();
  await pingDocker(docker);
  const d = new SwarmDriver(docker);
  await d.ensureSwarm();
  return d;
}

/** One bounded GET of the health path at `listen`: does the routing mesh answer for the fleet? */
export async function probeListen(spec: Spec): Promise<IngressProbe> {
  const address = spec.listen;
  try {
    const res = await fetch(`http://${address}${spec.health.path}`, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return { address, answering: res.status >= 200 && res.status < 300, status: res.status };
  } catch (e) {
    const c = (e as { cause?: { code?: string } }).cause?.code;
    return { address, answering: false, error: c ?? (e as Error).message };
  }
}

export const meshHint = (p: { address: string; error?: string }) =>
  `Swarm's routing mesh does not answer at ${p.address}${p.error ? ` (${p.error})` : ""}: on Linux it needs IPVS in the kernel (CONFIG_IP_VS, \`modprobe ip_vs\`); see the dockerd log`;

function withStrategy(spec: Spec, strategy: StrategyName | undefined): Spec {
  return strategy && strategy !== spec.strategy.type ? { ...spec, strategy: { ...spec.strategy, type: strategy } } : spec;
}

/** kiln.yaml with the runtime settings a recorded release was deployed with (env, health, volumes…). */
function specOfRelease(spec: Spec, r: Release): Spec {
  const rs = r.spec as Partial<ReleaseSettings> | undefined;
  if (!rs) return spec;
  return {
    ...spec,
    env: rs.env ?? spec.env,
    health: (rs.health as Spec["health"] | undefined) ?? spec.health,
    volumes: rs.volumes ?? spec.volumes,
    drainTimeout: rs.drainTimeout ?? spec.drainTimeout,
  };
}

const intentOf = (r: RolloutRecord): SwarmIntent | undefined => (r.progress as { swarm?: SwarmIntent }).swarm;

export class SwarmPerformer implements RolloutPerformer {
  readonly name = "swarm" as const;
  readonly instead = {
    promote: "Swarm has no manual promotion step: deploy when you would promote (`kiln deploy`)",
    pause: "kiln cannot hold an update Swarm performs: follow it with `kiln status`, or return to the previous release with `kiln rollback`",
    abort: "use `kiln rollback` to return to the release that was live (Swarm's own rollback)",
  };
  private readonly now: () => number;
  private engineP?: Promise<SwarmEngine>;

  constructor(private readonly deps: SwarmPerformerDeps) {
    this.now = deps.now ?? Date.now;
  }

  private engine(): Promise<SwarmEngine> {
    this.engineP ??= (this.deps.engine ?? connectSwarm)();
    return this.engineP;
  }

  private async withDb<T>(fn: (db: StateDb) => Promise<T> | T): Promise<T> {
    const db = new StateDb(this.deps.stateDb);
    try {
      return await fn(db);
    } finally {
      db.close();
    }
  }

  private get service(): string {
    return this.deps.spec.name;
  }

  private event(db: StateDb, message: string, extra: { release?: string; rollout?: number; level?: "info" | "warn" | "error" } = {}): void {
    db.addEvent({ at: this.now(), level: extra.level ?? "info", service: this.service, release: extra.release, rollout: extra.rollout, message });
  }

  /** One audit row (Swarm has no controller: kiln records the trail in its state itself). */
  private audit(db: StateDb, note: ChangeNote | undefined, action: string, f: Partial<Pick<ChangeRecord, "release" | "digest" | "previousDigest" | "result" | "detail" | "reason">> = {}): void {
    const n = note ?? { actor: currentActor(), command: commandLine(process.argv) };
    db.addChange({
      at: this.now(), service: this.service, env: n.env, actor: n.actor, command: n.command, action, reason: n.reason ?? f.reason,
      release: f.release, digest: f.digest, previousDigest: f.previousDigest, result: f.result ?? "accepted", detail: f.detail,
    });
  }

  async events(n: number) {
    return this.withDb((db) => db.recentEvents(this.service, n));
  }

  async record(r: RecordRequest): Promise<void> {
    await this.withDb((db) =>
      db.tx(() => {
        for (const c of r.changes ?? []) this.audit(db, c, c.action, c);
        for (const e of r.events ?? []) this.event(db, e.message, { level: e.level, release: e.release });
      }),
    );
  }

  private live(db: StateDb): Release | undefined {
    const id = db.getFact(this.service, "live");
    return id ? db.getRelease(id) : undefined;
  }

  /**
   * The image reference tasks run. Always loaded into this node's engine (volumes are prepared
   * with it, and this node never needs to pull); a release deployed from a registry reference is
   * pinned as REPO@sha256:<manifest digest> so other nodes can pull exactly it, otherwise to the
   * engine image ID.
   */
  private async imageFor(engine: SwarmEngine, ref: string, digest: string): Promise<{ local: string; pinned: string }> {
    const local = await engine.ensureImage(openStore(this.deps.home), digest);
    if (!isRegistryRef(ref)) return { local, pinned: local };
    const r = parseRegistryRef(ref);
    return { local, pinned: `${r.registry}/${r.repository}@${digest}` };
  }

  /** Record a rollout's end, and the releases' statuses with it, in one transaction. */
  private settle(db: StateDb, rollout: RolloutRecord, outcome: "live" | "rolled-back" | "failed", reason: string | undefined): void {
    const fin = this.now();
    db.tx(() => {
      if (rollout.kind === "deploy") {
        if (outcome === "live") {
          db.updateRollout(rollout.id, { state: "done", finishedAt: fin });
          db.updateRelease(rollout.target, { status: "live", liveAt: fin });
          const prev = rollout.previous ? db.getRelease(rollout.previous) : undefined;
          if (prev && prev.id !== rollout.target && prev.status === "live") db.updateRelease(prev.id, { status: "superseded", finishedAt: fin });
          db.setFact(this.service, "live", rollout.target);
        } else {
          db.updateRollout(rollout.id, { state: outcome === "rolled-back" ? "aborted" : "failed", reason, finishedAt: fin });
          db.updateRelease(rollout.target, { status: "failed", reason, finishedAt: fin });
        }
      } else if (outcome === "live") {
        db.updateRollout(rollout.id, { state: "done", finishedAt: fin });
        db.updateRelease(rollout.target, { status: "live", liveAt: fin, reason: undefined });
        if (rollout.previous) db.updateRelease(rollout.previous, { status: "rolled-back", finishedAt: fin });
        db.setFact(this.service, "live", rollout.target);
      } else db.updateRollout(rollout.id, { state: "failed", reason, finishedAt: fin });
    });
    const ok = outcome === "live";
    const msg =
      rollout.kind === "deploy"
        ? ok ? `release live: ${rollout.target}` : `release ${rollout.target} ${outcome}: ${reason}`
        : ok ? `rolled back to ${rollout.target}` : `rollback to ${rollout.target} failed: ${reason}`;
    this.event(db, msg, { release: rollout.target, rollout: rollout.id, level: ok ? "info" : "error" });
  }

  /** Follow an applied rollout until Swarm settles it, then record the end. */
  private async follow(db: StateDb, engine: SwarmEngine, rollout: RolloutRecord, intent: SwarmIntent, opts: FollowOptions): Promise<WatchOutcome & { reason?: string }> {
    const w = await engine.watch(this.service, {
      target: rollout.target, since: intent.since, created: intent.created, deadlineMs: intent.deadlineMs, autoRollback: intent.autoRollback,
      kind: intent.method === "swarm-rollback" ? "rollback" : "deploy",
      onProgress: (m) => {
        this.event(db, m, { release: rollout.target, rollout: rollout.id });
        opts.onProgress?.(`${new Date(this.now()).toISOString().slice(11, 19)} ${m}`);
      },
    });
    let reason = w.reason;
    if (rollout.kind === "deploy" && w.outcome === "failed" && intent.created && intent.autoRollback) {
      // The first release of a service has nothing to return to: remove it rather than let
      // Swarm restart failing tasks forever.
      await engine.remove(this.service);
      reason = `${reason}; the service had no earlier release, so kiln removed it`;
    }
    const outcome = rollout.kind === "rollback" && w.outcome !== "live" ? "failed" : w.outcome;
    this.settle(db, rollout, outcome, reason);
    return { ...w, outcome, reason };
  }

  async recover(opts: FollowOptions & { wait?: boolean } = {}): Promise<Recovery | undefined> {
    return this.withDb(async (db) => {
      const rollout = db.activeRollout(this.service);
      if (!rollout) return undefined;
      // A rollout recorded before intents were (an older kiln) was applied when it was recorded.
      const lim = limitsOf(this.deps.spec);
      const intent: SwarmIntent = intentOf(rollout) ?? { phase: "applied", since: rollout.startedAt, created: false, method: "apply", deadlineMs: lim.deadline, autoRollback: lim.autoRollback };
      const engine = await this.engine();
      const d = judgeRecovery(rollout.target, intent, await engine.inspect(this.service));
      if (d.kind === "settled") {
        this.event(db, `rollout ${rollout.id} (${rollout.kind} to ${rollout.target}) was left running by an interrupted kiln; Swarm reports it ${d.outcome}${d.reason ? `: ${d.reason}` : ""}`, { rollout: rollout.id, release: rollout.target, level: "warn" });
        this.settle(db, rollout, d.outcome, d.reason);
        return { rollout: rolloutView(db.getRollout(rollout.id)!), outcome: d.outcome, reason: d.reason };
      }
      if (!opts.wait) {
        return { rollout: rolloutView(rollout), outcome: "running" as const, reason: `Swarm is still performing it (UpdateStatus ${d.state}); \`kiln resume\` follows it to the end` };
      }
      opts.onProgress?.(`resuming rollout ${rollout.id} (${rollout.kind} to ${rollout.target}) that an interrupted kiln left running: Swarm reports ${d.state}`);
      this.event(db, `resuming rollout ${rollout.id} left running by an interrupted kiln (Swarm: ${d.state})`, { rollout: rollout.id, release: rollout.target, level: "warn" });
      const w = await this.follow(db, engine, rollout, intent, opts);
      return { rollout: rolloutView(db.getRollout(rollout.id)!), outcome: w.outcome, reason: w.reason };
    });
  }

  /** `kiln deploy [REF]` on Swarm: compile, record the intent, create or update the service, follow Swarm's rollout. */
  async deploy(req: DeployRequest, opts: FollowOptions = {}): Promise<RolloutOutcome> {
    await this.recover({ ...opts, wait: true });
    const engine = await this.engine();
    return this.withDb(async (db) => {
      // `kiln scale` outlives deploys, as with kiln's own controller.
      const scaled = db.getFact(this.service, "instances");
      const spec = { ...withStrategy(this.deps.spec, req.strategy), ...(scaled === undefined ? {} : { instances: scaled }) };
      const name = spec.name;
      const cur = await engine.inspect(name);
      const live = this.live(db);
      const labels = cur?.spec.Labels ?? {};
      if (cur && live && labels[LABEL.release] === live.id && labels[LABEL.digest] === req.digest && labels[LABEL.configHash] === req.configHash && canonicalJson(live.env) === canonicalJson(req.spec.env) && cur.observation.update?.state !== "paused") {
        // Nothing would change but the release label: replacing every task for that is churn.
        if (cur.observation.replicas !== spec.instances) await engine.scale(name, spec.instances);
        opts.onProgress?.(`${req.ref} (${req.digest.slice(0, 19)}) is already live as ${live.id}: nothing to replace`);
        return { outcome: "live", release: releaseView(live), reason: "already live", rollouts: [], details: { durationMs: 0 } };
      }
      // Swarm keeps a service's env in its own state (and `docker service inspect` shows it):
      // secret values would leave this machine's memory, which kiln.yaml `secrets` promises not to.
      if (req.spec.secrets) throw new KilnError("KILN_E_USAGE", "kiln.yaml `secrets` are not supported with swarm.rollouts: native", { hint: "use swarm.rollouts: kiln (kiln's controller passes them at launch), or Docker secrets" });
      const { local, pinned: image } = await this.imageFor(engine, req.ref, req.digest);
      await engine.prepareVolumes(spec, local);
      const since = this.now();
      const lim = limitsOf(spec);
      const intent: SwarmIntent = { phase: "intent", since, created: !cur, method: "apply", deadlineMs: lim.deadline, autoRollback: lim.autoRollback };
      // Intent first: a crash from here on leaves a rollout the next invocation reconciles.
      const { release, rollout } = db.tx(() => {
        const release = db.createRelease({
          service: name, ref: req.ref, version: req.version, digest: req.digest, configHash: req.configHash, env: req.spec.env, spec: { ...req.spec, strategy: { ...req.spec.strategy, type: spec.strategy.type } },
          strategy: spec.strategy.type, status: "deploying", createdAt: since, previous: live?.id,
        });
        const rollout = db.createRollout({ service: name, kind: "deploy", strategy: spec.strategy.type, target: release.id, previous: live?.id, state: "running", startedAt: since, fast: false, promoteRequested: false });
        db.updateRollout(rollout.id, { progress: { swarm: intent } });
        this.audit(db, req.note, "deploy", { release: release.id, digest: req.digest, previousDigest: live?.digest, detail: `${req.ref} on Swarm` });
        return { release, rollout: { ...rollout, progress: { swarm: intent } } };
      });
      const svc = compileService(spec, { id: release.id, version: req.version, digest: req.digest, image, configHash: req.configHash });
      const u = svc.UpdateConfig;
      opts.onProgress?.(`deploying ${req.ref} (${req.digest.slice(0, 19)}) as ${release.id} on Swarm: ${u.Order}, ${u.Parallelism} at a time, monitor ${secs(u.Monitor)}, on failure ${u.FailureAction}`);
      const { created } = await engine.apply(svc);
      const applied: SwarmIntent = { ...intent, phase: "applied", created };
      db.updateRollout(rollout.id, { progress: { swarm: applied } });
      this.event(db, `${created ? "created" : "updated"} Swarm service ${name} for ${release.id} (${image})`, { release: release.id, rollout: rollout.id });
      const w = await this.follow(db, engine, rollout, applied, opts);
      const ingress = w.outcome !== "failed" || !created ? await (this.deps.probe ?? probeListen)(spec) : undefined;
      return { outcome: w.outcome, release: releaseView(db.getRelease(release.id)!), reason: w.reason, rollouts: [rolloutView(db.getRollout(rollout.id)!)], details: { durationMs: w.durationMs, rollbackMs: w.rollbackMs, ingress } };
    });
  }

  /**
   * `kiln rollback` on Swarm: back to the release before the live one. When that release is
   * Swarm's PreviousSpec this is the API's rollback (`rollback=previous`, RollbackConfig).
   * Swarm keeps only one previous spec, and none after a rollback, so otherwise kiln
   * re-applies the earlier release's spec itself, with RollbackConfig as the update policy.
   */
  async rollback(opts: FollowOptions = {}): Promise<RolloutOutcome> {
    await this.recover({ ...opts, wait: true });
    const engine = await this.engine();
    const spec = this.deps.spec;
    return this.withDb(async (db) => {
      const live = this.live(db);
      if (!live) throw new KilnError("KILN_E_NOT_FOUND", "nothing is deployed yet, so there is nothing to roll back", { hint: "run `kiln deploy`" });
      const target = live.previous ? db.getRelease(live.previous) : undefined;
      if (!target) throw new KilnError("KILN_E_NOT_FOUND", `${live.id} is the first release: there is nothing earlier to roll back to`, { hint: "deploy another image by name: `kiln deploy NAME:VERSION`" });
      const cur = await engine.mustInspect(spec.name);
      const native = cur.previousRelease === target.id && cur.observation.specRelease === live.id;
      const image = native ? undefined : (await this.imageFor(engine, target.ref, target.digest)).pinned;
      const since = this.now();
      const intent: SwarmIntent = { phase: "intent", since, created: false, method: native ? "swarm-rollback" : "apply", deadlineMs: limitsOf(spec).deadline, autoRollback: false };
      const how = native ? "Swarm's rollback (its previous spec)" : `a replacement of every task by ${target.id}'s spec (Swarm's previous spec is ${cur.previousRelease ?? "gone"})`;
      const rollout = db.tx(() => {
        const r = db.createRollout({ service: spec.name, kind: "rollback", strategy: target.strategy, target: target.id, previous: live.id, state: "running", startedAt: since, fast: true, promoteRequested: false });
        db.updateRollout(r.id, { progress: { swarm: intent } });
        this.audit(db, opts.note, "rollback", { reason: "no reason given", release: target.id, digest: target.digest, previousDigest: live.digest, detail: `back to ${target.ref}` });
        return r;
      });
      this.event(db, `rolling back from ${live.id} to ${target.id} with ${how}`, { release: target.id, rollout: rollout.id });
      opts.onProgress?.(`rolling back to ${target.id} (${target.ref}) with ${how}`);
      if (native) await engine.rollback(spec.name);
      else {
        const svc = compileService(specOfRelease(spec, target), { id: target.id, version: target.version, digest: target.digest, image: image!, configHash: target.configHash }, { replicas: cur.observation.replicas });
        await engine.apply({ ...svc, UpdateConfig: svc.RollbackConfig });
      }
      const applied: SwarmIntent = { ...intent, phase: "applied" };
      db.updateRollout(rollout.id, { progress: { swarm: applied } });
      const w = await this.follow(db, engine, rollout, applied, opts);
      return { outcome: w.outcome === "live" ? "live" : "failed", release: releaseView(db.getRelease(target.id)!), reason: w.reason, rollouts: [rolloutView(db.getRollout(rollout.id)!)], details: { durationMs: w.durationMs, method: native ? "swarm-rollback" : "re-apply" } };
    });
  }

  /** `kiln resume` on Swarm: follow a rollout an interrupted kiln left running until Swarm settles it. */
  async resume(opts: FollowOptions = {}): Promise<RolloutView> {
    const r = await this.recover({ ...opts, wait: true });
    if (!r) throw new KilnError("KILN_E_NOT_FOUND", "no rollout is in progress on Swarm", { hint: "`kiln status` shows the live release; `kiln history` the rollouts" });
    return r.rollout;
  }

  /** `kiln logs [TASK]` on Swarm: each task's log from the engine (a task is Swarm's instance). */
  async logs(instance: string | undefined, lines: number): Promise<{ id: string; text: string }[]> {
    const engine = await this.engine();
    const cur = await engine.inspect(this.service);
    const tasks = [...(cur?.observation.tasks ?? [])].sort((a, b) => a.at - b.at);
    const chosen = instance ? tasks.filter((t) => t.id.startsWith(instance)) : tasks.filter((t) => t.desiredState === "running" || t.state === "running");
    if (instance && chosen.length === 0) {
      throw new KilnError("KILN_E_NOT_FOUND", `no task "${instance}" in Swarm service ${this.service}`, { hint: tasks.length ? `known: ${tasks.slice(-5).map((t) => t.id.slice(0, 12)).join(", ")}` : "nothing has been deployed yet" });
    }
    const out: { id: string; text: string }[] = [];
    for (const t of chosen) out.push({ id: `${t.id.slice(0, 12)} (${t.release ?? "?"}, slot ${t.slot ?? "-"})`, text: await engine.taskLogs(t.id, lines) });
    return out;
  }

  /** `kiln scale N` on Swarm: set Replicas, then wait (bounded by the deadline) until N tasks run. */
  async scale(instances: number, note?: ChangeNote): Promise<{ instances: number; running: number }> {
    await this.recover({ wait: true });
    const engine = await this.engine();
    const spec = this.deps.spec;
    await engine.scale(spec.name, instances);
    await this.withDb((db) => {
      const from = db.getFact(this.service, "instances") ?? spec.instances;
      db.setFact(this.service, "instances", instances);
      this.event(db, `scaled to ${instances} instance(s)`);
      this.audit(db, note, "scale", { detail: `${from} → ${instances} instances` });
    });
    const until = this.now() + limitsOf(spec).deadline;
    let running = 0;
    for (;;) {
      const cur = await engine.mustInspect(spec.name);
      const rel = cur.observation.specRelease;
      running = cur.observation.tasks.filter((t) => t.release === rel && t.desiredState === "running" && t.state === "running").length;
      const extra = cur.observation.tasks.filter((t) => t.state === "running" && t.desiredState !== "running").length;
      if ((running === instances && extra === 0) || this.now() > until) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    return { instances, running };
  }

  async history(): Promise<{ releases: ReleaseView[]; rollouts: RolloutView[]; changes: ChangeRecord[] }> {
    if (await this.withDb((db) => db.activeRollout(this.service) !== undefined)) await this.recover();
    return this.withDb((db) => ({ releases: db.listReleases(this.service).map(releaseView), rollouts: db.listRollouts(this.service).map(rolloutView), changes: db.changes(this.service) }));
  }

  async status(): Promise<PerformerStatus> {
    const recovery = await this.recover();
    const spec = this.deps.spec;
    const engine = await this.engine();
    const cur = await engine.inspect(spec.name);
    const live = await this.withDb((db) => this.live(db));
    const ingress = cur ? await (this.deps.probe ?? probeListen)(spec) : undefined;
    const obs = cur?.observation;
    return {
      performer: "swarm",
      view: {
        schemaVersion: 1 as const,
        service: spec.name,
        provider: "swarm" as const,
        release: live ? releaseView(live) : undefined,
        /** a rollout an interrupted kiln left running, as reconciled just now */
        recovery,
        desiredInstances: obs?.replicas ?? 0,
        swarm: cur
          ? { serviceId: cur.id, version: cur.version, image: cur.spec.TaskTemplate.ContainerSpec.Image, specRelease: obs!.specRelease, previousRelease: cur.previousRelease, update: obs!.update ? { ...obs!.update, startedAt: iso(obs!.update.startedAt), completedAt: iso(obs!.update.completedAt) } : undefined }
          : undefined,
        ingress,
        releases: obs ? tasksByRelease(obs).filter((g) => g.running + g.starting + g.failed > 0 || g.release === obs.specRelease) : [],
        tasks: (obs?.tasks ?? []).filter((t) => t.desiredState === "running" || t.state === "running").map((t) => ({ ...t, at: iso(t.at) })),
      },
    };
  }

  /** `kiln plan [REF]` on Swarm: the compiled update_config / rollback_config and what Swarm cannot do. */
  async plan(target: { ref: string; digest?: string; version: string }, strategy: StrategyName | undefined, notes: string[]) {
    const spec = withStrategy(this.deps.spec, strategy);
    let cur: Awaited<ReturnType<SwarmEngine["inspect"]>>;
    try {
      cur = await (await this.engine()).inspect(spec.name);
      if (!cur) notes.push(`no Swarm service ${spec.name} yet: the deploy creates it`);
    } catch (e) {
      notes.push(`Swarm not consulted: ${(e as Error).message}`);
    }
    const cap = swarmCapacity(spec);
    return {
      schemaVersion: 1 as const,
      service: spec.name,
      provider: "swarm" as const,
      strategy: spec.strategy.type,
      from: cur ? { release: cur.observation.specRelease ?? null, image: cur.spec.TaskTemplate.ContainerSpec.Image, replicas: cur.observation.replicas } : null,
      to: { ...target, instances: spec.instances },
      bounds: { surge: cap.surge, minHealthy: cap.minHealthy, maxTotal: cap.maxTotal },
      updateConfig: compileUpdateConfig(spec),
      rollbackConfig: compileRollbackConfig(spec),
      limits: explainSwarmLimits(spec),
      notes,
    };
  }
}

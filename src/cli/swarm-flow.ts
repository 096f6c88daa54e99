// The CLI verbs for `provider: swarm`. There is no kiln controller or proxy: Swarm performs
// the rollout from the compiled service spec, the routing mesh serves the fleet, and kiln
// records releases, rollouts and events in its state database so `kiln history` survives.
// Each verb branches here in one line when kiln.yaml says `provider: swarm`.

import Table from "cli-table3";
import type { ReleaseSpec, ReleaseView, RolloutView } from "../controller/types.js";
import { KilnError } from "../errors.js";
import { openStore, type Store } from "../image/index.js";
import { isRegistryRef, parseRegistryRef } from "../image/registry/index.js";
import { connectDocker, pingDocker } from "../providers/docker/engine.js";
import {
  compileRollbackConfig,
  compileService,
  compileUpdateConfig,
  explainSwarmLimits,

  swarmCapacity,
  SwarmDriver,
  tasksByRelease,
  type SwarmServiceView,
  type SwarmUpdateConfig,
  type WatchOutcome,
} from "../providers/swarm/index.js";
import { LABEL, limitsOf } from "../derive/index.js";
import type { StrategyName } from "../rollout/types.js";
import type { Spec } from "../spec/index.js";
import { StateDb, type Release, type RolloutRecord } from "../state/db.js";
import { ago, out, printJson, short, type Context } from "./context.js";
import { buildDeployRequest } from "../ops/deploy-flow.js";

export const isSwarm = (ctx: Context): boolean => ctx.loaded.spec.provider === "swarm";

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());
const time = (at: number) => new Date(at).toISOString().slice(11, 19);
const secs = (ns: number) => `${Math.round(ns / 1e6) / 1000}s`;

function releaseView(r: Release): ReleaseView {
  return {
    id: r.id, version: r.version, ref: r.ref, digest: r.digest, configHash: r.configHash, strategy: r.strategy, status: r.status,
    reason: r.reason, createdAt: iso(r.createdAt)!, liveAt: iso(r.liveAt), finishedAt: iso(r.finishedAt), previous: r.previous,
  };
}

function rolloutView(r: RolloutRecord): RolloutView {
  return {
    id: r.id, kind: r.kind, strategy: r.strategy, target: r.target, previous: r.previous, state: r.state, reason: r.reason,
    startedAt: iso(r.startedAt)!, finishedAt: iso(r.finishedAt),
  };
}

async function driverFor(): Promise<SwarmDriver> {
  const docker = connectDocker();
  await pingDocker(docker);
  const d = new SwarmDriver(docker);
  await d.ensureSwarm();
  return d;
}

function withStrategy(spec: Spec, strategy: StrategyName | undefined): Spec {
  return strategy && strategy !== spec.strategy.type ? { ...spec, strategy: { ...spec.strategy, type: strategy } } : spec;
}

/**
 * The image reference tasks run. Always loaded into this node's engine (volumes are prepared
 * with it, and this node never needs to pull); a release deployed from a registry reference is
 * pinned as REPO@sha256:<manifest digest> so other nodes can pull exactly it, otherwise to the
 * engine image ID.
 */
async function imageFor(driver: SwarmDriver, store: Store, ref: string, digest: string): Promise<{ local: string; pinned: string }> {
  const local = await driver.ensureImage(store, digest);
  if (!isRegistryRef(ref)) return { local, pinned: local };
  const r = parseRegistryRef(ref);
  return { local, pinned: `${r.registry}/${r.repository}@${digest}` };
}

/** One bounded GET of the health path at `listen`: does the routing mesh answer for the fleet? */
export async function probeListen(spec: Spec): Promise<{ address: string; answering: boolean; status?: number; error?: string }> {
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

const meshHint = (p: { address: string; error?: string }) =>
  `Swarm's routing mesh does not answer at ${p.address}${p.error ? ` (${p.error})` : ""}: on Linux it needs IPVS in the kernel (CONFIG_IP_VS, \`modprobe ip_vs\`); see the dockerd log`;

function event(db: StateDb, service: string, message: string, extra: { release?: string; rollout?: number; level?: "info" | "warn" | "error" } = {}): void {
  db.addEvent({ at: Date.now(), level: extra.level ?? "info", service, release: extra.release, rollout: extra.rollout, message });
}

interface FlowResult {
  outcome: "live" | "rolled-back" | "failed";
  release: ReleaseView;
  reason?: string;
  rollouts: RolloutView[];
  swarm: {
    durationMs: number;
    /** from Swarm's first rollback report to rollback_completed */
    rollbackMs?: number;
    /** kiln rollback: Swarm's own rollback (PreviousSpec) or a re-applied earlier spec */
    method?: "swarm-rollback" | "re-apply";
    ingress?: Awaited<ReturnType<typeof probeListen>>;
  };
}

function report(r: FlowResult, json: boolean | undefined, rollback = false): void {
  if (json) printJson(r);
  else {
    if (r.outcome === "live") out(`✔ ${r.release.ref} is live as ${r.release.id} (${short(r.release.digest)}) on Swarm after ${(r.swarm.durationMs / 1000).toFixed(1)} s`);
    else if (r.outcome === "rolled-back") out(`✘ ${r.release.ref} failed and Swarm rolled it back: ${r.reason ?? "unknown reason"}`);
    else out(`✘ ${rollback ? "rollback to " : ""}${r.release.ref} failed: ${r.reason ?? "unknown reason"}`);
    if (r.swarm.ingress && !r.swarm.ingress.answering) out(`warning: ${meshHint(r.swarm.ingress)}`);
  }
  process.exitCode = r.outcome === "live" ? 0 : 1;
}

/** `kiln deploy [REF]` on Swarm: compile, create or update the service, watch Swarm roll it out. */
export async function swarmDeploy(ctx: Context, ref: string | undefined, opts: { strategy?: StrategyName; json?: boolean }): Promise<void> {
  const req = await buildDeployRequest(ctx, ref, opts.strategy);
  const driver = await driverFor();
  const db = new StateDb(ctx.paths.stateDb);
  try {
    // `kiln scale` outlives deploys, as with kiln's own controller.
    const scaled = db.getMeta("instances");
    const spec = { ...withStrategy(ctx.loaded.spec, opts.strategy), ...(scaled === undefined ? {} : { instances: Number(scaled) }) };
    const name = spec.name;
    const cur = await driver.inspect(name);
    const liveId = db.getMeta("live");
    const live = liveId ? db.getRelease(liveId) : undefined;
    const labels = cur?.spec.Labels ?? {};
    if (cur && live && labels[LABEL.release] === live.id && labels[LABEL.digest] === req.digest && labels[LABEL.configHash] === req.configHash && cur.observation.update?.state !== "paused") {
      // Nothing would change but the release label: replacing every task for that is churn.
      if (cur.observation.replicas !== spec.instances) await driver.scale(name, spec.instances);
      const r: FlowResult = { outcome: "live", release: releaseView(live), reason: "already live", rollouts: [], swarm: { durationMs: 0 } };
      if (!opts.json) out(`${req.ref} (${short(req.digest)}) is already live as ${live.id}: nothing to replace`);
      return report(r, opts.json);
    }
    const { local, pinned: image } = await imageFor(driver, openStore(ctx.home), ref ?? req.ref, req.digest);
    await driver.prepareVolumes(spec, local);
    const now = Date.now();
    const release = db.createRelease({
      service: name, ref: req.ref, version: req.version, digest: req.digest, configHash: req.configHash, env: req.spec.env, spec: { ...req.spec, strategy: { ...req.spec.strategy, type: spec.strategy.type } },
      strategy: spec.strategy.type, status: "deploying", createdAt: now, previous: live?.id,
    });
    const rollout = db.createRollout({ service: name, kind: "deploy", strategy: spec.strategy.type, target: release.id, previous: live?.id, state: "running", startedAt: now, fast: false, promoteRequested: false });
    const svc = compileService(spec, { id: release.id, version: req.version, digest: req.digest, image, configHash: req.configHash });
    const u = svc.UpdateConfig;
    if (!opts.json) out(`deploying ${req.ref} (${short(req.digest)}) as ${release.id} on Swarm: ${u.Order}, ${u.Parallelism} at a time, monitor ${secs(u.Monitor)}, on failure ${u.FailureAction}`);
    const since = Date.now();
    const { created } = await driver.apply(svc);
    event(db, name, `${created ? "created" : "updated"} Swarm service ${name} for ${release.id} (${image})`, { release: release.id, rollout: rollout.id });
    const { deadline, autoRollback } = limitsOf(spec);
    const w = await driver.watch(name, {
      target: release.id, since, created, deadlineMs: deadline, autoRollback, kind: "deploy",
      onProgress: (m) => {
        event(db, name, m, { release: release.id, rollout: rollout.id });
        if (!opts.json) out(`  ${time(Date.now())} ${m}`);
      },
    });
    const fin = Date.now();
    let reason = w.reason;
    if (w.outcome === "failed" && created && autoRollback) {
      // The first release of a service has nothing to return to: remove it rather than let
      // Swarm restart failing tasks forever.
      await driver.remove(name);
      reason = `${reason}; the service had no earlier release, so kiln removed it`;
    }
    db.tx(() => {
      if (w.outcome === "live") {
        db.updateRollout(rollout.id, { state: "done", finishedAt: fin });
        db.updateRelease(release.id, { status: "live", liveAt: fin });
        if (live && live.id !== release.id && live.status === "live") db.updateRelease(live.id, { status: "superseded", finishedAt: fin });
        db.setMeta("live", release.id);
      } else {
        db.updateRollout(rollout.id, { state: w.outcome === "rolled-back" ? "aborted" : "failed", reason, finishedAt: fin });
        db.updateRelease(release.id, { status: "failed", reason, finishedAt: fin });
      }
    });
    event(db, name, w.outcome === "live" ? `release live: ${release.id}` : `release ${release.id} ${w.outcome}: ${reason}`, { release: release.id, rollout: rollout.id, level: w.outcome === "live" ? "info" : "error" });
    const ingress = w.outcome !== "failed" || !created ? await probeListen(spec) : undefined;
    report({ outcome: w.outcome, release: releaseView(db.getRelease(release.id)!), reason, rollouts: [rolloutView(db.getRollout(rollout.id)!)], swarm: { durationMs: w.durationMs, rollbackMs: w.rollbackMs, ingress } }, opts.json);
  } finally {
    db.close();
  }
}

/** kiln.yaml with the runtime settings a recorded release was deployed with (env, health, volumes…). */
function specOfRelease(spec: Spec, r: Release): Spec {
  const rs = r.spec as Partial<ReleaseSpec> | undefined;
  if (!rs) return spec;
  return {
    ...spec,
    env: rs.env ?? spec.env,
    health: (rs.health as Spec["health"] | undefined) ?? spec.health,
    volumes: rs.volumes ?? spec.volumes,
    drainTimeout: rs.drainTimeout ?? spec.drainTimeout,
  };
}

/**
 * `kiln rollback` on Swarm: back to the release before the live one. When that release is
 * Swarm's PreviousSpec this is the API's rollback (`rollback=previous`, RollbackConfig).
 * Swarm keeps only one previous spec, and none after a rollback, so otherwise kiln
 * re-applies the earlier release's spec itself, with RollbackConfig as the update policy.
 */
export async function swarmRollback(ctx: Context, opts: { json?: boolean }): Promise<void> {
  const spec = ctx.loaded.spec;
  const driver = await driverFor();
  const db = new StateDb(ctx.paths.stateDb);
  try {
    const liveId = db.getMeta("live");
    const live = liveId ? db.getRelease(liveId) : undefined;
    if (!live) throw new KilnError("KILN_E_NOT_FOUND", "nothing is deployed yet, so there is nothing to roll back", { hint: "run `kiln deploy`" });
    const target = live.previous ? db.getRelease(live.previous) : undefined;
    if (!target) throw new KilnError("KILN_E_NOT_FOUND", `${live.id} is the first release: there is nothing earlier to roll back to`, { hint: "deploy another image by name: `kiln deploy NAME:VERSION`" });
    const cur = await driver.mustInspect(spec.name);
    const since = Date.now();
    const native = cur.previousRelease === target.id && cur.observation.specRelease === live.id;
    if (native) await driver.rollback(spec.name);
    else {
      const { pinned: image } = await imageFor(driver, openStore(ctx.home), target.ref, target.digest);
      const svc = compileService(specOfRelease(spec, target), { id: target.id, version: target.version, digest: target.digest, image, configHash: target.configHash }, { replicas: cur.observation.replicas });
      await driver.apply({ ...svc, UpdateConfig: svc.RollbackConfig });
    }
    const how = native ? "Swarm's rollback (its previous spec)" : `a replacement of every task by ${target.id}'s spec (Swarm's previous spec is ${cur.previousRelease ?? "gone"})`;
    const rollout = db.createRollout({ service: spec.name, kind: "rollback", strategy: target.strategy, target: target.id, previous: live.id, state: "running", startedAt: since, fast: true, promoteRequested: false });
    event(db, spec.name, `rolling back from ${live.id} to ${target.id} with ${how}`, { release: target.id, rollout: rollout.id });
    if (!opts.json) out(`rolling back to ${target.id} (${target.ref}) with ${how}`);
    const w: WatchOutcome = await driver.watch(spec.name, {
      target: target.id, since, created: false, kind: native ? "rollback" : "deploy", deadlineMs: limitsOf(spec).deadline, autoRollback: false,
      onProgress: (m) => {
        event(db, spec.name, m, { release: target.id, rollout: rollout.id });
        if (!opts.json) out(`  ${time(Date.now())} ${m}`);
      },
    });
    const fin = Date.now();
    db.tx(() => {
      if (w.outcome === "live") {
        db.updateRollout(rollout.id, { state: "done", finishedAt: fin });
        db.updateRelease(target.id, { status: "live", liveAt: fin, reason: undefined });
        db.updateRelease(live.id, { status: "rolled-back", finishedAt: fin });
        db.setMeta("live", target.id);
      } else db.updateRollout(rollout.id, { state: "failed", reason: w.reason, finishedAt: fin });
    });
    event(db, spec.name, w.outcome === "live" ? `rolled back to ${target.id}` : `rollback to ${target.id} failed: ${w.reason}`, { release: target.id, rollout: rollout.id, level: w.outcome === "live" ? "info" : "error" });
    report({ outcome: w.outcome === "live" ? "live" : "failed", release: releaseView(db.getRelease(target.id)!), reason: w.reason, rollouts: [rolloutView(db.getRollout(rollout.id)!)], swarm: { durationMs: w.durationMs, method: native ? "swarm-rollback" : "re-apply" } }, opts.json, true);
  } finally {
    db.close();
  }
}

/** `kiln scale N` on Swarm: set Replicas, then wait (bounded by the deadline) until N tasks run. */
export async function swarmScale(ctx: Context, instances: number, opts: { json?: boolean }): Promise<void> {
  const spec = ctx.loaded.spec;
  const driver = await driverFor();
  await driver.scale(spec.name, instances);
  const db = new StateDb(ctx.paths.stateDb);
  try {
    db.setMeta("instances", String(instances));
    event(db, spec.name, `scaled to ${instances} instance(s)`);
  } finally {
    db.close();
  }
  const until = Date.now() + limitsOf(spec).deadline;
  let running = 0;
  for (;;) {
    const cur = await driver.mustInspect(spec.name);
    const rel = cur.observation.specRelease;
    running = cur.observation.tasks.filter((t) => t.release === rel && t.desiredState === "running" && t.state === "running").length;
    const extra = cur.observation.tasks.filter((t) => t.state === "running" && t.desiredState !== "running").length;
    if ((running === instances && extra === 0) || Date.now() > until) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  if (opts.json) printJson({ instances, running });
  else out(`desired instances: ${instances} (${running} running)`);
  if (running !== instances) process.exitCode = 1;
}

/** `kiln status [--json]` on Swarm. */
export async function swarmStatus(ctx: Context, opts: { json?: boolean }): Promise<void> {
  const spec = ctx.loaded.spec;
  const driver = await driverFor();
  const cur = await driver.inspect(spec.name);
  const db = new StateDb(ctx.paths.stateDb);
  let live: Release | undefined;
  try {
    const id = db.getMeta("live");
    live = id ? db.getRelease(id) : undefined;
  } finally {
    db.close();
  }
  const ingress = cur ? await probeListen(spec) : undefined;
  const obs = cur?.observation;
  const s = {
    schemaVersion: 1 as const,
    service: spec.name,
    provider: "swarm" as const,
    release: live ? releaseView(live) : undefined,
    desiredInstances: obs?.replicas ?? 0,
    swarm: cur
      ? { serviceId: cur.id, version: cur.version, image: cur.spec.TaskTemplate.ContainerSpec.Image, specRelease: obs!.specRelease, previousRelease: cur.previousRelease, update: obs!.update ? { ...obs!.update, startedAt: iso(obs!.update.startedAt), completedAt: iso(obs!.update.completedAt) } : undefined }
      : undefined,
    ingress,
    releases: obs ? tasksByRelease(obs).filter((g) => g.running + g.starting + g.failed > 0 || g.release === obs.specRelease) : [],
    tasks: (obs?.tasks ?? []).filter((t) => t.desiredState === "running" || t.state === "running").map((t) => ({ ...t, at: iso(t.at) })),
  };
  if (opts.json) return printJson(s);
  out(`service     ${s.service} (Docker Swarm${cur ? ` service ${cur.id.slice(0, 12)}, version ${cur.version}` : ": not created"})`);
  out(`release     ${live ? `${live.id} ${live.ref} ${short(live.digest)} live ${ago(iso(live.liveAt))}` : "none deployed"}`);
  if (obs?.update) out(`update      ${obs.update.state}${obs.update.message ? `: ${obs.update.message}` : ""}`);
  if (ingress) out(`ingress     ${ingress.address} ${ingress.answering ? "answering" : `NOT ANSWERING (${ingress.error ?? ingress.status})`}`);
  out(`tasks       ${s.releases.map((g) => `${g.release}: ${g.running} running${g.starting ? `, ${g.starting} starting` : ""}${g.failed ? `, ${g.failed} failed` : ""}`).join("; ") || "none"}; ${s.desiredInstances} desired`);
  const t = new Table({ head: ["task", "slot", "release", "version", "state", "desired", "error"], style: { head: [], border: [] } });
  for (const k of s.tasks) t.push([k.id.slice(0, 12), String(k.slot ?? "-"), k.release ?? "-", k.version ?? "-", k.state, k.desiredState, k.error ?? ""]);
  out(t.toString());
  if (ingress && !ingress.answering) out(`warning: ${meshHint(ingress)}`);
}

/** `kiln history` on Swarm: the same releases/rollouts shape the controller serves. */
export async function swarmHistory(ctx: Context, opts: { json?: boolean }): Promise<void> {
  const db = new StateDb(ctx.paths.stateDb);
  let h: { releases: ReleaseView[]; rollouts: RolloutView[] };
  try {
    h = { releases: db.listReleases(ctx.loaded.spec.name).map(releaseView), rollouts: db.listRollouts(ctx.loaded.spec.name).map(rolloutView) };
  } finally {
    db.close();
  }
  if (opts.json) return printJson(h);
  const t = new Table({ head: ["release", "image", "digest", "strategy", "status", "created", "reason"], style: { head: [], border: [] } });
  for (const r of h.releases) t.push([r.id, r.ref, short(r.digest), r.strategy, r.status, ago(r.createdAt), r.reason ?? ""]);
  out(t.toString());
}

function updateLines(label: string, u: SwarmUpdateConfig): string {
  return `${label.padEnd(16)} order ${u.Order}, parallelism ${u.Parallelism}, delay ${secs(u.Delay)}, monitor ${secs(u.Monitor)}, failure_action ${u.FailureAction}, max_failure_ratio ${u.MaxFailureRatio}`;
}

/** `kiln plan [REF]` on Swarm: the compiled update_config / rollback_config and what Swarm cannot do. */
export async function swarmPlan(ctx: Context, ref: string | undefined, opts: { strategy?: StrategyName; json?: boolean }): Promise<void> {
  const spec = withStrategy(ctx.loaded.spec, opts.strategy);
  const notes: string[] = [];
  let target: { ref: string; digest?: string; version: string };
  try {
    const req = await buildDeployRequest(ctx, ref, opts.strategy);
    target = { ref: req.ref, digest: req.digest, version: req.version };
  } catch (e) {
    if (!(e instanceof KilnError && e.code === "KILN_E_NOT_FOUND") || ref !== undefined) throw e;
    target = { ref: `${spec.name}:${spec.version}`, version: spec.version };
    notes.push(`${target.ref} is not baked yet: run \`kiln bake\` before deploying`);
  }
  let cur: SwarmServiceView | undefined;
  try {
    cur = await (await driverFor()).inspect(spec.name);
    if (!cur) notes.push(`no Swarm service ${spec.name} yet: the deploy creates it`);
  } catch (e) {
    notes.push(`Swarm not consulted: ${(e as Error).message}`);
  }
  const cap = swarmCapacity(spec);
  const plan = {
    schemaVersion: 1 as const,
    service: spec.name,
    provider: "swarm" as const,
    strategy: spec.strategy.type,
    from: cur ? { release: cur.observation.specRelease ?? null, image: cur.spec.TaskTemplate.ContainerSpec.Image, replicas: cur.observation.replicas } : null,
    to: { ...target, instances: spec.instances },
    bounds: { surge: cap.surge, minHealthy: cap.minHealthy, maxTotal: cap.instances + cap.surge },
    updateConfig: compileUpdateConfig(spec),
    rollbackConfig: compileRollbackConfig(spec),
    limits: explainSwarmLimits(spec),
    notes,
  };
  if (opts.json) return printJson(plan);
  out(`plan: ${cur ? `Swarm service ${spec.name} (${plan.from!.release ?? "?"}, ${plan.from!.replicas} replicas)` : "no service yet"} → ${target.ref}${target.digest ? ` ${short(target.digest)}` : ""}, ${spec.strategy.type}, ${spec.instances} instances`);
  out(`      Swarm performs the rollout; never fewer than ${cap.instances - (plan.updateConfig.Order === "stop-first" ? plan.updateConfig.Parallelism : 0)} running, at most ${plan.updateConfig.Order === "start-first" ? cap.instances + plan.updateConfig.Parallelism : cap.instances}`);
  out(updateLines("update_config", plan.updateConfig));
  out(updateLines("rollback_config", plan.rollbackConfig));
  out("what Swarm cannot do that kiln promises, and what kiln does instead:");
  for (const l of plan.limits) out(`  - ${l.promise}\n      swarm:   ${l.swarm}\n      instead: ${l.instead}`);
  for (const n of notes) out(`note: ${n}`);
}

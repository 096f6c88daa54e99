// The user's commands: deploy, rollback, promote, pause, resume, abort, scale. Each checks
// what it may do, records its intent in state and leaves the acting to the loop.

import { KilnError } from "../errors.js";
import type { SecretKeeper } from "../secrets/keeper.js";
import type { RolloutRecord } from "../state/db.js";
import { planRollback } from "./lifecycle.js";
import type { ServiceState } from "./service-state.js";
import type { DeployRequest, ReleaseView, RolloutView } from "./types.js";
import { releaseView } from "./views.js";

export interface CommandDeps {
  state: ServiceState;
  rolloutView: (r: RolloutRecord) => RolloutView;
  /** end a deploy now and roll back (the loop's abort, forced) */
  abortRollout: (r: RolloutRecord, reason: string) => void;
  imageExists?: (digest: string) => Promise<boolean>;
  /** holds each release's secret values in memory */
  secrets?: SecretKeeper;
}

export class Commands {
  constructor(private readonly d: CommandDeps) {}

  private get s(): ServiceState {
    return this.d.state;
  }

  private activeOrThrow(what: string): RolloutRecord {
    const r = this.s.db.activeRollout(this.s.service);
    if (!r) throw new KilnError("KILN_E_CONTROLLER", `no rollout is in progress to ${what}`, { hint: "see `kiln status`" });
    return r;
  }

  pause(): RolloutView {
    const r = this.activeOrThrow("pause");
    this.s.db.updateRollout(r.id, { paused: true });
    this.s.event("info", `paused the ${r.kind} to ${r.target}`, { rollout: r.id });
    this.s.notice("rollout.paused", `paused the ${r.kind} to ${r.target}`, { rollout: r });
    return this.d.rolloutView({ ...r, paused: true });
  }

  resume(): RolloutView {
    const r = this.activeOrThrow("resume");
    this.s.db.updateRollout(r.id, { paused: false });
    const moved = this.passHold(r);
    this.s.event("info", `resumed the ${r.kind} to ${r.target}${moved ? ` (${moved})` : ""}`, { rollout: r.id });
    this.s.notice("rollout.resumed", `resumed the ${r.kind} to ${r.target}${moved ? ` (${moved})` : ""}`, { rollout: r });
    return this.d.rolloutView(this.s.db.getRollout(r.id)!);
  }

  /** Release a manual hold: a rolling checkpoint, or a canary `pause: manual` step. Returns what moved, if anything. */
  private passHold(r: RolloutRecord): string | undefined {
    const progress = r.progress;
    if (r.strategy === "rolling" && progress.holding) {
      this.s.mergeProgress(r.id, { holding: undefined, checkpointsPassed: [...(progress.checkpointsPassed ?? []), progress.holding.percent] });
      return `checkpoint ${progress.holding.percent}% passed`;
    }
    if (r.strategy === "canary") {
      const steps = this.s.specOf(r.target).strategy.canary?.steps ?? [];
      const i = progress.step ?? 0;
      const st = steps[i];
      if (st && "pause" in st) {
        this.s.mergeProgress(r.id, { step: i + 1, stepStartedAt: this.s.now() });
        return `canary pause ${i + 1}/${steps.length} ended`;
      }
    }
    return undefined;
  }

  /** Stop a deploy now and return to the release that was live (whatever autoRollback says). */
  abort(): RolloutView {
    const r = this.activeOrThrow("abort");
    if (r.kind !== "deploy") throw new KilnError("KILN_E_CONTROLLER", "a rollback is in progress; it cannot be aborted", { hint: "wait for it to finish" });
    this.d.abortRollout(r, "aborted by `kiln abort`");
    return this.d.rolloutView(this.s.db.getRollout(r.id)!);
  }

  /**
   * Refuse a deploy that could not be undone or could not start: its image, or the image of
   * the release it would roll back to, is missing from the store.
   */
  async checkDeployable(req: DeployRequest): Promise<void> {
    if (!this.d.imageExists) return;
    if (!(await this.d.imageExists(req.digest))) {
      throw new KilnError("KILN_E_NOT_FOUND", `image ${req.ref} (${req.digest.slice(0, 19)}) is not in the store`, { hint: "bake it first (`kiln bake`)" });
    }
    const live = this.s.liveRelease();
    if (live && !(await this.d.imageExists(live.digest))) {
      throw new KilnError("KILN_E_NOT_FOUND", `the rollback target ${live.id} (${live.ref}, ${live.digest.slice(0, 19)}) is missing from the image store`, {
        hint: `a deploy now could not be rolled back: re-bake ${live.ref} from its sources, or deploy it again first`,
      });
    }
  }

  deploy(req: DeployRequest): { release: ReleaseView; rollout: RolloutView } {
    const db = this.s.db;
    const active = db.activeRollout(this.s.service);
    if (active) {
      throw new KilnError("KILN_E_CONTROLLER", `a rollout is already in progress (${active.kind} to ${active.target})`, { hint: "wait for it to finish (`kiln status`)" });
    }
    const now = this.s.now();
    const live = this.s.liveRelease();
    const strategy = req.strategy ?? req.spec.strategy.type;
    if (req.spec.secrets || req.secretValues) {
      if (!this.d.secrets) throw new KilnError("KILN_E_CONTROLLER", "this controller cannot take secrets", { hint: "run the controller with `kiln up`" });
      this.d.secrets.check(req.spec.secrets, req.secretValues);
    }
    const { rel, rollout } = db.tx(() => {
      const rel = db.createRelease({
        service: this.s.service, ref: req.ref, version: req.version, digest: req.digest, configHash: req.configHash, env: req.spec.env,
        spec: req.spec, strategy, status: "deploying", createdAt: now, previous: live?.id,
        ...(req.promotedFrom ? { promotedFrom: req.promotedFrom } : {}),
      });
      db.setFact(this.s.service, "instances", req.spec.instances);
      const rollout = db.createRollout({ service: this.s.service, kind: "deploy", strategy, target: rel.id, previous: live?.id, state: "running", startedAt: now, fast: false, promoteRequested: false });
      return { rel, rollout };
    });
    if (req.secretValues && req.spec.secrets) this.d.secrets?.hold(rel.id, req.secretValues);
    this.s.event("info", `deploying ${req.ref} (${req.digest.slice(0, 19)}) as ${rel.id}, ${strategy}`, { release: rel.id, rollout: rollout.id });
    this.s.notice("rollout.started", `deploying ${req.ref} as ${rel.id} with ${strategy}`, { rollout });
    return { release: releaseView(rel), rollout: this.d.rolloutView(rollout) };
  }

  /**
   * Back to the release that was live before the current one: instantly while its fleet is
   * still warm (blue-green keep window), else rolled out again, fast (see planRollback).
   */
  rollback(): { release: ReleaseView; rollout: RolloutView } {
    const db = this.s.db;
    if (db.activeRollout(this.s.service)) throw new KilnError("KILN_E_CONTROLLER", "a rollout is in progress", { hint: "wait for it to finish; a failing release rolls itself back" });
    const live = this.s.liveRelease();
    if (!live) throw new KilnError("KILN_E_NOT_FOUND", "nothing is deployed yet, so there is nothing to roll back", { hint: "run `kiln deploy`" });
    const target = live.previous ? db.getRelease(live.previous) : undefined;
    if (!target) throw new KilnError("KILN_E_NOT_FOUND", `release ${live.id} has no previous release to roll back to`, { hint: "deploy an earlier image with `kiln deploy NAME:VERSION`" });
    const plan = planRollback({ desired: this.s.desiredInstances(), warm: this.s.warmStandby(target.id) });
    const rollout = db.createRollout({
      service: this.s.service, kind: "rollback", strategy: plan.strategy, target: target.id, previous: live.id,
      state: "running", startedAt: this.s.now(), fast: true, promoteRequested: true,
    });
    this.s.event("info", `rolling back ${live.id} → ${target.id} (${plan.instant ? "instant: previous fleet still warm" : "replacement: previous fleet gone"})`, { rollout: rollout.id, release: target.id });
    this.s.notice("rollout.started", `rolling back ${live.id} → ${target.id} (${plan.instant ? "instant" : "by replacement"})`, { rollout });
    return { release: releaseView(target), rollout: this.d.rolloutView(rollout) };
  }

  scale(instances: number): number {
    if (!Number.isInteger(instances) || instances < 0 || instances > 1000) {
      throw new KilnError("KILN_E_USAGE", `cannot scale to ${instances}`, { hint: "give a whole number from 0 to 1000" });
    }
    this.s.db.setFact(this.s.service, "instances", instances);
    this.s.event("info", `scaled to ${instances} instance(s)`);
    return instances;
  }

  promote(): RolloutView {
    const r = this.s.db.activeRollout(this.s.service);
    if (r && r.kind === "deploy" && (r.strategy === "canary" || r.strategy === "rolling")) {
      const moved = this.passHold(r);
      if (!moved) throw new KilnError("KILN_E_CONTROLLER", `the ${r.strategy} rollout to ${r.target} is not holding at a pause`, { hint: "see `kiln status`; `kiln promote` ends a manual canary pause or rolling checkpoint" });
      this.s.event("info", `promoted: ${moved}`, { rollout: r.id });
      return this.d.rolloutView(this.s.db.getRollout(r.id)!);
    }
    if (!r || r.strategy !== "blue-green") throw new KilnError("KILN_E_CONTROLLER", "no rollout is waiting for promotion", { hint: "see `kiln status`" });
    this.s.db.updateRollout(r.id, { promoteRequested: true });
    this.s.event("info", `promotion requested for ${r.target}`, { rollout: r.id });
    return this.d.rolloutView({ ...r, promoteRequested: true });
  }
}

// Applying the release lifecycle's decisions (lifecycle.ts) to state, each in one transaction.

import type { RolloutRecord } from "../state/db.js";
import { autoRollbackOf, planAbort, planFinish } from "./lifecycle.js";
import type { ServiceState } from "./service-state.js";

export class Transitions {
  constructor(private readonly state: ServiceState) {}

  /** Apply planFinish: the target is live, the previous release superseded or rolled back. */
  finish(rollout: RolloutRecord, reason: string): void {
    const { db, service } = this.state;
    const now = this.state.now();
    const prevLiveId = db.getFact(service, "live");
    const prevLive = prevLiveId ? db.getRelease(prevLiveId) : undefined;
    const plan = planFinish({ rollout, prevLive, keepPreviousFor: this.state.specOf(rollout.target).strategy.blueGreen.keepPreviousFor, now });
    const equivalent = new Set(this.state.equivalentReleases(rollout));
    db.tx(() => {
      // skipMatching: instances kept because they already run the target's digest and config join the release.
      for (const r of db.liveInstances(service)) if (equivalent.has(r.release)) db.updateInstance(r.id, { release: rollout.target });
      db.updateRollout(rollout.id, { state: "done", finishedAt: now, reason });
      db.updateRelease(rollout.target, { status: "live", liveAt: now, reason: undefined });
      if (plan.previous) db.updateRelease(plan.previous.id, { status: plan.previous.status, finishedAt: now });
      db.setFact(service, "live", plan.live);
      db.setFact(service, "standbyUntil", plan.standbyUntil);
    });
    this.state.event("info", `${rollout.kind === "rollback" ? "rolled back to" : "release live:"} ${rollout.target} (${reason})`, { rollout: rollout.id, release: rollout.target });
    if (rollout.kind === "rollback") this.state.notice("rollout.rolled-back", `rolled back to ${rollout.target}`, { rollout, reason });
    else this.state.notice("rollout.live", `release live: ${rollout.target}`, { rollout, reason });
  }

  /** Apply planAbort: the rollout ends, a deploy's release fails, a rollback starts if it should. */
  abort(rollout: RolloutRecord, reason: string, force: boolean): void {
    const { db, service } = this.state;
    const now = this.state.now();
    const live = db.getFact(service, "live");
    const autoRollback = force || autoRollbackOf(rollout.strategy, this.state.specOf(rollout.target));
    const plan = planAbort({ rollout, autoRollback, force, live, desired: this.state.desiredInstances(), warm: live ? this.state.warmStandby(live) : 0 });
    const back = db.tx(() => {
      db.updateRollout(rollout.id, { state: "aborted", finishedAt: now, reason });
      if (plan.targetStatus) db.updateRelease(rollout.target, { status: plan.targetStatus, reason, finishedAt: now });
      if (plan.rollback) {
        return db.createRollout({ service, kind: "rollback", strategy: plan.rollback.strategy, target: plan.rollback.target, previous: rollout.target, state: "running", startedAt: now, fast: true, promoteRequested: true });
      }
      return undefined;
    });
    this.state.event("error", `release ${rollout.target} failed: ${reason}${live && autoRollback ? ` — rolling back to ${live}` : ""}`, { rollout: rollout.id, release: rollout.target });
    this.state.notice("rollout.aborted", `${rollout.kind} to ${rollout.target} aborted`, { rollout, reason });
    if (back) this.state.notice("rollout.started", `rolling back ${rollout.target} → ${back.target} (automatic)`, { rollout: back, reason });
  }

}

// The step interpreter: what each step a planner returns does to state, the provider and the
// router. Its intent is written to state first (instances launching/terminating, the
// rollout's progress), so a controller killed between two steps resumes from the rows.

import { KilnError } from "../errors.js";
import type { Step } from "../rollout/types.js";
import type { RolloutRecord, StateDb } from "../state/db.js";
import type { PromotionChecks } from "./checks.js";
import type { InstanceActions } from "./instances.js";
import type { FleetObserver } from "./observe.js";
import type { RouterSync } from "./router-sync.js";
import type { ServiceState } from "./service-state.js";
import type { Transitions } from "./transitions.js";
import { isSwitchConfirmed, planLaunchCount } from "./wake.js";

export interface StepDeps {
  state: ServiceState;
  observer: FleetObserver;
  instances: InstanceActions;
  routerSync: RouterSync;
  checks: PromotionChecks;
  transitions: Transitions;
  /** most instances starting at once; absent: no bound */
  launchConcurrency?: number;
  /** the loop's wake-up: with it, launches run beside the loop and their outcome wakes it (InstanceActions.launch) */
  wake?: () => void;
}

/** What the pass knows that a step's action depends on. */
export interface PassContext {
  /** instances launched and not yet healthy (counted against the launch bound) */
  starting: number;
  /**
   * Stops the pass starts once its routing table is written (controller.tick): a terminate
   * step then costs no table write of its own. Absent: each terminate writes the table and
   * starts its stops itself.
   */
  stops?: { id: string; reason: string }[];
}

export class StepInterpreter {
  /** Instances launched to replace failed ones outside a rollout, since this controller started (metrics). */
  healed = 0;

  constructor(private readonly d: StepDeps) {}

  /**
   * Act on one step. Its intent is what it writes to state before calling the provider or
   * router (instances launching/terminating, the rollout's progress), which is what a restart
   * reads; a failure is an error event and the step is planned again next tick.
   */
  async apply(step: Step, rollout: RolloutRecord | undefined, pass: PassContext = { starting: 0 }): Promise<boolean> {
    if (step.kind === "wait") return false;
    try {
      return (await this.execute(step, rollout, pass)) !== false;
    } catch (e) {
      this.d.state.event("error", `${step.kind} failed: ${(e as Error).message}`, { rollout: rollout?.id });
      return true;
    }
  }

  /** Returns false when the step did nothing (a launch held back by the launch bound). */
  private async execute(step: Step, rollout: RolloutRecord | undefined, pass: PassContext): Promise<void | false> {
    const { db } = this.d.state;
    const now = this.d.state.now();
    const each = (ids: string[], patch: Parameters<StateDb["updateInstances"]>[1]) => db.updateInstances(ids, patch);
    switch (step.kind) {
      case "launch": {
        // One read of the release for the whole step (a 5,000-instance step launches 5,000).
        const rel = db.getRelease(step.release);
        if (!rel) throw new KilnError("KILN_E_NOT_FOUND", `release ${step.release} not found`);
        // Bounded by how many instances this machine starts at once: the planner asks for the
        // rest on a later pass (it counts the ones launched), woken when one turns healthy.
        const count = planLaunchCount({ want: step.count, starting: pass.starting, bound: this.d.launchConcurrency });
        if (count === 0) return false;
        pass.starting += count;
        // Outside a rollout, a launch replaces instances that died or failed: the fleet heals
        // (the steady-state planner names its replacements "heal: …", rollout/steady.ts).
        if (!rollout && step.reason.startsWith("heal")) {
          this.healed += count;
          this.d.state.notice("fleet.healing", `launching ${count} instance(s) of ${rel.id} (${step.reason})`, { release: rel.id, reason: step.reason });
        }
        // Not awaited when the loop can be woken: the pass goes on (and the next ones run) while
        // the provider starts the instances; the intent rows are written before this returns.
        await this.d.instances.launch(rel, count, rollout, this.d.wake ? { wake: this.d.wake } : undefined);
        return;
      }
      case "register":
        each(step.ids, { routing: "active", drainingSince: undefined });
        this.d.state.event("info", `in rotation: ${step.ids.join(", ")}`, { rollout: rollout?.id });
        return;
      case "standby":
        each(step.ids, { routing: "standby" });
        return;
      case "drain":
        each(step.ids, { routing: "draining", drainingSince: now });
        this.d.state.event("info", `draining ${step.ids.join(", ")} (${step.reason})`, { rollout: rollout?.id });
        return;
      case "terminate":
        // Out of the routing table first, then stopped; the stop itself runs in the background.
        // In a pass, the table written at its end is the one that takes them out: one write per
        // pass, not one per terminate step and another at the end (each ~10–40 ms on this machine,
        // hundreds under load, with the pass and its next decisions waiting).
        each(step.ids, { state: "terminating", routing: "none" });
        if (pass.stops) {
          for (const id of step.ids) pass.stops.push({ id, reason: step.reason });
          return;
        }
        await this.d.routerSync.sync(this.d.observer.lastStats);
        for (const id of step.ids) this.d.instances.startTerminate(id, step.reason);
        return;
      case "switch": {
        const active: string[] = [];
        db.tx(() => {
          const standby: string[] = [];
          const toStandby = new Set(step.standby);
          for (const r of db.liveInstances(this.d.state.service)) {
            if (r.release === step.to && r.routing !== "draining" && r.state !== "terminating") active.push(r.id);
            else if (toStandby.has(r.id)) standby.push(r.id);
          }
          db.updateInstances(active, { routing: "active", drainingSince: undefined });
          db.updateInstances(standby, { routing: "standby" });
        });
        const decidedAt = this.d.state.now();
        this.d.state.event("info", `switched traffic to ${step.to}`, { rollout: rollout?.id, release: step.to });
        // The flip is one routing write and one read-back, done here rather than at the end of
        // the pass and the next pass's observation: once the router reads every new active
        // instance back in rotation, the switch is recorded as confirmed (what mark-switched
        // records; the planner's rule, isSwitchConfirmed). Not confirmed yet: the planner's
        // mark-switched does it on a later pass (read-backs retried quickly, RouterSync).
        await this.d.routerSync.sync(this.d.observer.lastStats);
        if (rollout && (await this.d.observer.readBackRouter()) && isSwitchConfirmed(active, (id) => this.d.observer.target(id)?.inRotation ?? false)) {
          const at = this.d.state.now();
          db.updateRollout(rollout.id, { switchedAt: at });
          this.d.state.event("info", `router confirms ${step.to} in rotation (${at - decidedAt} ms after the switch)`, { rollout: rollout.id, release: step.to });
        }
        return;
      }
      case "mark-switched":
        if (rollout) db.updateRollout(rollout.id, { switchedAt: now });
        return;
      case "progress":
        if (rollout) this.d.state.mergeProgress(rollout.id, step.set);
        // A canary step passed: its reason (the weight, or the analysis verdict with its numbers) stays
        // in the events, where history and the dashboard find it after the tick that decided it.
        if (rollout && step.set.step !== undefined) this.d.state.event("info", step.reason, { rollout: rollout.id, release: rollout.target });
        return;
      case "quarantine": {
        // Out of rotation and stopped; its record and log stay for `kiln logs`; the strategy launches a replacement.
        const reason = `quarantined: ${step.reason}`;
        // The instances and the rollout's count of them change together: a restart sees both or neither.
        db.tx(() => {
          db.updateInstances(step.ids, { state: "terminating", routing: "none", reason });
          if (rollout) this.d.state.mergeProgress(rollout.id, (cur) => ({ quarantined: (cur.quarantined ?? 0) + step.ids.length }));
        });
        await this.d.routerSync.sync(this.d.observer.lastStats);
        for (const id of step.ids) {
          this.d.state.event("warn", `quarantined ${id} (${step.reason}); \`kiln logs ${id}\` shows its log`, { instance: id, rollout: rollout?.id });
          this.d.instances.startTerminate(id, reason);
        }
        this.d.state.notice("instance.quarantined", `quarantined ${step.ids.join(", ")}`, { rollout, release: rollout?.target, reason: step.reason, instances: step.ids });
        return;
      }
      case "check":
        if (rollout) this.d.checks.start(rollout, step.ids);
        return;
      case "done":
        if (rollout) this.d.transitions.finish(rollout, step.reason);
        return;
      case "abort":
        if (rollout) this.d.transitions.abort(rollout, step.reason, false);
        return;
    }
  }
}

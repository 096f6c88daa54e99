// The reconcile loop: observe (provider, router, probes) → plan (pure strategy) →
// act (intent recorded first, idempotent) → record (state). Any tick can be re-run after a crash.
// Decisions live in pure planners (rollout/, routing-plan, analysis-window, lifecycle);
// this file runs the loop; step-interpreter.ts acts on the steps.

import { KilnError } from "../errors.js";
import type { NotifyEvent } from "../notify/event.js";
import type { Provider } from "../providers/provider.js";
import { nextSteps, planSteady } from "../rollout/index.js";
import type { SecretKeeper } from "../secrets/keeper.js";
import type { RolloutParams, RolloutStatus, Step } from "../rollout/types.js";
import type { Release, RolloutRecord, StateDb } from "../state/db.js";
import type { ReleaseSettings } from "../state/release-settings.js";
import type { MaintenanceMode, Router, RouterStats } from "../traffic/router.js";
import { computeAnalysisWindow, samplesToDrop, type CounterSample } from "./analysis-window.js";
import { PromotionChecks } from "./checks.js";
import { Commands } from "./commands.js";
import { Lease } from "./lease.js";
import { InstanceActions } from "./instances.js";
import { exitMessage, FleetObserver, type ObserverDeps, type ProbeFn } from "./observe.js";
import { RouterSync } from "./router-sync.js";
import { ServiceState } from "./service-state.js";
import { StepInterpreter, type PassContext } from "./step-interpreter.js";
import { Transitions } from "./transitions.js";
import { isWakeAfter, nextWarmupEnd } from "./wake.js";
import type { DeployRequest, ReleaseView, RolloutView, StatusView } from "./types.js";
import { releaseView, rolloutView, statusView } from "./views.js";

export interface Clock {
  now(): number;
}

export interface ControllerDeps {
  service: string;
  /** spec used for health and routing before the first release */
  defaultSpec: ReleaseSettings;
  listen: string;
  db: StateDb;
  provider: Provider;
  router: Router;
  probe: ProbeFn;
  /** the probe answered in memory, when it is (simulation): see ObserverDeps.probeNow */
  probeNow?: ObserverDeps["probeNow"];
  clock: Clock;
  newId?: (release: string) => string;
  log?: (line: string) => void;
  /** per-instance deadline to turn healthy; default 60 s + grace */
  instanceDeadline?: number;
  /** lease owner id ("pid@host"); with it, the controller acts only while it holds the service's lease */
  owner?: string;
  leaseTtlMs?: number;
  /** whether an image is still in the store (checked before a deploy starts) */
  imageExists?: (digest: string) => Promise<boolean>;
  /** rollout and fleet events for webhooks (the notifier queues them and returns at once) */
  notify?: (e: NotifyEvent) => void;
  /** holds releases' secret values in memory (kiln.yaml `secrets`); without it a release with secrets cannot launch */
  secrets?: SecretKeeper;
  /**
   * Called when something a decision waits on happened (a pass acted, a health result changed,
   * a table was written, a command arrived): the loop runs its next pass at once (see wake.ts).
   * Without it (simulation, tests driving tick()) nothing changes.
   */
  wake?: () => void;
  /** first delay of the quick poll of a new instance's port (see planProbeDelay); absent: probes follow the health interval */
  startPollMs?: number;
  /** the quick poll's longest delay (see planProbeDelay); absent: it doubles up to the health interval */
  startPollMaxMs?: number;
  /** most instances starting at once (launched, port not answering yet); absent: no bound (see planLaunchConcurrency) */
  launchConcurrency?: number;
}

export class Controller {
  private readonly d: ControllerDeps;
  private readonly state: ServiceState;
  private readonly observer: FleetObserver;
  private readonly lease: Lease;
  private readonly routerSync: RouterSync;
  private readonly checks: PromotionChecks;
  private readonly commands: Commands;
  private readonly instances: InstanceActions;
  private readonly transitions: Transitions;
  private readonly steps: StepInterpreter;
  /** per-release router counters over time, for canary analysis windows (oldest first) */
  private samples: CounterSample[] = [];
  private lastSteps: Step[] = [];
  private ticking = false;
  /** set by stopAll: the loop must not re-register instances that are being stopped */
  private halted = false;
  /** the earliest instant a warming instance is confirmed, as of the last pass */
  private warmupDue?: number;

  constructor(deps: ControllerDeps) {
    this.d = deps;
    const now = () => deps.clock.now();
    const s = (this.state = new ServiceState({ service: deps.service, db: deps.db, defaultSpec: deps.defaultSpec, now, log: deps.log, notify: deps.notify }));
    this.observer = new FleetObserver({
      service: deps.service, db: deps.db, provider: deps.provider, router: deps.router, probe: deps.probe, probeNow: deps.probeNow, now, log: deps.log,
      startPollMs: deps.startPollMs, startPollMaxMs: deps.startPollMaxMs, wake: deps.wake,
      specOf: (id) => s.specOf(id),
      onUnhealthy: (rec, reason) => s.eventOrLog("warn", `instance ${rec.id} failed health checks: ${reason}`, { instance: rec.id, release: rec.release }),
      onExited: (rec, code) => s.eventOrLog("warn", exitMessage(rec.id, code, deps.provider.logPath?.(rec.id)), { instance: rec.id, release: rec.release }),
    });
    this.lease = new Lease({ db: deps.db, service: deps.service, owner: deps.owner, ttlMs: deps.leaseTtlMs ?? 5000, now, onLost: (holder) => s.event("warn", `not acting: controller ${holder} holds the lease`) });
    this.routerSync = new RouterSync(s, deps.router, deps.wake);
    this.checks = new PromotionChecks(s, deps.probe);
    this.instances = new InstanceActions(s, deps.provider, this.observer, deps.newId, deps.secrets);
    this.transitions = new Transitions(s);
    this.steps = new StepInterpreter({ state: s, observer: this.observer, instances: this.instances, routerSync: this.routerSync, checks: this.checks, transitions: this.transitions, launchConcurrency: deps.launchConcurrency, wake: deps.wake });
    this.commands = new Commands({ state: s, rolloutView: (r) => this.rolloutView(r), abortRollout: (r, reason) => this.transitions.abort(r, reason, true), imageExists: deps.imageExists, secrets: deps.secrets });
  }

  /** On start: adopt what state and the provider agree on (see InstanceActions.adopt). */
  adopt(): Promise<void> {
    return this.instances.adopt();
  }

  private rolloutParams(rel: ReleaseSettings, strategy: RolloutRecord["strategy"], fast: boolean): RolloutParams {
    return {
      strategy,
      instances: this.state.desiredInstances(),
      // The fast (rollback) path is replace-before-remove whatever the release allowed: every
      // replacement is launched at once, and no healthy serving instance leaves before one stands in.
      rolling: fast ? { ...rel.strategy.rolling, minHealthyPercent: 100, maxHealthyPercent: 200 } : rel.strategy.rolling,
      blueGreen: rel.strategy.blueGreen,
      canary: rel.strategy.canary,
      maxQuarantined: rel.strategy.maxQuarantined,
      drainTimeout: rel.drainTimeout,
      instanceDeadline: this.d.instanceDeadline ?? 60_000 + rel.health.grace,
    };
  }

  /** The earliest instant the loop should look again without a wake-up: a probe, a warmup's end, a router read-back retry. */
  nextDueAt(): number | undefined {
    // Stopping (`kiln down`): nothing falls due; the probes probeDue no longer starts would stay due.
    if (this.halted) return undefined;
    let at: number | undefined;
    for (const t of [this.observer.nextDueAt(), this.routerSync.nextReadBackAt(), this.warmupDue]) if (t !== undefined && (at === undefined || t < at)) at = t;
    return at;
  }

  /**
   * The earliest instant something other than a probe falls due (a warmup's end, a router
   * read-back retry, a grace period's end): the loop runs a pass then (see planLoopTurn).
   */
  nextPassDueAt(): number | undefined {
    if (this.halted) return undefined;
    let at: number | undefined;
    for (const t of [this.observer.nextViewChangeAt(), this.routerSync.nextReadBackAt(), this.warmupDue]) if (t !== undefined && (at === undefined || t < at)) at = t;
    return at;
  }

  /**
   * Start the probes due now, without a pass: a new instance's port is polled every 5–25 ms
   * while it starts, and a pass per poll (provider and router read, plan) costs the CPU the
   * starting instances need. Its first answer changes its health, which wakes the loop.
   */
  probeDue(): void {
    if (this.ticking || this.halted) return;
    this.observer.probeDue();
  }

  /** One reconcile pass. Never runs concurrently with itself. */
  async tick(): Promise<Step[]> {
    if (this.ticking || this.halted) return [];
    this.ticking = true;
    try {
      if (!this.lease.hold()) return [];
      // KILN_TRACE_PASSES=1: each pass's steps and where its time went (observe, plan, act, router write), in the controller log.
      const T = [performance.now()];
      const stats = await this.observer.observe();
      T.push(performance.now());
      this.routerSync.readBackSeen(stats, (id) => this.observer.target(id)?.inRotation ?? false, this.state.now());
      // Without the router's read-back nothing can be confirmed or drained safely: wait for it.
      if (!stats) return [];
      const observed = this.observer.fleet();
      const { db, service } = this.state;
      const rollout = db.activeRollout(service);
      const now = this.state.now();
      this.warmupDue = undefined;
      let steps: Step[];
      if (rollout?.paused) {
        steps = [{ kind: "wait", reason: "paused: `kiln resume` continues", paused: true }];
      } else if (rollout) {
        const rel = this.state.specOf(rollout.target);
        if (rollout.strategy === "canary" && !rollout.fast) {
          observed.analysis = computeAnalysisWindow({
            samples: this.samples, current: stats.releases, canary: rollout.target, previous: rollout.previous,
            withInstances: new Set(db.liveInstances(service).map((r) => r.release)), windowMs: rel.strategy.canary?.analysis.window ?? 30_000,
            stepStartedAt: rollout.progress.stepStartedAt ?? rollout.startedAt, now,
          });
        }
        const check = this.checks.verdict(rollout.id);
        if (check) observed.checks = check;
        steps = nextSteps(this.rolloutParams(rel, rollout.strategy, rollout.fast), this.rolloutStatus(rollout), observed, now);
        if (this.d.wake) {
          const warmup = rollout.fast ? 0 : rollout.strategy === "rolling" ? rel.strategy.rolling.instanceWarmup : rollout.strategy === "canary" ? (rel.strategy.canary?.instanceWarmup ?? 0) : 0;
          this.warmupDue = nextWarmupEnd(observed.instances, warmup, now);
        }
      } else {
        const live = this.state.liveRelease();
        steps = planSteady(
          { live: live?.id, instances: this.state.desiredInstances(), drainTimeout: this.state.specOf(live?.id).drainTimeout, keepStandbyUntil: db.getFact(service, "standbyUntil") },
          observed,
          now,
        );
      }
      this.lastSteps = steps;
      this.samples.push({ at: now, releases: stats.releases });
      this.samples.splice(0, samplesToDrop(this.samples, now));
      // Instances still coming up, for the launch bound (a step's launches count as they go).
      const pass: PassContext = { starting: this.d.launchConcurrency === undefined ? 0 : this.observer.startingCount(), stops: [] };
      const acted: Step[] = [];
      T.push(performance.now());
      try {
        for (const step of steps) if (await this.steps.apply(step, rollout, pass)) acted.push(step);
        T.push(performance.now());
        // The router's latest read-back: a step may have read it again after its own write (switch).
        await this.routerSync.sync(this.observer.lastStats ?? stats);
        T.push(performance.now());
      } finally {
        // Out of the table just written (terminate steps): now they are stopped.
        this.instances.startTerminateAll(pass.stops!);
      }
      if (process.env.KILN_TRACE_PASSES) {
        const ms = T.slice(1).map((t, i) => (t - T[i]!).toFixed(1));
        this.d.log?.(`pass [${steps.map((x) => x.kind).join(",")}] observe ${ms[0]} plan ${ms[1]} act ${ms[2]} router ${ms[3]} ms`);
      }
      // What this pass did is read back by the next one: run it now, not at the next tick.
      if (isWakeAfter(acted)) this.d.wake?.();
      return steps;
    } finally {
      this.ticking = false;
    }
  }

  private rolloutStatus(rollout: RolloutRecord): RolloutStatus {
    return {
      target: rollout.target, previous: rollout.previous, startedAt: rollout.startedAt, switchedAt: rollout.switchedAt,
      promoteRequested: rollout.promoteRequested, fast: rollout.fast, progress: { ...rollout.progress }, equivalent: this.state.equivalentReleases(rollout),
      rollback: rollout.kind === "rollback",
    };
  }

  // ---------------------------------------------------------------- lease, commands, views

  holdLease(): boolean { return this.lease.hold(); }
  /** Take the lease; `takeFrom` names a holder known to be dead (its process is gone on this host). */
  takeLease(takeFrom: string | undefined): boolean { return this.lease.take(takeFrom); }
  leaseHolder(): string | undefined { return this.lease.holder(); }
  releaseLease(): void { this.lease.release(); }

  liveRelease(): Release | undefined { return this.state.liveRelease(); }
  desiredInstances(): number { return this.state.desiredInstances(); }
  pause(): RolloutView { return this.woken(this.commands.pause()); }
  resume(): RolloutView { return this.woken(this.commands.resume()); }
  abort(): RolloutView { return this.woken(this.commands.abort()); }
  checkDeployable(req: DeployRequest): Promise<void> { return this.commands.checkDeployable(req); }
  deploy(req: DeployRequest): { release: ReleaseView; rollout: RolloutView } { return this.woken(this.commands.deploy(req)); }
  rollback(): { release: ReleaseView; rollout: RolloutView } { return this.woken(this.commands.rollback()); }
  scale(instances: number): number { return this.woken(this.commands.scale(instances)); }
  promote(): RolloutView { return this.woken(this.commands.promote()); }

  /** A command changed what the loop decides on: the next pass runs at once. */
  private woken<T>(result: T): T {
    this.d.wake?.();
    return result;
  }

  /**
   * `kiln maintenance on|off`: persist the mode (service-scoped), push the table and read it
   * back from the router; the mode counts as applied only once the router reports it.
   */
  async setMaintenance(mode: MaintenanceMode | undefined): Promise<{ maintenance: MaintenanceMode | null; tableVersion: number }> {
    const { db, service } = this.state;
    db.setFact(service, "maintenance", mode);
    this.d.wake?.();
    // The tick loop pushes the table (one writer, no version race); wait, bounded, until the router reports it.
    const want = JSON.stringify(mode ?? null);
    const until = this.d.clock.now() + 10_000;
    let stats = await this.d.router.stats();
    while (JSON.stringify(stats.maintenance ?? null) !== want && this.d.clock.now() < until) {
      await new Promise((r) => setTimeout(r, 50));
      stats = await this.d.router.stats();
    }
    if (JSON.stringify(stats.maintenance ?? null) !== want) {
      throw new KilnError("KILN_E_CONTROLLER", `the router did not apply maintenance ${mode ? "on" : "off"} (it reports ${JSON.stringify(stats.maintenance ?? "off")})`, {
        hint: "see the controller's and the router's logs; the controller retries on its next tick",
      });
    }
    return { maintenance: stats.maintenance ?? null, tableVersion: stats.tableVersion };
  }

  /** Stop every instance (used by `kiln down`). */
  async stopAll(): Promise<void> {
    const { db, service } = this.state;
    this.halted = true;
    while (this.ticking) await new Promise((r) => setTimeout(r, 10));
    // Launches still with the provider finish first: what they started is stopped below with the rest.
    await this.instances.launchesSettled();
    const recs = db.liveInstances(service);
    db.updateInstances(recs.map((r) => r.id), { routing: "none" });
    await this.routerSync.sync(undefined);
    for (const r of recs) this.instances.startTerminate(r.id, "kiln down");
    await this.settle();
    // Anything the provider still runs that state did not know about goes too.
    for (const inst of await this.d.provider.list(service)) {
      if (inst.state === "running") await this.d.provider.terminate(inst.id, { graceMs: 2000 });
    }
  }

  settle(): Promise<void> {
    return this.instances.settle();
  }

  releaseView(r: Release): ReleaseView { return releaseView(r); }
  rolloutView(r: RolloutRecord): RolloutView { return rolloutView(r, this.lastSteps); }

  rolloutById(id: number): RolloutView | undefined {
    const r = this.state.db.getRollout(id);
    return r ? this.rolloutView(r) : undefined;
  }

  /** Instances launched to replace failed ones outside a rollout, since this controller started (metrics). */
  get healed(): number {
    return this.steps.healed;
  }

  /** The router's counters as last observed (per release, per target); undefined before the first observation. */
  routerStats(): RouterStats | undefined {
    return this.observer.lastStats;
  }

  async status(): Promise<StatusView> {
    return statusView({ state: this.state, observer: this.observer, listen: this.d.listen, rolloutView: (r) => this.rolloutView(r), provider: this.d.provider });
  }

  history(): { releases: ReleaseView[]; rollouts: RolloutView[] } {
    const { db, service } = this.state;
    return { releases: db.listReleases(service).map(releaseView), rollouts: db.listRollouts(service).map((r) => this.rolloutView(r)) };
  }
}

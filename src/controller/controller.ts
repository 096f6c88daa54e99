// The reconcile loop: observe (provider, router, probes) → plan (pure strategy) →
// act (journaled, idempotent) → record (state). Any tick can be re-run after a crash.

import { randomBytes } from "node:crypto";
import { KilnError } from "../errors.js";
import type { Provider } from "../providers/provider.js";
import { nextSteps, phaseOf, planSteady } from "../rollout/index.js";
import type { FleetInstance, Observed, RolloutProgress, RolloutSpec, RolloutStatus, Step, WindowStats } from "../rollout/types.js";
import type { InstanceRecord, Release, RolloutRecord, StateDb } from "../state/db.js";
import { windowOf, type Counters, type Router, type RouterStats, type RoutingTable, type Target, type TargetStatus } from "../traffic/router.js";
import { initialHealth, phaseFrom, recordProbe, type HealthParams, type ProbeOutcome, type TrackedHealth } from "./health-tracker.js";
import type { DeployRequest, InstanceView, ReleaseSpec, ReleaseView, RolloutView, StatusView } from "./types.js";

export interface Clock {
  now(): number;
}

export interface ControllerDeps {
  service: string;
  /** spec used for health and routing before the first release */
  defaultSpec: ReleaseSpec;
  listen: string;
  db: StateDb;
  provider: Provider;
  router: Router;
  probe: (address: string, path: string, timeoutMs: number) => Promise<ProbeOutcome>;
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
}

interface Runtime {
  health: Map<string, TrackedHealth>;
  probing: Set<string>;
  terminating: Map<string, Promise<void>>;
  lastTable?: string;
  /** what the last pushed table was built from (see syncRouter) */
  lastTableInputs?: string;
  lastStats?: RouterStats;
  lastSteps: Step[];
  specs: Map<string, ReleaseSpec>;
  leaseLost?: boolean;
  /** per-release router counters over time, for canary analysis windows (newest last) */
  samples: { at: number; releases: Record<string, Counters> }[];
  /** pre-promotion check results, per rollout id */
  checks: Map<number, { ok: true } | { ok: false; reason: string }>;
  checking: Set<number>;
  lastAnalysis?: string;
  /** last tick's view of each instance (see fleet) */
  fleetMemo: Map<string, FleetMemo>;
  fleetPass: number;
}

interface FleetMemo {
  r: InstanceRecord;
  h: TrackedHealth | undefined;
  running: boolean;
  inRotation: boolean;
  inflight: number;
  view: FleetInstance;
  /** the fleet() pass that last saw it */
  pass: number;
}

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

export class Controller {
  private readonly d: ControllerDeps;
  private readonly rt: Runtime = { health: new Map(), probing: new Set(), terminating: new Map(), lastSteps: [], specs: new Map(), samples: [], checks: new Map(), checking: new Set(), fleetMemo: new Map(), fleetPass: 0 };
  private ticking = false;
  /** set by stopAll: the loop must not re-register instances that are being stopped */
  private halted = false;

  constructor(deps: ControllerDeps) {
    this.d = deps;
  }

  private get db(): StateDb {
    return this.d.db;
  }

  private now(): number {
    return this.d.clock.now();
  }

  private event(level: "info" | "warn" | "error", message: string, extra: { release?: string; instance?: string; rollout?: number } = {}): void {
    this.db.addEvent({ at: this.now(), level, service: this.d.service, message, ...extra });
    this.d.log?.(`[${level}] ${message}`);
  }

  liveRelease(): Release | undefined {
    const id = this.db.getMeta("live");
    return id ? this.db.getRelease(id) : undefined;
  }

  desiredInstances(): number {
    const v = this.db.getMeta("instances");
    return v === undefined ? this.d.defaultSpec.instances : Number(v);
  }

  /** A release's spec never changes once recorded, so it is read from state once. */
  private specOf(releaseId: string | undefined): ReleaseSpec {
    if (releaseId === undefined) return this.d.defaultSpec;
    const cached = this.rt.specs.get(releaseId);
    if (cached) return cached;
    const spec = this.db.getRelease(releaseId)?.spec as ReleaseSpec | undefined;
    if (!spec) return this.d.defaultSpec;
    this.rt.specs.set(releaseId, spec);
    return spec;
  }

  // ---------------------------------------------------------------- adoption

  /**
   * On start: adopt the instances state recorded that are still running, mark the ones that
   * are gone, and stop any the provider runs that state cannot account for.
   */
  async adopt(): Promise<void> {
    const running = await this.d.provider.list(this.d.service);
    const known = new Map(this.db.liveInstances(this.d.service).map((i) => [i.id, i]));
    for (const inst of running) {
      const rec = known.get(inst.id);
      if (!rec && inst.state === "running") {
        this.event("warn", `stopping instance ${inst.id}: running but not in state (launched by an interrupted controller?)`, { instance: inst.id });
        await this.d.provider.terminate(inst.id, { graceMs: 2000 });
        continue;
      }
      if (rec && rec.state === "launching" && inst.state === "running") {
        this.db.updateInstance(inst.id, { state: "running", address: inst.address, pid: inst.pid });
        this.event("info", `adopted instance ${inst.id} whose launch was interrupted`, { instance: inst.id });
      }
    }
    const runningIds = new Set(running.filter((i) => i.state === "running").map((i) => i.id));
    for (const rec of known.values()) {
      this.rt.health.set(rec.id, initialHealth(rec.healthySince !== undefined && runningIds.has(rec.id)));
      if (rec.state === "terminating") this.startTerminate(rec.id, "termination interrupted by a restart");
      else if (rec.state === "launching" && !runningIds.has(rec.id)) {
        this.db.updateInstance(rec.id, { state: "terminated", routing: "none", terminatedAt: this.now(), reason: "launch interrupted" });
      }
    }
  }

  // ---------------------------------------------------------------- observe

  private async observe(): Promise<{ records: InstanceRecord[]; running: Map<string, boolean>; stats?: RouterStats }> {
    const list = await this.d.provider.list(this.d.service);
    const running = new Map<string, boolean>();
    for (const i of list) running.set(i.id, i.state === "running");
    let stats: RouterStats | undefined;
    try {
      stats = await this.d.router.stats();
    } catch (e) {
      this.d.log?.(`router unreachable: ${(e as Error).message}`);
    }
    this.rt.lastStats = stats;
    const records = this.db.liveInstances(this.d.service).filter((r) => r.state !== "terminating");
    this.probeDue(records, running);
    return { records, running, stats };
  }

  /** Probes run in the background; the loop reads whatever they last recorded. */
  private probeDue(records: InstanceRecord[], running: Map<string, boolean>): void {
    const now = this.now();
    let release: string | undefined;
    let hp: HealthParams | undefined;
    for (const rec of records) {
      const h = this.rt.health.get(rec.id);
      // Most instances are not due: that test comes first (10,000-instance fleets, 10 ticks a second).
      if (h && now - h.lastProbeAt < (rec.release === release ? hp! : this.specOf(rec.release).health).interval) continue;
      if (!rec.address || !running.get(rec.id) || this.rt.probing.has(rec.id)) continue;
      if (rec.release !== release) {
        release = rec.release;
        hp = this.specOf(rec.release).health;
      }
      this.probe(rec, hp!);
    }
  }

  private probe(rec: InstanceRecord, hp: HealthParams): void {
    this.rt.probing.add(rec.id);
    void this.d
      .probe(rec.address!, hp.path, hp.timeout)
      .then((o) => {
        const cur = this.rt.health.get(rec.id) ?? initialHealth(false);
        const next = recordProbe(cur, o, hp, this.now());
        this.rt.health.set(rec.id, next);
        if (next.healthy && !cur.healthy) {
          const r = this.db.liveInstance(this.d.service, rec.id);
          if (r && r.healthySince === undefined) this.db.updateInstance(rec.id, { healthySince: this.now() });
        }
        if (!next.healthy && cur.healthy) this.event("warn", `instance ${rec.id} failed health checks: ${next.lastReason ?? "unknown"}`, { instance: rec.id, release: rec.release });
      })
      .finally(() => this.rt.probing.delete(rec.id));
  }

  /**
   * The strategies' view of the fleet. Each instance's view is rebuilt only when something it
   * is made of changed (its record, its tracked health, running, the router's read-back) or
   * when it depends on the clock (not yet healthy); otherwise last tick's object is reused —
   * a 10,000-instance fleet is mostly unchanged from one 100 ms tick to the next.
   */
  private fleet(records: InstanceRecord[], running: Map<string, boolean>, stats: RouterStats | undefined): Observed {
    const now = this.now();
    const byId = new Map<string, TargetStatus>();
    for (const t of stats?.targets ?? []) byId.set(t.id, t);
    const memo = this.rt.fleetMemo;
    const pass = ++this.rt.fleetPass;
    const instances: FleetInstance[] = new Array(records.length);
    for (let k = 0; k < records.length; k++) {
      const r = records[k]!;
      const h = this.rt.health.get(r.id);
      const isRunning = r.state === "launching" ? true : (running.get(r.id) ?? false);
      const t = byId.get(r.id);
      const inRotation = t?.inRotation ?? false;
      // Unknown in-flight counts (router unreachable) must not let a drain finish early.
      const inflight = t ? t.inflight : stats ? 0 : Number.MAX_SAFE_INTEGER;
      let m = memo.get(r.id);
      const reuse = m !== undefined && m.r === r && m.h === h && h !== undefined && h.healthy && r.healthySince !== undefined && m.running === isRunning && m.inRotation === inRotation && m.inflight === inflight;
      if (!reuse) {
        const hh = h ?? initialHealth(false);
        const view: FleetInstance = {
          id: r.id,
          release: r.release,
          phase: phaseFrom(hh, isRunning, r.launchedAt, this.specOf(r.release).health, now),
          routing: r.routing,
          inRotation,
          inflight,
          launchedAt: r.launchedAt,
          healthySince: hh.healthy ? r.healthySince ?? now : undefined,
          drainingSince: r.drainingSince,
          everHealthy: r.healthySince !== undefined || hh.healthy,
        };
        if (m) Object.assign(m, { r, h, running: isRunning, inRotation, inflight, view });
        else memo.set(r.id, (m = { r, h, running: isRunning, inRotation, inflight, view, pass }));
      }
      m!.pass = pass;
      instances[k] = m!.view;
    }
    // Forget instances no longer observed.
    if (memo.size > records.length) for (const [id, e] of memo) if (e.pass !== pass) memo.delete(id);
    return { instances };
  }

  private rolloutSpec(rel: ReleaseSpec, strategy: string, fast = false): RolloutSpec {
    return {
      strategy: strategy === "blue-green" ? "blue-green" : strategy === "canary" ? "canary" : "rolling",
      instances: this.desiredInstances(),
      // The fast (rollback) path is replace-before-remove whatever the release allowed: every
      // replacement is launched at once, and no healthy serving instance leaves before one stands in.
      rolling: fast ? { ...rel.strategy.rolling, minHealthyPercent: 100, maxHealthyPercent: 200 } : rel.strategy.rolling,
      blueGreen: rel.strategy.blueGreen,
      canary: rel.strategy.canary,
      maxQuarantined: rel.strategy.maxQuarantined ?? 1,
      drainTimeout: rel.drainTimeout,
      instanceDeadline: this.d.instanceDeadline ?? 60_000 + rel.health.grace,
    };
  }

  // ---------------------------------------------------------------- tick

  /** One reconcile pass. Never runs concurrently with itself. */
  async tick(): Promise<Step[]> {
    if (this.ticking || this.halted) return [];
    this.ticking = true;
    try {
      if (!this.holdLease()) return [];
      const { records, running, stats } = await this.observe();
      // Without the router's read-back nothing can be confirmed or drained safely: wait for it.
      if (!stats) return [];
      const observed = this.fleet(records, running, stats);
      const rollout = this.db.activeRollout(this.d.service);
      const now = this.now();
      let steps: Step[];
      if (rollout?.paused) {
        steps = [{ kind: "wait", reason: "paused: `kiln resume` continues", paused: true }];
      } else if (rollout) {
        const rel = this.specOf(rollout.target);
        const rspec = this.rolloutSpec(rel, rollout.strategy, rollout.fast);
        if (rollout.strategy === "canary" && !rollout.fast) observed.analysis = this.analysisWindow(rollout, rel, stats);
        const check = this.rt.checks.get(rollout.id);
        if (check) observed.checks = check;
        steps = nextSteps(rspec, this.rolloutStatus(rollout), observed, now);
      } else {
        const live = this.liveRelease();
        const standbyUntil = this.db.getMeta("standbyUntil");
        steps = planSteady(
          { live: live?.id, instances: this.desiredInstances(), drainTimeout: this.specOf(live?.id).drainTimeout, keepStandbyUntil: standbyUntil ? Number(standbyUntil) : undefined },
          observed,
          now,
        );
      }
      this.rt.lastSteps = steps;
      this.sample(stats, now);
      for (const step of steps) await this.apply(step, rollout);
      await this.syncRouter(stats);
      return steps;
    } finally {
      this.ticking = false;
    }
  }

  // ---------------------------------------------------------------- act

  private async apply(step: Step, rollout: RolloutRecord | undefined): Promise<void> {
    if (step.kind === "wait") return;
    const now = this.now();
    const stepId = this.db.journal(this.d.service, rollout?.id, step.kind, step, now);
    try {
      await this.execute(step, rollout);
      this.db.finishStep(stepId, "done", this.now());
    } catch (e) {
      this.db.finishStep(stepId, "failed", this.now(), (e as Error).message);
      this.event("error", `${step.kind} failed: ${(e as Error).message}`, { rollout: rollout?.id });
    }
  }

  private async execute(step: Step, rollout: RolloutRecord | undefined): Promise<void> {
    const now = this.now();
    switch (step.kind) {
      case "launch": {
        // One read of the release for the whole step (a 5,000-instance step launches 5,000).
        const rel = this.db.getRelease(step.release);
        if (!rel) throw new KilnError("KILN_E_NOT_FOUND", `release ${step.release} not found`);
        await Promise.all(Array.from({ length: step.count }, () => this.launch(rel, rollout)));
        return;
      }
      case "register":
        this.db.tx(() => step.ids.forEach((id) => this.db.updateInstance(id, { routing: "active", drainingSince: undefined })));
        this.event("info", `in rotation: ${step.ids.join(", ")}`, { rollout: rollout?.id });
        return;
      case "standby":
        this.db.tx(() => step.ids.forEach((id) => this.db.updateInstance(id, { routing: "standby" })));
        return;
      case "drain":
        this.db.tx(() => step.ids.forEach((id) => this.db.updateInstance(id, { routing: "draining", drainingSince: now })));
        this.event("info", `draining ${step.ids.join(", ")} (${step.reason})`, { rollout: rollout?.id });
        return;
      case "terminate":
        // Out of the routing table first, then stopped; the stop itself runs in the background.
        this.db.tx(() => step.ids.forEach((id) => this.db.updateInstance(id, { state: "terminating", routing: "none" })));
        await this.syncRouter(this.rt.lastStats);
        for (const id of step.ids) this.startTerminate(id, step.reason);
        return;
      case "switch": {
        const target = step.to;
        this.db.tx(() => {
          for (const r of this.db.liveInstances(this.d.service)) {
            if (r.release === target && r.routing !== "draining" && r.state !== "terminating") this.db.updateInstance(r.id, { routing: "active", drainingSince: undefined });
            else if (step.standby.includes(r.id)) this.db.updateInstance(r.id, { routing: "standby" });
          }
        });
        this.event("info", `switched traffic to ${target}`, { rollout: rollout?.id, release: target });
        return;
      }
      case "mark-switched":
        if (rollout) this.db.updateRollout(rollout.id, { switchedAt: now });
        return;
      case "progress":
        if (rollout) this.mergeProgress(rollout.id, step.set);
        return;
      case "quarantine": {
        // Out of rotation and stopped; its record and log stay for `kiln logs`; the strategy launches a replacement.
        const reason = `quarantined: ${step.reason}`;
        // The instances and the rollout's count of them change together: a restart sees both or neither.
        this.db.tx(() => {
          step.ids.forEach((id) => this.db.updateInstance(id, { state: "terminating", routing: "none", reason }));
          if (rollout) this.mergeProgress(rollout.id, (cur) => ({ quarantined: Number(cur.quarantined ?? 0) + step.ids.length }));
        });
        await this.syncRouter(this.rt.lastStats);
        for (const id of step.ids) {
          this.event("warn", `quarantined ${id} (${step.reason}); \`kiln logs ${id}\` shows its log`, { instance: id, rollout: rollout?.id });
          this.startTerminate(id, reason);
        }
        return;
      }
      case "check":
        if (rollout) this.startChecks(rollout, step.ids);
        return;
      case "done":
        if (rollout) this.finishRollout(rollout, step.reason);
        return;
      case "abort":
        if (rollout) this.abortRollout(rollout, step.reason);
        return;
    }
  }

  private async launch(rel: Release, rollout: RolloutRecord | undefined): Promise<void> {
    const releaseId = rel.id;
    const spec = rel.spec as ReleaseSpec;
    const id = this.d.newId ? this.d.newId(releaseId) : `${this.d.service}-${releaseId}-${randomBytes(3).toString("hex")}`;
    // Intent first: a controller killed between this row and the launch adopts or removes it on restart.
    this.db.insertInstance({ id, service: this.d.service, release: releaseId, digest: rel.digest, state: "launching", routing: "none", launchedAt: this.now() });
    this.rt.health.set(id, initialHealth(false));
    try {
      const inst = await this.d.provider.launch({ instanceId: id, service: this.d.service, release: releaseId, digest: rel.digest, env: spec.env, volumes: spec.volumes });
      this.db.updateInstance(id, { state: "running", address: inst.address, pid: inst.pid, launchedAt: this.now() });
      this.event("info", `launched ${id} (${rel.version}) at ${inst.address}`, { instance: id, release: releaseId, rollout: rollout?.id });
    } catch (e) {
      this.db.updateInstance(id, { state: "terminated", terminatedAt: this.now(), reason: `launch failed: ${(e as Error).message}` });
      throw e;
    }
  }

  private startTerminate(id: string, reason: string): void {
    if (this.rt.terminating.has(id)) return;
    const rec = this.db.getInstance(id);
    const grace = this.specOf(rec?.release).drainTimeout;
    const p = this.d.provider
      .terminate(id, { graceMs: Math.min(grace, 10_000) })
      .then(() => {
        this.db.updateInstance(id, { state: "terminated", routing: "none", terminatedAt: this.now(), reason });
        this.rt.health.delete(id);
        this.event("info", `terminated ${id} (${reason})`, { instance: id, release: rec?.release });
      })
      .catch((e) => this.event("error", `terminating ${id} failed: ${(e as Error).message}`, { instance: id }))
      .finally(() => this.rt.terminating.delete(id));
    this.rt.terminating.set(id, p);
  }

  private finishRollout(rollout: RolloutRecord, reason: string): void {
    const now = this.now();
    const prevLive = this.db.getMeta("live");
    const spec = this.specOf(rollout.target);
    const equivalent = new Set(this.equivalentReleases(rollout));
    this.db.tx(() => {
      // skipMatching: instances kept because they already run the target's digest and config join the release.
      for (const r of this.db.liveInstances(this.d.service)) if (equivalent.has(r.release)) this.db.updateInstance(r.id, { release: rollout.target });
      this.db.updateRollout(rollout.id, { state: "done", finishedAt: now, reason });
      this.db.updateRelease(rollout.target, { status: "live", liveAt: now, reason: undefined });
      if (prevLive && prevLive !== rollout.target) {
        const prev = this.db.getRelease(prevLive);
        if (prev && prev.status === "live") this.db.updateRelease(prevLive, { status: rollout.kind === "rollback" ? "rolled-back" : "superseded", finishedAt: now });
      }
      this.db.setMeta("live", rollout.target);
      const keep = rollout.strategy === "blue-green" && rollout.kind === "deploy" ? now + spec.strategy.blueGreen.keepPreviousFor : undefined;
      this.db.setMeta("standbyUntil", keep === undefined ? undefined : String(keep));
    });
    this.event("info", `${rollout.kind === "rollback" ? "rolled back to" : "release live:"} ${rollout.target} (${reason})`, { rollout: rollout.id, release: rollout.target });
  }

  private abortRollout(rollout: RolloutRecord, reason: string, force = false): void {
    const now = this.now();
    const spec = this.specOf(rollout.target);
    const autoRollback =
      force ||
      (rollout.strategy === "blue-green" ? spec.strategy.blueGreen.autoRollback : rollout.strategy === "canary" ? (spec.strategy.canary?.autoRollback ?? true) : spec.strategy.rolling.autoRollback);
    const live = this.db.getMeta("live");
    this.db.tx(() => {
      this.db.updateRollout(rollout.id, { state: "aborted", finishedAt: now, reason });
      if (rollout.kind === "deploy") this.db.updateRelease(rollout.target, { status: "failed", reason, finishedAt: now });
      // Roll back onto the release that was live. Its instances may still be serving (nothing
      // to launch) or partly replaced (a fast rolling replacement restores them).
      if (rollout.kind === "deploy" && live && (autoRollback || rollout.strategy === "blue-green")) {
        // The previous fleet still warm on standby (blue-green or canary guard window): flip traffic back to it.
        const n = this.desiredInstances();
        const warm = this.db.liveInstances(this.d.service).filter((i) => i.release === live && i.routing === "standby" && i.state === "running").length;
        const instant = n > 0 && warm >= n;
        this.db.createRollout({ service: this.d.service, kind: "rollback", strategy: instant ? "blue-green" : "rolling", target: live, previous: rollout.target, state: "running", startedAt: now, fast: true, promoteRequested: true });
      }
    });
    this.event("error", `release ${rollout.target} failed: ${reason}${live && autoRollback ? ` — rolling back to ${live}` : ""}`, { rollout: rollout.id, release: rollout.target });
  }

  // ---------------------------------------------------------------- router

  private buildTable(version: number): RoutingTable {
    const rollout = this.db.activeRollout(this.d.service);
    const spec = this.specOf(rollout?.target ?? this.db.getMeta("live"));
    const targets: Target[] = [];
    for (const r of this.db.liveInstances(this.d.service)) {
      if (r.routing === "none" || !r.address || r.state === "terminating") continue;
      targets.push({
        id: r.id,
        release: r.release,
        address: r.address,
        weight: r.routing === "active" ? 1 : 0,
        state: r.routing === "draining" ? "draining" : "active",
      });
    }
    const weights = this.releaseWeights(rollout);
    const preview = rollout && rollout.kind === "deploy" && rollout.strategy === "blue-green" && rollout.switchedAt === undefined ? rollout.target : undefined;
    return {
      version,
      targets,
      ...(weights ? { releaseWeights: weights } : {}),
      ...(preview ? { preview } : {}),
      health: { path: spec.health.path, intervalMs: spec.health.interval, timeoutMs: spec.health.timeout, healthyThreshold: spec.health.healthyThreshold, unhealthyThreshold: spec.health.unhealthyThreshold },
      drainTimeoutMs: spec.drainTimeout,
    };
  }

  /** Push the table when it changed, or when the router holds an older one (it restarted without its file). */
  private async syncRouter(stats: RouterStats | undefined): Promise<void> {
    const current = Number(this.db.getMeta("tableVersion") ?? "0");
    const routerBehind = stats !== undefined && stats.tableVersion < current;
    // The table is a function of the instance rows and the active rollout: when neither
    // changed since the last push there is nothing to build (10,000-instance fleets).
    const r = this.db.activeRollout(this.d.service);
    const inputs = `${this.db.instancesRevision()}|${r?.id}:${r?.state}:${JSON.stringify(r?.progress)}:${r?.switchedAt}|${this.db.getMeta("live")}`;
    if (inputs === this.rt.lastTableInputs && !routerBehind) return;
    const candidate = this.buildTable(current);
    const key = JSON.stringify({ t: candidate.targets, h: candidate.health, d: candidate.drainTimeoutMs, w: candidate.releaseWeights, p: candidate.preview });
    if (key === this.rt.lastTable && !routerBehind) {
      this.rt.lastTableInputs = inputs;
      return;
    }
    const version = current + 1;
    try {
      await this.d.router.setTable({ ...candidate, version });
      this.db.setMeta("tableVersion", String(version));
      this.rt.lastTable = key;
      this.rt.lastTableInputs = inputs;
    } catch (e) {
      this.d.log?.(`routing table not pushed: ${(e as Error).message}`);
    }
  }

  /**
   * How new requests split between releases. A canary deploy sends its recorded weight to the
   * canary and the rest to the release that was live; a fast rollback sends everything to the
   * release it restores (the router falls back to plain target weights while that release has
   * no instance in rotation, so no request is refused).
   */
  private releaseWeights(rollout: RolloutRecord | undefined): Record<string, number> | undefined {
    if (!rollout) return undefined;
    if (rollout.kind === "rollback" || rollout.fast) return { [rollout.target]: 100 };
    if (rollout.strategy !== "canary") return undefined;
    const w = Math.max(0, Math.min(100, Number(rollout.progress.weight ?? 0)));
    const out: Record<string, number> = { [rollout.target]: w };
    for (const r of this.db.liveInstances(this.d.service)) if (r.release !== rollout.target) out[r.release] = 100 - w;
    return out;
  }

  private rolloutStatus(rollout: RolloutRecord): RolloutStatus {
    const progress = { ...(rollout.progress as RolloutProgress) };
    return {
      target: rollout.target, previous: rollout.previous, startedAt: rollout.startedAt, switchedAt: rollout.switchedAt,
      promoteRequested: rollout.promoteRequested, fast: rollout.fast, progress, equivalent: this.equivalentReleases(rollout),
    };
  }

  /** Releases whose instances already run the target's digest and config (skipMatching). */
  private equivalentReleases(rollout: RolloutRecord): string[] {
    if (rollout.strategy !== "rolling" || !this.specOf(rollout.target).strategy.rolling.skipMatching) return [];
    const target = this.db.getRelease(rollout.target);
    if (!target) return [];
    const out = new Set<string>();
    for (const r of this.db.liveInstances(this.d.service)) {
      if (r.release === target.id || out.has(r.release)) continue;
      const rel = this.db.getRelease(r.release);
      if (rel && rel.digest === target.digest && rel.configHash === target.configHash) out.add(rel.id);
    }
    return [...out];
  }

  /** Merge into the rollout's stored progress (`set` may be computed from it); undefined deletes a key. */
  private mergeProgress(rolloutId: number, set: RolloutProgress | ((cur: RolloutProgress) => RolloutProgress)): void {
    const cur = this.db.getRollout(rolloutId);
    if (!cur) return;
    const next: Record<string, unknown> = { ...cur.progress };
    for (const [k, v] of Object.entries(typeof set === "function" ? set(cur.progress as RolloutProgress) : set)) {
      if (v === undefined) delete next[k];
      else next[k] = v;
    }
    this.db.updateRollout(rolloutId, { progress: next });
  }

  /** Keep per-release counters over time (bounded) so analysis can look back over a window. */
  private sample(stats: RouterStats, now: number): void {
    const s = this.rt.samples;
    s.push({ at: now, releases: stats.releases });
    const horizon = 10 * 60_000;
    while (s.length > 2 && (now - s[0]!.at > horizon || s.length > 2000)) s.shift();
  }

  /** The canary's and the stable release's traffic over the analysis window (undefined until a window exists). */
  private analysisWindow(rollout: RolloutRecord, rel: ReleaseSpec, stats: RouterStats): { canary: WindowStats; stable: WindowStats } | undefined {
    const windowMs = rel.strategy.canary?.analysis.window ?? 30_000;
    const now = this.now();
    const stepStart = Number(rollout.progress.stepStartedAt ?? rollout.startedAt);
    // Look back over the window, but never before the rollout started or the weight last changed.
    const from = Math.max(now - windowMs, Math.min(stepStart, now));
    const base = [...this.rt.samples].reverse().find((x) => x.at <= from) ?? this.rt.samples[0];
    if (!base) return undefined;
    const win = (ids: string[]): WindowStats => {
      let requests = 0, errors = 0;
      const worst: number[] = [];
      for (const id of ids) {
        const after = stats.releases[id];
        if (!after) continue;
        const w = windowOf(base.releases[id], after);
        requests += w.requests;
        errors += w.errors;
        if (w.p99Ms !== undefined) worst.push(w.p99Ms);
      }
      const attempts = requests;
      return { requests, errors, errorRate: attempts > 0 ? Math.min(1, errors / attempts) : 0, ...(worst.length ? { p99Ms: Math.max(...worst) } : {}) };
    };
    const stableIds = Object.keys(stats.releases).filter((id) => id !== rollout.target && (id === rollout.previous || this.db.liveInstances(this.d.service).some((r) => r.release === id)));
    return { canary: win([rollout.target]), stable: win(stableIds) };
  }

  /** Pre-promotion checks: each path against each green instance, in the background; the verdict is read next tick. */
  private startChecks(rollout: RolloutRecord, ids: string[]): void {
    if (this.rt.checking.has(rollout.id) || this.rt.checks.has(rollout.id)) return;
    const checks = this.specOf(rollout.target).strategy.blueGreen.prePromotionChecks ?? [];
    const timeout = this.specOf(rollout.target).health.timeout;
    this.rt.checking.add(rollout.id);
    const runs: Promise<string | undefined>[] = [];
    for (const id of ids) {
      const addr = this.db.getInstance(id)?.address;
      for (const c of checks) {
        if (!addr) {
          runs.push(Promise.resolve(`${id} has no address`));
          continue;
        }
        runs.push(
          this.d.probe(addr, c.path, timeout).then((o) => {
            const status = o.status;
            const ok = c.status !== undefined ? status === c.status : o.ok;
            return ok ? undefined : `GET ${c.path} on ${id} answered ${status ?? o.reason ?? "nothing"}${c.status !== undefined ? ` (expected ${c.status})` : ""}`;
          }),
        );
      }
    }
    void Promise.all(runs)
      .then((results) => {
        const bad = results.filter((r): r is string => r !== undefined);
        this.rt.checks.set(rollout.id, bad.length ? { ok: false, reason: bad.join("; ") } : { ok: true });
        this.event(bad.length ? "error" : "info", bad.length ? `pre-promotion checks failed: ${bad.join("; ")}` : `pre-promotion checks passed (${runs.length})`, { rollout: rollout.id });
      })
      .finally(() => this.rt.checking.delete(rollout.id));
  }

  // ---------------------------------------------------------------- lease

  /**
   * Two controllers must never act on one service: each tick renews the lease, and a
   * controller that cannot (another one holds it) takes no step.
   */
  holdLease(): boolean {
    return this.takeLease(undefined);
  }

  /**
   * Take the lease; `takeFrom` names a holder known to be dead (its process is gone on this
   * host), whose lease need not run out first.
   */
  takeLease(takeFrom: string | undefined): boolean {
    if (!this.d.owner) return true;
    const r = this.db.acquireLease(this.d.service, this.d.owner, this.now(), this.d.leaseTtlMs ?? 5000, takeFrom);
    if (!r.ok && !this.rt.leaseLost) this.event("warn", `not acting: controller ${r.holder} holds the lease`);
    this.rt.leaseLost = !r.ok;
    return r.ok;
  }

  leaseHolder(): string | undefined {
    const raw = this.db.getMeta(`lease:${this.d.service}`);
    return raw ? (JSON.parse(raw) as { owner: string }).owner : undefined;
  }

  releaseLease(): void {
    if (this.d.owner) this.db.releaseLease(this.d.service, this.d.owner);
  }

  // ---------------------------------------------------------------- commands

  private activeOrThrow(what: string): RolloutRecord {
    const r = this.db.activeRollout(this.d.service);
    if (!r) throw new KilnError("KILN_E_CONTROLLER", `no rollout is in progress to ${what}`, { hint: "see `kiln status`" });
    return r;
  }

  pause(): RolloutView {
    const r = this.activeOrThrow("pause");
    this.db.updateRollout(r.id, { paused: true });
    this.event("info", `paused the ${r.kind} to ${r.target}`, { rollout: r.id });
    return this.rolloutView({ ...r, paused: true });
  }

  resume(): RolloutView {
    const r = this.activeOrThrow("resume");
    this.db.updateRollout(r.id, { paused: false });
    const moved = this.passHold(r);
    this.event("info", `resumed the ${r.kind} to ${r.target}${moved ? ` (${moved})` : ""}`, { rollout: r.id });
    return this.rolloutView(this.db.getRollout(r.id)!);
  }

  /** Release a manual hold: a rolling checkpoint, or a canary `pause: manual` step. Returns what moved, if anything. */
  private passHold(r: RolloutRecord): string | undefined {
    const progress = r.progress as RolloutProgress;
    if (r.strategy === "rolling" && progress.holding) {
      this.mergeProgress(r.id, { holding: undefined, checkpointsPassed: [...(progress.checkpointsPassed ?? []), progress.holding.percent] });
      return `checkpoint ${progress.holding.percent}% passed`;
    }
    if (r.strategy === "canary") {
      const steps = this.specOf(r.target).strategy.canary?.steps ?? [];
      const i = progress.step ?? 0;
      const st = steps[i];
      if (st && "pause" in st) {
        this.mergeProgress(r.id, { step: i + 1, stepStartedAt: this.now() });
        return `canary pause ${i + 1}/${steps.length} ended`;
      }
    }
    return undefined;
  }

  /** Stop a deploy now and return to the release that was live (whatever autoRollback says). */
  abort(): RolloutView {
    const r = this.activeOrThrow("abort");
    if (r.kind !== "deploy") throw new KilnError("KILN_E_CONTROLLER", "a rollback is in progress; it cannot be aborted", { hint: "wait for it to finish" });
    this.abortRollout(r, "aborted by `kiln abort`", true);
    return this.rolloutView(this.db.getRollout(r.id)!);
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
    const live = this.liveRelease();
    if (live && !(await this.d.imageExists(live.digest))) {
      throw new KilnError("KILN_E_NOT_FOUND", `the rollback target ${live.id} (${live.ref}, ${live.digest.slice(0, 19)}) is missing from the image store`, {
        hint: `a deploy now could not be rolled back: re-bake ${live.ref} from its sources, or deploy it again first`,
      });
    }
  }

  deploy(req: DeployRequest): { release: ReleaseView; rollout: RolloutView } {
    const active = this.db.activeRollout(this.d.service);
    if (active) {
      throw new KilnError("KILN_E_CONTROLLER", `a rollout is already in progress (${active.kind} to ${active.target})`, { hint: "wait for it to finish (`kiln status`)" });
    }
    const now = this.now();
    const live = this.liveRelease();
    const strategy = req.strategy ?? req.spec.strategy.type;
    const { rel, rollout } = this.db.tx(() => {
      const rel = this.db.createRelease({
        service: this.d.service, ref: req.ref, version: req.version, digest: req.digest, configHash: req.configHash, env: req.spec.env,
        spec: req.spec, strategy, status: "deploying", createdAt: now, previous: live?.id,
      });
      this.db.setMeta("instances", String(req.spec.instances));
      const rollout = this.db.createRollout({ service: this.d.service, kind: "deploy", strategy, target: rel.id, previous: live?.id, state: "running", startedAt: now, fast: false, promoteRequested: false });
      return { rel, rollout };
    });
    this.event("info", `deploying ${req.ref} (${req.digest.slice(0, 19)}) as ${rel.id}, ${strategy}`, { release: rel.id, rollout: rollout.id });
    return { release: this.releaseView(rel), rollout: this.rolloutView(rollout) };
  }

  /**
   * Back to the release that was live before the current one. Inside the blue-green keep
   * window its fleet is still warm: traffic flips back with no new instance. Otherwise the
   * previous release is rolled out again, fast (no warmup gating beyond health).
   */
  rollback(): { release: ReleaseView; rollout: RolloutView } {
    if (this.db.activeRollout(this.d.service)) throw new KilnError("KILN_E_CONTROLLER", "a rollout is in progress", { hint: "wait for it to finish; a failing release rolls itself back" });
    const live = this.liveRelease();
    if (!live) throw new KilnError("KILN_E_NOT_FOUND", "nothing is deployed yet, so there is nothing to roll back", { hint: "run `kiln deploy`" });
    const target = live.previous ? this.db.getRelease(live.previous) : undefined;
    if (!target) throw new KilnError("KILN_E_NOT_FOUND", `release ${live.id} has no previous release to roll back to`, { hint: "deploy an earlier image with `kiln deploy NAME:VERSION`" });
    const warm = this.db.liveInstances(this.d.service).filter((i) => i.release === target.id && i.routing === "standby" && i.state === "running");
    const n = this.desiredInstances();
    const instant = warm.length >= n && n > 0;
    const now = this.now();
    const rollout = this.db.createRollout({
      service: this.d.service, kind: "rollback", strategy: instant ? "blue-green" : "rolling", target: target.id, previous: live.id,
      state: "running", startedAt: now, fast: true, promoteRequested: true,
    });
    this.event("info", `rolling back ${live.id} → ${target.id} (${instant ? "instant: previous fleet still warm" : "replacement: previous fleet gone"})`, { rollout: rollout.id, release: target.id });
    return { release: this.releaseView(target), rollout: this.rolloutView(rollout) };
  }

  scale(instances: number): number {
    if (!Number.isInteger(instances) || instances < 0 || instances > 1000) {
      throw new KilnError("KILN_E_USAGE", `cannot scale to ${instances}`, { hint: "give a whole number from 0 to 1000" });
    }
    this.db.setMeta("instances", String(instances));
    this.event("info", `scaled to ${instances} instance(s)`);
    return instances;
  }

  promote(): RolloutView {
    const r = this.db.activeRollout(this.d.service);
    if (r && r.kind === "deploy" && (r.strategy === "canary" || r.strategy === "rolling")) {
      const moved = this.passHold(r);
      if (!moved) throw new KilnError("KILN_E_CONTROLLER", `the ${r.strategy} rollout to ${r.target} is not holding at a pause`, { hint: "see `kiln status`; `kiln promote` ends a manual canary pause or rolling checkpoint" });
      this.event("info", `promoted: ${moved}`, { rollout: r.id });
      return this.rolloutView(this.db.getRollout(r.id)!);
    }
    if (!r || r.strategy !== "blue-green") throw new KilnError("KILN_E_CONTROLLER", "no rollout is waiting for promotion", { hint: "see `kiln status`" });
    this.db.updateRollout(r.id, { promoteRequested: true });
    this.event("info", `promotion requested for ${r.target}`, { rollout: r.id });
    return this.rolloutView({ ...r, promoteRequested: true });
  }

  /** Stop every instance (used by `kiln down`). */
  async stopAll(): Promise<void> {
    this.halted = true;
    while (this.ticking) await new Promise((r) => setTimeout(r, 10));
    const recs = this.db.liveInstances(this.d.service);
    this.db.tx(() => recs.forEach((r) => this.db.updateInstance(r.id, { routing: "none" })));
    await this.syncRouter(undefined);
    for (const r of recs) this.startTerminate(r.id, "kiln down");
    await Promise.all([...this.rt.terminating.values()]);
    // Anything the provider still runs that state did not know about goes too.
    for (const inst of await this.d.provider.list(this.d.service)) {
      if (inst.state === "running") await this.d.provider.terminate(inst.id, { graceMs: 2000 });
    }
  }

  async settle(): Promise<void> {
    await Promise.all([...this.rt.terminating.values()]);
  }

  // ---------------------------------------------------------------- views

  releaseView(r: Release): ReleaseView {
    return {
      id: r.id, version: r.version, ref: r.ref, digest: r.digest, configHash: r.configHash, strategy: r.strategy, status: r.status,
      reason: r.reason, createdAt: iso(r.createdAt)!, liveAt: iso(r.liveAt), finishedAt: iso(r.finishedAt), previous: r.previous,
    };
  }

  rolloutView(r: RolloutRecord): RolloutView {
    const active = r.state === "running";
    return {
      id: r.id, kind: r.kind, strategy: r.strategy, target: r.target, previous: r.previous, state: r.state,
      phase: active ? (r.paused ? "paused" : phaseOf(this.rt.lastSteps)) : undefined, reason: r.reason, startedAt: iso(r.startedAt)!, finishedAt: iso(r.finishedAt),
      ...(Object.keys(r.progress ?? {}).length ? { progress: r.progress } : {}),
      steps: active ? this.rt.lastSteps.map((s) => `${s.kind}: ${s.reason}`) : undefined,
    };
  }

  rolloutById(id: number): RolloutView | undefined {
    const r = this.db.getRollout(id);
    return r ? this.rolloutView(r) : undefined;
  }

  async status(): Promise<StatusView> {
    const stats = this.rt.lastStats;
    const byId = new Map((stats?.targets ?? []).map((t) => [t.id, t]));
    const now = this.now();
    const live = this.liveRelease();
    const rollout = this.db.activeRollout(this.d.service);
    const versions = new Map(this.db.listReleases(this.d.service).map((r) => [r.id, r.version]));
    const instances: InstanceView[] = this.db.liveInstances(this.d.service).map((r) => {
      const h = this.rt.health.get(r.id) ?? initialHealth(false);
      const t = byId.get(r.id);
      return {
        id: r.id, pid: r.pid, address: r.address, release: r.release, version: versions.get(r.release), digest: r.digest,
        health: r.state === "terminating" ? "exited" : phaseFrom(h, true, r.launchedAt, this.specOf(r.release).health, now),
        routing: r.routing, inRotation: t?.inRotation ?? false, inflight: t?.inflight ?? 0, launchedAt: r.launchedAt, state: r.state,
      };
    });
    return {
      schemaVersion: 1,
      service: this.d.service,
      controller: { pid: process.pid },
      proxy: { pid: stats?.pid, address: stats?.listen ?? this.d.listen, reachable: stats !== undefined, tableVersion: stats?.tableVersion },
      desiredInstances: this.desiredInstances(),
      release: live ? this.releaseView(live) : undefined,
      rollout: rollout ? this.rolloutView(rollout) : undefined,
      instances,
    };
  }

  history(): { releases: ReleaseView[]; rollouts: RolloutView[] } {
    return {
      releases: this.db.listReleases(this.d.service).map((r) => this.releaseView(r)),
      rollouts: this.db.listRollouts(this.d.service).map((r) => this.rolloutView(r)),
    };
  }
}

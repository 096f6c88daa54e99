// Acting on instances: launching from a release and stopping. Each records its intent in
// state before the provider is called, and its outcome after.

import { randomBytes } from "node:crypto";
import type { ObservedInstance, Provider } from "../providers/provider.js";
import type { SecretKeeper } from "../secrets/keeper.js";
import type { InstanceRecord, InstanceWrite, Release, RolloutRecord } from "../state/db.js";
import type { FleetObserver } from "./observe.js";
import type { ServiceState } from "./service-state.js";

/** An instance the provider has stopped, to be recorded (see recordStopped). */
interface Stopped {
  id: string;
  release?: string;
  reason: string;
  at: number;
}

export class InstanceActions {
  private readonly terminating = new Map<string, Promise<void>>();
  /** instances whose launch runs in the background, to the promise of its outcome being recorded */
  private readonly launching = new Map<string, Promise<void>>();
  private stopped: Stopped[] = [];
  private flushing?: Promise<void>;

  constructor(
    private readonly state: ServiceState,
    private readonly provider: Provider,
    private readonly observer: FleetObserver,
    private readonly newId?: (release: string) => string,
    private readonly secrets?: SecretKeeper,
  ) {}

  /**
   * On start: adopt the instances state recorded that are still running, mark the ones that
   * are gone, and stop any the provider runs that state cannot account for.
   */
  async adopt(): Promise<void> {
    const { db, service } = this.state;
    const running = await this.provider.list(service);
    const known = new Map(db.liveInstances(service).map((i) => [i.id, i]));
    for (const inst of running) {
      const rec = known.get(inst.id);
      if (!rec && inst.state === "running") {
        this.state.event("warn", `stopping instance ${inst.id}: running but not in state (launched by an interrupted controller?)`, { instance: inst.id });
        await this.provider.terminate(inst.id, { graceMs: 2000 });
        continue;
      }
      if (rec && rec.state === "launching" && inst.state === "running") {
        db.updateInstance(inst.id, { state: "running", address: inst.address, pid: inst.pid });
        this.state.event("info", `adopted instance ${inst.id} whose launch was interrupted`, { instance: inst.id });
      }
    }
    const runningIds = new Set(running.filter((i) => i.state === "running").map((i) => i.id));
    for (const rec of known.values()) {
      this.observer.seed(rec.id, rec.healthySince !== undefined && runningIds.has(rec.id));
      if (rec.state === "terminating") this.startTerminate(rec.id, "termination interrupted by a restart");
      else if (rec.state === "launching" && !runningIds.has(rec.id)) {
        db.updateInstance(rec.id, { state: "terminated", routing: "none", terminatedAt: this.state.now(), reason: "launch interrupted" });
      }
    }
  }

  /**
   * Launch `count` instances of a release. Intents first, in one transaction: a controller
   * killed after it adopts or removes them on restart. The provider launches run together and
   * their outcomes are recorded together.
   *
   * With `background` (the event-driven loop: `wake` is set) the call returns once the intents
   * are written: the provider's work (a root filesystem to compose, a sandbox to build) runs
   * beside the loop, whose passes meanwhile probe, register and drain the rest of the fleet, and
   * the outcome wakes it. A failure is then an error event ("launch failed: …") and the
   * instances' rows, which the planner judges as it would a launch that failed inside its pass.
   * Without it (simulation, tests that drive tick()) the call resolves with the outcome and a
   * failure throws, as before.
   */
  async launch(rel: Release, count: number, rollout: RolloutRecord | undefined, background?: { wake: () => void }): Promise<void> {
    const { db, service } = this.state;
    const now = this.state.now();
    const ids = Array.from({ length: count }, () => (this.newId ? this.newId(rel.id) : `${service}-${rel.id}-${randomBytes(3).toString("hex")}`));
    db.insertInstances(ids.map((id) => ({ id, service, release: rel.id, digest: rel.digest, state: "launching", routing: "none", launchedAt: now })));
    for (let k = 0; k < ids.length; k++) this.observer.seed(ids[k]!, false);
    // Secret values join the declared env only here, in memory, on their way to the provider.
    // Read once for the whole step: a failure fails each launch with the same reason.
    const secretValues = this.secrets ? this.secrets.valuesFor(rel.id, rel.spec.secrets) : Promise.resolve({});
    secretValues.catch(() => undefined);
    const launched = Promise.allSettled(
      ids.map(async (id) => {
        if (rel.spec.secrets && !this.secrets) throw new Error(`release ${rel.id} declares secrets and this controller keeps none`);
        const env = { ...rel.spec.env, ...(await secretValues) };
        return this.provider.launch({ instanceId: id, service, release: rel.id, digest: rel.digest, env, volumes: rel.spec.volumes, ...(rel.spec.network ? { network: rel.spec.network } : {}), ...(rel.spec.resources ? { resources: rel.spec.resources } : {}), ...(rel.spec.isolation ? { isolation: rel.spec.isolation } : {}) });
      }),
    );
    if (!background) {
      const failure = this.recordLaunched(rel, ids, await launched, rollout);
      if (failure !== undefined) throw failure;
      return;
    }
    const done = launched
      .then((results) => {
        const failure = this.recordLaunched(rel, ids, results, rollout);
        if (failure !== undefined) this.state.eventOrLog("error", `launch failed: ${(failure as Error).message}`, { rollout: rollout?.id });
      })
      .catch((e) => this.state.eventOrLog("error", `launch failed: ${(e as Error).message}`, { rollout: rollout?.id }))
      .finally(() => {
        for (const id of ids) this.launching.delete(id);
        background.wake();
      });
    for (const id of ids) this.launching.set(id, done);
  }

  /**
   * The provider's answers for one launch step, in one transaction. A row no longer
   * "launching" (a stop was decided while the provider worked: an abort, `kiln down`) keeps
   * its state: its address and pid are noted for the stop, which waits for this launch (see
   * startTerminate). Returns the first failure.
   */
  private recordLaunched(rel: Release, ids: string[], results: PromiseSettledResult<ObservedInstance>[], rollout: RolloutRecord | undefined): unknown {
    const { db, service } = this.state;
    const at = this.state.now();
    let failure: unknown;
    const launched: Parameters<ServiceState["events"]>[0] = [];
    const started: string[] = [];
    // Every outcome in one transaction, a chunk of instances per statement (updateInstancesEach).
    db.tx(() => {
      const live = db.liveIndex(service);
      const outcomes: InstanceWrite[] = [];
      results.forEach((r, k) => {
        const id = ids[k]!;
        const stillLaunching = (live.get(id) ?? db.getInstance(id))?.state === "launching";
        if (r.status === "fulfilled") {
          if (!stillLaunching) {
            outcomes.push({ id, patch: { address: r.value.address, pid: r.value.pid } });
            return;
          }
          outcomes.push({ id, patch: { state: "running", address: r.value.address, pid: r.value.pid, launchedAt: at } });
          if (r.value.state === "running") started.push(id);
          launched.push({ level: "info", message: `launched ${id} (${rel.version}) at ${r.value.address}`, instance: id, release: rel.id, rollout: rollout?.id });
        } else {
          failure ??= r.reason;
          if (stillLaunching) outcomes.push({ id, patch: { state: "terminated", terminatedAt: at, reason: `launch failed: ${(r.reason as Error).message}` } });
        }
      });
      db.updateInstancesEach(outcomes);
      this.state.events(launched);
    });
    // The record says running from now on; a provider answer taken before the launch returned
    // (this pass's list may have seen the container created but not started) must not contradict it.
    for (let k = 0; k < started.length; k++) this.observer.launched(started[k]!);
    return failure;
  }

  /** Resolves when every launch started in the background so far has been recorded. */
  async launchesSettled(): Promise<void> {
    await Promise.all([...new Set(this.launching.values())]);
  }

  startTerminate(id: string, reason: string): void {
    if (this.terminating.has(id)) return;
    this.startTerminateIn(this.state.db.liveIndex(this.state.service), id, reason);
  }

  /** startTerminate for each of a pass's stops, the live records looked up once (a step stops thousands). */
  startTerminateAll(stops: readonly { id: string; reason: string }[]): void {
    if (stops.length === 0) return;
    const live = this.state.db.liveIndex(this.state.service);
    for (let k = 0; k < stops.length; k++) {
      const s = stops[k]!;
      if (!this.terminating.has(s.id)) this.startTerminateIn(live, s.id, s.reason);
    }
  }

  private startTerminateIn(live: ReadonlyMap<string, InstanceRecord>, id: string, reason: string): void {
    const rec = live.get(id) ?? this.state.db.getInstance(id);
    const grace = this.state.specOf(rec?.release).drainTimeout;
    // A stop decided while the instance's launch is still with the provider waits for it: a
    // provider may not know the instance until its launch returns, and must not start it after the stop.
    const launching = this.launching.get(id);
    const stop = () => this.provider.terminate(id, { graceMs: Math.min(grace, 10_000) });
    const p = (launching ? launching.then(stop) : stop()).then(
      () => this.recordStopped({ id, release: rec?.release, reason, at: this.state.now() }),
      (e) => {
        this.state.eventOrLog("error", `terminating ${id} failed: ${(e as Error).message}`, { instance: id });
        this.terminating.delete(id);
      },
    );
    this.terminating.set(id, p);
  }

  /**
   * Stops the provider has finished are written together, in one transaction, once the
   * callbacks already queued have run: a 5,000-instance step is one write (one fsync on disk),
   * not 5,000. Until then the rows read "terminating", which a restart finishes anyway.
   */
  private recordStopped(s: Stopped): Promise<void> {
    this.stopped.push(s);
    this.flushing ??= Promise.resolve().then(() => this.flushStopped());
    return this.flushing;
  }

  private flushStopped(): void {
    const list = this.stopped;
    this.stopped = [];
    this.flushing = undefined;
    const { db } = this.state;
    try {
      db.tx(() => {
        // Grouped by what is written (in a step, every stop shares its time and reason).
        const groups = new Map<string, Stopped[]>();
        for (const s of list) {
          const key = `${s.at}|${s.reason}`;
          const g = groups.get(key);
          if (g) g.push(s);
          else groups.set(key, [s]);
        }
        for (const g of groups.values()) db.updateInstances(g.map((s) => s.id), { state: "terminated", routing: "none", terminatedAt: g[0]!.at, reason: g[0]!.reason });
        for (const s of list) this.observer.forget(s.id);
        // In the shape recordLaunched's events have (rollout too): one shape for every event written per instance.
        this.state.events(list.map((s) => ({ level: "info", message: `terminated ${s.id} (${s.reason})`, instance: s.id, release: s.release, rollout: undefined })));
      });
    } catch (e) {
      for (const s of list) this.state.eventOrLog("error", `terminating ${s.id} failed: ${(e as Error).message}`, { instance: s.id });
    } finally {
      for (const s of list) this.terminating.delete(s.id);
    }
  }

  /** Resolves when every launch and stop started so far has finished and been recorded (before state closes). */
  async settle(): Promise<void> {
    await this.launchesSettled();
    await Promise.all([...this.terminating.values()]);
  }
}

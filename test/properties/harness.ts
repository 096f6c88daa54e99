// Property tests: the real controller and the pure strategies, on the in-memory provider
// and a router that can lag, over generated fleets and failures. Each property runs
// ≥ 1,000 generated scenarios per strategy. One test file per strategy (*.properties.test.ts)
// so that the runner can take them on separate cores.

import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { Controller } from "../../src/controller/controller.js";
import type { ReleaseSettings } from "../../src/controller/types.js";
import { FakeProvider, manualClock, type FakeBehaviour } from "../../src/providers/fake/index.js";
import type { LaunchRequest, ObservedInstance, Provider } from "../../src/providers/provider.js";
import { StateDb } from "../../src/state/db.js";
import { FakeRouter } from "../../src/traffic/fake.js";
import type { Router, RouterStats, RoutingTable } from "../../src/traffic/router.js";
import { deployReq, releaseSpec } from "../controller/fake-world.js";

const RUNS = Number(process.env.KILN_PROPERTY_RUNS ?? 1000);

/** A router whose tables take effect `lagMs` after they are set, as a slow data plane would. */
class LaggyRouter implements Router {
  readonly inner: FakeRouter;
  private pending: { at: number; table: RoutingTable }[] = [];
  constructor(private readonly clock: { now(): number }, private readonly lagMs: number) {
    this.inner = new FakeRouter({ now: clock.now, pid: 1, listen: "127.0.0.1:0" });
  }
  private catchUp(): Promise<void>[] {
    const due = this.pending.filter((p) => this.clock.now() - p.at >= this.lagMs);
    this.pending = this.pending.filter((p) => !due.includes(p));
    return due.map((p) => this.inner.setTable(p.table));
  }
  async setTable(table: RoutingTable): Promise<void> {
    this.pending.push({ at: this.clock.now(), table: structuredClone(table) });
    await Promise.all(this.catchUp());
  }
  async stats(): Promise<RouterStats> {
    await Promise.all(this.catchUp());
    const s = await this.inner.stats();
    // Until a table is in effect the router reports the version it actually holds.
    return s;
  }
}

/** Checks, at the moment of each provider call, that the intent was recorded first. */
class JournalCheckingProvider implements Provider {
  readonly name = "journal-check";
  violations: string[] = [];
  readonly terminated = new Set<string>();
  constructor(private readonly inner: FakeProvider, private readonly db: StateDb) {}
  launch(req: LaunchRequest): Promise<ObservedInstance> {
    const rec = this.db.getInstance(req.instanceId);
    if (!rec || rec.state !== "launching") this.violations.push(`launch of ${req.instanceId} before its intent was recorded`);
    return this.inner.launch(req);
  }
  terminate(id: string, opts: { graceMs: number }): Promise<void> {
    const rec = this.db.getInstance(id);
    if (rec && rec.state !== "terminating" && rec.state !== "terminated") this.violations.push(`terminate of ${id} before its intent was recorded`);
    void opts;
    this.terminated.add(id);
    return this.inner.terminate(id);
  }
  list(service: string): Promise<ObservedInstance[]> {
    return this.inner.list(service);
  }
}

interface Scenario {
  instances: number;
  strategy: "rolling" | "blue-green" | "canary";
  /** canary: the weight steps (pauses of 300 ms between them) */
  weights?: number[];
  /** canary: the new release answers this share of requests with 500 (the analysis should catch it) */
  errorRate?: number;
  minHealthyPercent: number;
  maxHealthyPercent: number;
  warmup: number;
  lagMs: number;
  newRelease: FakeBehaviour;
  oldCrashAtTick?: number;
}

const behaviour: fc.Arbitrary<FakeBehaviour> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ readyAfter: fc.integer({ min: 0, max: 2000 }) }) },
  { weight: 1, arbitrary: fc.record({ readyAfter: fc.integer({ min: 0, max: 500 }), unhealthy: fc.constant(true) }) },
  { weight: 1, arbitrary: fc.record({ readyAfter: fc.integer({ min: 0, max: 500 }), exitAfter: fc.integer({ min: 0, max: 3000 }) }) },
  { weight: 1, arbitrary: fc.record({ readyAfter: fc.integer({ min: 6000, max: 9000 }) }) }, // slower than the instance deadline
  { weight: 1, arbitrary: fc.record({ launchFails: fc.constant(true) }) },
);

const scenario = (strategy: "rolling" | "blue-green" | "canary"): fc.Arbitrary<Scenario> =>
  fc
    .record({
      instances: fc.oneof({ weight: 30, arbitrary: fc.integer({ min: 1, max: 12 }) }, { weight: 1, arbitrary: fc.integer({ min: 13, max: 200 }) }),
      minHealthyPercent: fc.integer({ min: 0, max: 100 }),
      surge: fc.integer({ min: 0, max: 100 }),
      warmup: fc.integer({ min: 0, max: 1000 }),
      lagMs: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 400 })),
      newRelease: behaviour,
      oldCrashAtTick: fc.option(fc.integer({ min: 1, max: 40 }), { nil: undefined }),
      weights: fc.array(fc.integer({ min: 1, max: 100 }), { minLength: 1, maxLength: 3 }),
      errorRate: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.double({ min: 0.2, max: 1, noNaN: true }) }),
    })
    .map((r) => ({
      instances: r.instances,
      strategy,
      minHealthyPercent: r.minHealthyPercent,
      maxHealthyPercent: Math.min(200, Math.max(100, r.minHealthyPercent + r.surge)),
      warmup: r.warmup,
      lagMs: r.lagMs,
      newRelease: r.newRelease,
      oldCrashAtTick: r.oldCrashAtTick,
      ...(strategy === "canary" ? { weights: [...r.weights].sort((a, b) => a - b), errorRate: r.errorRate } : {}),
    }));

export async function run(sc: Scenario): Promise<void> {
  const clock = manualClock();
  const fake = new FakeProvider(clock);
  const db = new StateDb(":memory:");
  const provider = new JournalCheckingProvider(fake, db);
  const router = new LaggyRouter(clock, sc.lagMs);
  let n = 0;
  const spec: ReleaseSettings = releaseSpec(
    { instances: sc.instances },
    {
      type: sc.strategy,
      rolling: { minHealthyPercent: sc.minHealthyPercent, maxHealthyPercent: sc.maxHealthyPercent, instanceWarmup: sc.warmup, deadline: 30_000, autoRollback: true },
      blueGreen: { keepPreviousFor: 60_000, promotion: "auto", deadline: 30_000, autoRollback: true },
      canary: {
        steps: (sc.weights ?? [50]).flatMap((w) => [{ setWeight: w }, { pause: 300 }]),
        analysis: { maxErrorRate: 0.1, maxP99Ratio: 3, minRequests: 10, window: 1000 },
        instanceWarmup: sc.warmup,
        deadline: 30_000,
        autoRollback: true,
      },
    },
  );
  const controller = new Controller({
    service: "svc", defaultSpec: spec, listen: "127.0.0.1:0", db, provider, router,
    probe: (address) => fake.probe(address), clock, newId: (release) => `svc-${release}-${++n}`, instanceDeadline: 5000,
  });
  const tick = async () => {
    clock.advance(100);
    await controller.tick();
    for (let k = 0; k < 3; k++) await new Promise((r) => setImmediate(r));
  };
  const settle = async (max: number) => {
    for (let i = 0; i < max; i++) {
      await tick();
      if (!db.activeRollout("svc")) return i;
    }
    throw new Error(`rollout did not settle in ${max} ticks`);
  };
  const servingIds = () => new Set((router.inner.table?.targets ?? []).filter((t) => t.state === "active" && t.weight > 0).map((t) => t.id));
  const runningById = () => new Map(fake.running().map((i) => [i.id, i]));

  controller.deploy(deployReq("v1", spec, sc.strategy === "canary" ? "rolling" : undefined));
  await settle(2000);
  assert.equal(controller.liveRelease()?.id, "r1");
  // Let the router catch up so the fleet is really serving before the rollout starts.
  for (let i = 0; i < 20; i++) await tick();

  fake.behave("r2", sc.newRelease);
  controller.deploy(deployReq("v2", spec));
  const floor = sc.strategy !== "rolling" ? sc.instances : Math.ceil((sc.instances * sc.minHealthyPercent) / 100);
  const surge = sc.maxHealthyPercent > 100;
  // Instances that stopped without kiln terminating them (crashes, failing launches) are the
  // world's doing; every capacity check allows for them.
  let worldDead = 0;
  const oldStoppedByKiln = new Set<string>();
  const everServingNew = new Set<string>();
  for (let i = 0; i < 3000 && db.activeRollout("svc"); i++) {
    if (sc.oldCrashAtTick === i) {
      const victim = fake.running().find((x) => x.release === "r1");
      if (victim) {
        fake.crash(victim.id);
        worldDead++;
      }
    }
    const before = runningById();
    // Traffic through the router's own split, so canary analysis has something to judge.
    let served = 0;
    router.inner.serve(20, (t) => {
      served++;
      return { status: t.release === "r2" && served % 10 < Math.round((sc.errorRate ?? 0) * 10) ? 500 : 200, latencyMs: 5 };
    });
    await tick();
    const after = runningById();
    for (const [id, inst] of before) {
      if (after.has(id)) continue;
      if (!provider.terminated.has(id)) worldDead++;
      else if (inst.release === "r1") oldStoppedByKiln.add(id);
    }
    const serving = servingIds();
    for (const id of serving) if (after.get(id)?.release === "r2") everServingNew.add(id);
    const servingHealthy = [...serving].filter((id) => after.has(id)).length;
    // Capacity: kiln's own actions never take serving capacity below the floor.
    if (surge || sc.strategy !== "rolling") {
      if (process.env.KILN_PROPERTY_DEBUG && servingHealthy + worldDead < Math.min(floor, sc.instances)) console.log(JSON.stringify({ i, table: router.inner.table, rollouts: db.listRollouts("svc"), inst: db.liveInstances("svc") }, null, 1));
      assert.ok(servingHealthy + worldDead >= Math.min(floor, sc.instances), `serving ${servingHealthy} (+${worldDead} lost to crashes) < floor ${floor} at tick ${i}`);
    }
    // Replace before remove: kiln stops an old instance only once a new one has been in rotation to stand in for it.
    if (surge && sc.strategy === "rolling") {
      assert.ok(oldStoppedByKiln.size <= everServingNew.size, `${oldStoppedByKiln.size} old stopped with only ${everServingNew.size} new instances ever in rotation (tick ${i})`);
    }
  }
  assert.equal(db.activeRollout("svc"), undefined, "rollout converged");
  const r2 = db.getRelease("r2")!;
  const live = controller.liveRelease()!.id;
  if (r2.status === "failed") assert.equal(live, "r1", "a failed release ends on the previous one");
  else assert.equal(live, "r2");
  // Heal after the rollout never launches a failed release; the fleet converges to N of the live one.
  for (let i = 0; i < 400; i++) {
    await tick();
    const running = fake.running();
    const inRotation = servingIds();
    const mine = running.filter((x) => x.release === live);
    if (mine.length === sc.instances && mine.every((x) => inRotation.has(x.id)) && running.every((x) => x.release === live || db.getInstance(x.id)?.routing === "standby")) break;
  }
  await controller.settle();
  const running = fake.running();
  // Blue-green keeps the previous fleet warm (standby, out of rotation) for keepPreviousFor.
  const warm = (id: string) => sc.strategy === "blue-green" && live === "r2" && db.getInstance(id)?.routing === "standby";
  assert.ok(running.every((x) => x.release === live || warm(x.id)), `only ${live} serves: ${running.map((x) => `${x.release}/${db.getInstance(x.id)?.routing}`).join(",")}`);
  assert.equal(running.filter((x) => x.release === live).length, sc.instances);
  if (r2.status === "failed") assert.ok(!running.some((x) => x.release === "r2"));
  // Nothing unaccounted: what runs is exactly what state says runs.
  const recorded = new Set(db.liveInstances("svc").map((x) => x.id));
  assert.deepEqual(new Set(running.map((x) => x.id)), recorded);
  assert.deepEqual(provider.violations, []);
  db.close();
}

export function strategyProperties(strategy: "rolling" | "blue-green" | "canary"): void {
  test(`${strategy}: capacity floor, replace-before-remove, rollback target, heal, accounting, journal-first (${RUNS} scenarios)`, async () => {
    await fc.assert(fc.asyncProperty(scenario(strategy), run), { numRuns: RUNS, verbose: 1, seed: Number(process.env.KILN_PROPERTY_SEED ?? 20261127) });
  });
}

// Shrunk counterexamples the properties found while they were written, kept as regressions.
const regressions: Scenario[] = [
  { instances: 1, strategy: "blue-green", minHealthyPercent: 0, maxHealthyPercent: 100, warmup: 0, lagMs: 1, newRelease: { readyAfter: 0 } },
  { instances: 1, strategy: "blue-green", minHealthyPercent: 0, maxHealthyPercent: 100, warmup: 0, lagMs: 1, newRelease: { readyAfter: 0, exitAfter: 201 } },
  { instances: 100, strategy: "rolling", minHealthyPercent: 6, maxHealthyPercent: 103, warmup: 0, lagMs: 201, newRelease: { readyAfter: 0, exitAfter: 2601 }, oldCrashAtTick: 9 },
  { instances: 1, strategy: "rolling", minHealthyPercent: 61, maxHealthyPercent: 101, warmup: 0, lagMs: 1, newRelease: { readyAfter: 0 }, oldCrashAtTick: 1 },
  { instances: 1, strategy: "blue-green", minHealthyPercent: 0, maxHealthyPercent: 100, warmup: 0, lagMs: 0, newRelease: { launchFails: true }, oldCrashAtTick: 1 },
  { instances: 2, strategy: "canary", minHealthyPercent: 0, maxHealthyPercent: 100, warmup: 0, lagMs: 0, newRelease: { readyAfter: 101 }, weights: [20], errorRate: 0.2 },
];
export function regressionTests(strategy: Scenario["strategy"]): void {
  test(`${strategy} regressions: shrunk counterexamples`, async () => {
    for (const sc of regressions.filter((r) => r.strategy === strategy)) await run(sc);
  });
}

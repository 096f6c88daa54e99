// Runs the real controller against the in-memory provider and router with a manual clock:
// the same code that drives real processes, so what a simulation shows is what a deploy does.

import { FakeProvider, manualClock, seededRandom } from "../providers/fake/index.js";
import type { StrategyName } from "../rollout/types.js";
import { StateDb } from "../state/db.js";
import { FakeRouter } from "../traffic/fake.js";
import { Controller } from "./controller.js";
import type { ReleaseSettings } from "./types.js";

export interface SimulationInput {
  spec: ReleaseSettings;
  /** instances of the current release before the deploy (0 = first deploy) */
  current: number;
  /** fleet size after the deploy */
  instances: number;
  strategy: StrategyName;
  /** share of new instances that fail their health checks (0–1) */
  failRate: number;
  /** ms for a new instance to start answering */
  startMs: number;
  seed: number;
  /** ms of simulated time between samples of the timeline */
  sampleEveryMs?: number;
  /** upper bound on simulated time */
  maxMs?: number;
}

export interface SimulatedStep {
  /** since the deploy started (see alignTimes) */
  atMs: number;
  kind: string;
  count: number;
  release?: string;
  reason: string;
}

export interface TimelinePoint {
  /** since the deploy started (see alignTimes) */
  atMs: number;
  /** serving (in rotation) instances per release */
  serving: Record<string, number>;
  /** instances alive (any state) */
  alive: number;
  /** canary: share of requests (percent) each release got, from 100 requests played through the router's split */
  traffic?: Record<string, number>;
}

export interface SimulationResult {
  schemaVersion: 1;
  outcome: "live" | "rolled-back" | "failed" | "timeout";
  reason?: string;
  durationMs: number;
  from?: string;
  to: string;
  steps: SimulatedStep[];
  timeline: TimelinePoint[];
  minServing: number;
  maxAlive: number;
  launches: number;
  /** CPU time of the deploy under study, excluding bringing up the current fleet */
  replacementCpuMs: number;
  /** largest heap seen at the samples */
  peakHeapMB: number;
}

const TICK_MS = 100;

/**
 * Every time a simulation reports, on one axis: milliseconds since the deploy started (`t0`
 * on the simulated clock, which has already run the current fleet's own deploy). The steps,
 * the samples and the expected duration all come from here, so `kiln plan`'s "about N s"
 * and its step list cannot disagree (they did: the steps kept the clock's absolute times,
 * "about 1.4 s" beside a last step at t+3.9 s).
 *
 * Examples:
 *   t0 2500, steps at 2600 (launch) and 3900 (done), end 3900 → steps at 100 and 1400, duration 1400
 *   t0 0, steps at 100 and 2500 (done), end 2500               → unchanged, duration 2500
 *   t0 2500, a step at 2600, rollout still running at 62500   → step at 100, duration 60000
 *   t0 1000, no steps, end 1000                                → no steps, duration 0
 */
export function alignTimes(
  t0: number,
  end: number,
  steps: readonly SimulatedStep[],
  timeline: readonly TimelinePoint[],
): { durationMs: number; steps: SimulatedStep[]; timeline: TimelinePoint[] } {
  return {
    durationMs: end - t0,
    steps: steps.map((st) => ({ ...st, atMs: st.atMs - t0 })),
    timeline: timeline.map((p) => ({ ...p, atMs: p.atMs - t0 })),
  };
}

export async function simulateRollout(input: SimulationInput): Promise<SimulationResult> {
  const clock = manualClock(0);
  const provider = new FakeProvider(clock, seededRandom(input.seed));
  const router = new FakeRouter({ now: clock.now, pid: 0, listen: "simulated" });
  const db = new StateDb(":memory:");
  let n = 0;
  const controller = new Controller({
    service: "sim", defaultSpec: input.spec, listen: "simulated", db, provider, router,
    probe: (address) => provider.probe(address), probeNow: (address) => provider.answer(address), clock, newId: (release) => `${release}-${++n}`,
  });
  const steps: SimulatedStep[] = [];
  const timeline: TimelinePoint[] = [];
  const sampleEvery = input.sampleEveryMs ?? 1000;
  const maxMs = input.maxMs ?? 60 * 60_000;
  let lastSample = -Infinity;
  let peakHeap = 0;
  const sample = () => {
    // Counted in a Map (a table of 10,000 targets, every sample), then as a record in the same key order.
    const counts = new Map<string, number>();
    const targets = router.table?.targets ?? [];
    for (let k = 0; k < targets.length; k++) {
      const t = targets[k]!;
      if (t.state === "active" && t.weight > 0) counts.set(t.release, (counts.get(t.release) ?? 0) + 1);
    }
    const serving: Record<string, number> = {};
    for (const [release, k] of counts) serving[release] = k;
    const point: TimelinePoint = { atMs: clock.now(), serving, alive: provider.runningCount() };
    if (input.strategy === "canary") {
      // Healthy traffic through the router's own release split: shows the weights and feeds the analysis.
      const byTarget = router.serve(100, () => ({ status: 200, latencyMs: 5 }));
      const release = new Map((router.table?.targets ?? []).map((t) => [t.id, t.release]));
      const traffic: Record<string, number> = {};
      for (const [id, k] of Object.entries(byTarget)) if (release.has(id)) traffic[release.get(id)!] = (traffic[release.get(id)!] ?? 0) + k;
      point.traffic = traffic;
    }
    timeline.push(point);
    peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
    lastSample = clock.now();
  };
  const tick = async (record: boolean) => {
    clock.advance(TICK_MS);
    const done = await controller.tick();
    for (let k = 0; k < 3; k++) await new Promise((r) => setImmediate(r));
    if (!record) return;
    for (const s of done) {
      if (s.kind === "wait") continue;
      const count = s.kind === "launch" ? s.count : "ids" in s ? s.ids.length : s.kind === "switch" ? 1 : 0;
      steps.push({ atMs: clock.now(), kind: s.kind, count, release: s.kind === "launch" ? s.release : s.kind === "switch" ? s.to : undefined, reason: s.reason });
    }
    if (clock.now() - lastSample >= sampleEvery) sample();
  };

  const spec = { ...input.spec, instances: input.instances };
  const request = (version: string, s: ReleaseSettings, strategy: StrategyName) => ({ ref: `sim:${version}`, version, digest: `sha256:${version.padEnd(64, "0")}`, configHash: "sha256:sim", spec: s, strategy });
  let from: string | undefined;
  if (input.current > 0) {
    provider.behave("r1", { readyAfter: input.startMs });
    controller.deploy(request("current", { ...input.spec, instances: input.current }, "rolling"));
    for (let i = 0; i < 100_000 && db.activeRollout("sim"); i++) await tick(false);
    from = "r1";
  }
  const to = from ? "r2" : "r1";
  provider.behave(to, { readyAfter: input.startMs, failRate: input.failRate });
  const t0 = clock.now();
  const cpu0 = process.cpuUsage();
  const { rollout } = controller.deploy(request("next", spec, input.strategy));
  sample();
  while (db.activeRollout("sim") && clock.now() - t0 < maxMs) await tick(true);
  const cpu = process.cpuUsage(cpu0);
  // A few more seconds so the timeline shows where the fleet settles.
  for (let i = 0; i < 30; i++) await tick(true);
  sample();
  await controller.settle();

  const first = db.getRollout(rollout.id)!;
  const rel = db.getRelease(to)!;
  const outcome: SimulationResult["outcome"] = db.activeRollout("sim") ? "timeout" : first.state === "done" ? "live" : from ? "rolled-back" : "failed";
  const servingTotals = timeline.map((p) => Object.values(p.serving).reduce((a, b) => a + b, 0));
  db.close();
  const times = alignTimes(t0, first.finishedAt ?? clock.now(), steps, timeline);
  return {
    schemaVersion: 1,
    outcome,
    reason: outcome === "live" ? undefined : rel.reason ?? first.reason,
    durationMs: times.durationMs,
    from,
    to,
    steps: times.steps,
    timeline: times.timeline,
    minServing: Math.min(...servingTotals),
    maxAlive: Math.max(...timeline.map((p) => p.alive)),
    launches: provider.launches,
    replacementCpuMs: Math.round((cpu.user + cpu.system) / 1000),
    peakHeapMB: Math.round(peakHeap / 1e6),
  };
}

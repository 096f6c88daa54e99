// The anchors' controls on the real controller in the fake world: canary weights and
// analysis, rolling checkpoints / skipMatching / bakeTime, blue-green preview, pre-promotion
// checks, auto-promotion and promotion deadline, the guard window, quarantine.

import assert from "node:assert/strict";
import { test } from "node:test";
import type { ReleaseSettings } from "../../src/controller/types.js";
import type { CanaryParams } from "../../src/rollout/types.js";
import { deployReq, releaseSpec, world } from "./fake-world.js";

type World = ReturnType<typeof world>;
const settled = (w: World) => () => w.db.activeRollout("svc") === undefined;

const canaryParams = (over: Partial<CanaryParams> = {}): CanaryParams => ({
  steps: [{ setWeight: 25 }, { pause: 1000 }, { setWeight: 50 }, { pause: 1000 }],
  analysis: { maxErrorRate: 0.05, maxP99Ratio: 3, minRequests: 20, window: 2000 },
  instanceWarmup: 200,
  deadline: 60_000,
  autoRollback: true,
  ...over,
});

function canarySpec(over: Partial<CanaryParams> = {}, instances = 4): ReleaseSettings {
  return releaseSpec({ instances }, { type: "canary", canary: canaryParams(over) });
}

async function live(w: World, release: string, spec: ReleaseSettings, strategy?: "rolling" | "blue-green" | "canary") {
  w.controller.deploy(deployReq(release, spec, strategy));
  await w.run(settled(w));
}

/** Requests per release among the serving targets, played through the router's own split. */
function play(w: World, n: number, respond: (release: string) => { status: number; latencyMs: number } = () => ({ status: 200, latencyMs: 5 })) {
  const byTarget = w.router.serve(n, (t) => respond(t.release));
  const byRelease: Record<string, number> = {};
  for (const t of w.router.table?.targets ?? []) byRelease[t.release] = (byRelease[t.release] ?? 0) + (byTarget[t.id] ?? 0);
  return byRelease;
}

test("canary: traffic follows the weight steps, pauses hold, then the canary is promoted and the stable fleet retired", async () => {
  const w = world();
  await live(w, "v1", canarySpec(), "rolling");
  w.controller.deploy(deployReq("v2", canarySpec(), "canary"));
  const shares: number[] = [];
  let minStable = Infinity;
  await w.run(settled(w), {
    each: () => {
      const split = play(w, 100);
      const total = (split.r1 ?? 0) + (split.r2 ?? 0);
      if (total) shares.push(Math.round(((split.r2 ?? 0) / total) * 100));
      const r = w.db.activeRollout("svc");
      if (r && r.progress.weight !== 100) minStable = Math.min(minStable, w.serving().filter((s) => s.release === "r1").length);
    },
  });
  assert.equal(w.controller.liveRelease()?.id, "r2");
  assert.ok(shares.includes(25), `a 25 % step was served (shares seen: ${[...new Set(shares)].join(",")})`);
  assert.ok(shares.includes(50));
  assert.ok(shares.includes(100));
  assert.ok(shares.every((s) => [0, 25, 50, 100].includes(s)), `only the stepped weights: ${[...new Set(shares)].join(",")}`);
  assert.equal(minStable, 4, "the stable fleet keeps all 4 instances serving until promotion");
  assert.deepEqual(new Set(w.provider.running().map((i) => i.release)), new Set(["r2"]));
  assert.equal(w.provider.running().length, 4);
});

test("canary: analysis of the proxy's per-release metrics aborts on an error-rate breach and sends all traffic back to stable", async () => {
  const w = world();
  await live(w, "v1", canarySpec(), "rolling");
  w.controller.deploy(deployReq("v2", canarySpec(), "canary"));
  let afterAbort: Record<string, number> | undefined;
  await w.run(settled(w), {
    each: () => {
      const r = w.db.activeRollout("svc");
      if (r?.kind === "rollback" && !afterAbort) afterAbort = play(w, 100);
      else play(w, 50, (rel) => ({ status: rel === "r2" ? 500 : 200, latencyMs: 5 }));
    },
  });
  assert.equal(w.controller.liveRelease()?.id, "r1");
  const r2 = w.db.getRelease("r2")!;
  assert.equal(r2.status, "failed");
  assert.match(r2.reason ?? "", /analysis: canary error rate/);
  assert.equal(afterAbort?.r2 ?? 0, 0, "the fast rollback re-points every new request to the stable release at once");
  assert.ok(w.provider.running().every((i) => i.release === "r1"));
});

test("canary: latency breach against the stable release aborts too", async () => {
  const w = world();
  await live(w, "v1", canarySpec(), "rolling");
  w.controller.deploy(deployReq("v2", canarySpec(), "canary"));
  await w.run(settled(w), { each: () => void play(w, 50, (rel) => ({ status: 200, latencyMs: rel === "r2" ? 900 : 10 })) });
  assert.equal(w.controller.liveRelease()?.id, "r1");
  assert.match(w.db.getRelease("r2")!.reason ?? "", /p99 latency/);
});

test("canary: a manual pause holds until `kiln promote`", async () => {
  const w = world();
  const spec = canarySpec({ steps: [{ setWeight: 50 }, { pause: "manual" }] });
  await live(w, "v1", spec, "rolling");
  w.controller.deploy(deployReq("v2", spec, "canary"));
  await w.run(() => pausedNow(w));
  const held = w.db.activeRollout("svc")!;
  assert.equal(held.progress.weight, 50);
  for (let i = 0; i < 40; i++) {
    w.clock.advance(500);
    await w.controller.tick();
  }
  assert.equal(w.db.activeRollout("svc")?.progress.step, 1, "still holding after 20 s");
  assert.equal((await w.controller.status()).rollout?.phase, "paused");
  w.controller.promote();
  await w.run(settled(w));
  assert.equal(w.controller.liveRelease()?.id, "r2");
});

test("rolling checkpoints: launches stop at the checkpoint and the rollout holds until `kiln resume`", async () => {
  const w = world();
  const spec = releaseSpec({ instances: 10 }, { rolling: { minHealthyPercent: 100, maxHealthyPercent: 200, instanceWarmup: 100, deadline: 60_000, autoRollback: true, checkpoints: [20, 50] } });
  await live(w, "v1", spec);
  w.controller.deploy(deployReq("v2", spec));
  const newCount = () => w.provider.running().filter((i) => i.release === "r2").length;
  await w.run(() => w.db.activeRollout("svc")?.progress.holding !== undefined);
  for (let i = 0; i < 30; i++) {
    w.clock.advance(200);
    await w.controller.tick();
  }
  assert.equal(newCount(), 2, "holding at 20 % of 10: exactly 2 new instances");
  assert.equal((await w.controller.status()).rollout?.phase, "paused");
  w.controller.resume();
  await w.run(() => (w.db.activeRollout("svc")?.progress.holding as { percent?: number } | undefined)?.percent === 50);
  for (let i = 0; i < 10; i++) {
    w.clock.advance(200);
    await w.controller.tick();
  }
  assert.equal(newCount(), 5);
  w.controller.resume();
  await w.run(settled(w));
  assert.equal(w.controller.liveRelease()?.id, "r2");
  assert.equal(newCount(), 10);
});

test("rolling checkpoints with a delay pass by themselves", async () => {
  const w = world();
  const spec = releaseSpec({ instances: 4 }, { rolling: { minHealthyPercent: 100, maxHealthyPercent: 150, instanceWarmup: 100, deadline: 60_000, autoRollback: true, checkpoints: [50], checkpointDelay: 3000 } });
  await live(w, "v1", spec);
  const t0 = w.clock.now();
  w.controller.deploy(deployReq("v2", spec));
  await w.run(settled(w));
  assert.equal(w.controller.liveRelease()?.id, "r2");
  assert.ok(w.clock.now() - t0 >= 3000, "the 3 s checkpoint delay was honoured");
});

test("skipMatching: a deploy of the same digest and config replaces nothing", async () => {
  const w = world();
  const spec = releaseSpec({}, { rolling: { minHealthyPercent: 100, maxHealthyPercent: 150, instanceWarmup: 100, deadline: 60_000, autoRollback: true, skipMatching: true } });
  await live(w, "v1", spec);
  const before = w.provider.running().map((i) => i.id).sort();
  w.controller.deploy({ ...deployReq("v1", spec), ref: "svc:v1-again" });
  await w.run(settled(w));
  assert.equal(w.controller.liveRelease()?.id, "r2");
  assert.deepEqual(w.provider.running().map((i) => i.id).sort(), before, "same instances, no launch");
  assert.ok(w.db.liveInstances("svc").every((i) => i.release === "r2"), "kept instances joined the new release");
});

test("bakeTime: a new instance that fails during the bake rolls the release back", async () => {
  const w = world();
  const spec = releaseSpec({}, { rolling: { minHealthyPercent: 100, maxHealthyPercent: 150, instanceWarmup: 100, deadline: 60_000, autoRollback: true, bakeTime: 5000 }, maxQuarantined: 0 });
  await live(w, "v1", spec);
  w.controller.deploy(deployReq("v2", spec));
  await w.run(() => w.db.activeRollout("svc")?.progress.completedAt !== undefined);
  assert.equal(w.db.activeRollout("svc")?.kind, "deploy", "not live yet: baking");
  w.provider.behave("r2", { unhealthy: true });
  for (const i of w.provider.running().filter((x) => x.release === "r2")) w.provider.setHealthy(i.id, false);
  await w.run(settled(w));
  assert.equal(w.controller.liveRelease()?.id, "r1");
  assert.equal(w.db.getRelease("r2")?.status, "failed");
});

test("quarantine: one instance failing after it was healthy is replaced, not the release", async () => {
  const w = world();
  const spec = releaseSpec({}, { rolling: { minHealthyPercent: 100, maxHealthyPercent: 150, instanceWarmup: 100, deadline: 60_000, autoRollback: true, bakeTime: 5000 } });
  await live(w, "v1", spec);
  w.controller.deploy(deployReq("v2", spec));
  await w.run(() => w.db.activeRollout("svc")?.progress.completedAt !== undefined);
  const victim = w.provider.running().find((x) => x.release === "r2")!;
  w.provider.setHealthy(victim.id, false);
  await w.run(settled(w));
  assert.equal(w.controller.liveRelease()?.id, "r2", "the release stayed");
  const rec = w.db.getInstance(victim.id)!;
  assert.equal(rec.state, "terminated");
  assert.match(rec.reason ?? "", /^quarantined/);
  assert.equal(w.provider.running().filter((x) => x.release === "r2").length, 3, "replaced");
});

test("blue-green: green waits on standby behind the preview address and reaches no production traffic", async () => {
  const w = world();
  const spec = releaseSpec({}, { type: "blue-green", blueGreen: { keepPreviousFor: 60_000, promotion: "manual", deadline: 60_000, autoRollback: true } });
  await live(w, "v1", releaseSpec(), "blue-green");
  w.controller.deploy(deployReq("v2", spec, "blue-green"));
  await w.run(() => (w.router.table?.targets ?? []).filter((t) => t.release === "r2").length === 3);
  await w.run(() => pausedNow(w));
  assert.equal(w.router.table?.preview, "r2");
  const prod = play(w, 90);
  assert.equal(prod.r2 ?? 0, 0, "no production request reaches green before promotion");
  const preview = w.router.serve(30, () => ({ status: 200, latencyMs: 1 }), { preview: true });
  const previewIds = Object.keys(preview).filter((k) => preview[k]! > 0);
  assert.ok(previewIds.length > 0 && previewIds.every((id) => id.includes("r2")), `preview reaches green only: ${JSON.stringify(preview)}`);
  w.controller.promote();
  await w.run(settled(w));
  assert.equal(w.router.table?.preview, undefined);
  assert.equal(w.controller.liveRelease()?.id, "r2");
});

test("blue-green: autoPromoteAfter promotes by itself; promotionDeadline aborts an unpromoted green", async () => {
  const w = world();
  const auto = releaseSpec({}, { type: "blue-green", blueGreen: { keepPreviousFor: 60_000, promotion: "manual", deadline: 60_000, autoRollback: true, autoPromoteAfter: 2000 } });
  await live(w, "v1", auto, "blue-green");
  w.controller.deploy(deployReq("v2", auto, "blue-green"));
  await w.run(settled(w));
  assert.equal(w.controller.liveRelease()?.id, "r2");

  const late = releaseSpec({}, { type: "blue-green", blueGreen: { keepPreviousFor: 60_000, promotion: "manual", deadline: 60_000, autoRollback: true, promotionDeadline: 2000 } });
  w.controller.deploy(deployReq("v3", late, "blue-green"));
  await w.run(settled(w));
  assert.equal(w.controller.liveRelease()?.id, "r2");
  assert.match(w.db.getRelease("r3")?.reason ?? "", /not promoted within 2s/);
});

test("blue-green: a failing pre-promotion check aborts before any traffic moves", async () => {
  const w = world();
  const spec = releaseSpec({}, { type: "blue-green", blueGreen: { keepPreviousFor: 60_000, promotion: "auto", deadline: 60_000, autoRollback: true, prePromotionChecks: [{ path: "/healthz", status: 204 }] } });
  await live(w, "v1", releaseSpec(), "blue-green");
  w.controller.deploy(deployReq("v2", spec, "blue-green"));
  let greenServed = 0;
  await w.run(settled(w), { each: () => void (greenServed += play(w, 10).r2 ?? 0) });
  assert.equal(w.controller.liveRelease()?.id, "r1");
  assert.match(w.db.getRelease("r2")?.reason ?? "", /pre-promotion check failed/);
  assert.equal(greenServed, 0);
});

test("blue-green guard window: green failing after the switch flips traffic back onto the warm blue fleet, no new instance", async () => {
  const w = world();
  const spec = releaseSpec({}, { type: "blue-green", blueGreen: { keepPreviousFor: 60_000, promotion: "auto", deadline: 60_000, autoRollback: true, guardWindow: 10_000 }, maxQuarantined: 1 });
  await live(w, "v1", spec, "blue-green");
  const blueIds = w.provider.running().map((i) => i.id).sort();
  w.controller.deploy(deployReq("v2", spec, "blue-green"));
  await w.run(() => w.db.activeRollout("svc")?.switchedAt !== undefined);
  for (const i of w.provider.running().filter((x) => x.release === "r2")) w.provider.setHealthy(i.id, false);
  const launchesBefore = w.provider.launches;
  await w.run(settled(w));
  assert.equal(w.controller.liveRelease()?.id, "r1");
  assert.equal(w.db.getRelease("r2")?.status, "failed");
  assert.deepEqual(w.serving().map((s) => s.id).sort(), blueIds, "the same blue instances serve again");
  assert.equal(w.provider.launches, launchesBefore, "no instance launched to roll back");
});

test("canary after a blue-green release: the older warm fleet is retired and the canary gets its room", async () => {
  const w = world();
  await live(w, "v1", canarySpec(), "rolling");
  await live(w, "v2", canarySpec(), "blue-green");
  assert.equal(w.db.liveInstances("svc").filter((i) => i.routing === "standby").length, 4, "v1 kept warm");
  w.controller.deploy(deployReq("v3", canarySpec(), "canary"));
  await w.run(settled(w), { each: () => void play(w, 100) });
  assert.equal(w.controller.liveRelease()?.id, "r3");
  assert.deepEqual(new Set(w.provider.running().map((i) => i.release)), new Set(["r3"]));
});

/** The running rollout holds at a pause (its phase as `kiln status` shows it). */
function pausedNow(w: ReturnType<typeof world>): boolean {
  const r = w.db.activeRollout("svc");
  return r !== undefined && w.controller.rolloutView(r).phase === "paused";
}

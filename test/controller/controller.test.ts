import assert from "node:assert/strict";
import { test } from "node:test";
import { deployReq, releaseSpec, world } from "./fake-world.js";

const settled = (w: ReturnType<typeof world>) => () => w.db.activeRollout("svc") === undefined;

async function firstDeploy(w: ReturnType<typeof world>, strategy?: "rolling" | "blue-green") {
  w.controller.deploy(deployReq("v1", releaseSpec(), strategy));
  await w.run(settled(w));
  assert.equal(w.controller.liveRelease()?.id, "r1");
}

test("first deploy brings up the whole fleet and puts it in rotation", async () => {
  const w = world();
  await firstDeploy(w);
  assert.equal(w.serving().length, 3);
  assert.ok(w.serving().every((s) => s.release === "r1"));
});

test("rolling replacement never drops serving capacity below the fleet size and ends on the new release", async () => {
  const w = world();
  await firstDeploy(w);
  w.controller.deploy(deployReq("v2", releaseSpec()));
  let minServing = Infinity;
  let maxAlive = 0;
  await w.run(settled(w), {
    each: () => {
      minServing = Math.min(minServing, w.serving().length);
      maxAlive = Math.max(maxAlive, w.provider.running().length);
    },
  });
  assert.equal(w.controller.liveRelease()?.id, "r2");
  assert.equal(minServing, 3, "min 100 %: never fewer than 3 serving");
  assert.equal(maxAlive, 4, "max 150 % of 3: one extra instance at a time");
  assert.deepEqual(new Set(w.provider.running().map((i) => i.release)), new Set(["r2"]));
  assert.equal(w.db.getRelease("r1")?.status, "superseded");
});

test("a release whose instances fail health is rolled back, recorded as failed with the reason", async () => {
  const w = world();
  await firstDeploy(w);
  w.provider.behave("r2", { unhealthy: true });
  w.controller.deploy(deployReq("v2", releaseSpec()));
  let minServing = Infinity;
  await w.run(settled(w), { each: () => (minServing = Math.min(minServing, w.serving().length)) });
  assert.equal(w.controller.liveRelease()?.id, "r1");
  const r2 = w.db.getRelease("r2")!;
  assert.equal(r2.status, "failed");
  assert.match(r2.reason ?? "", /failed its health checks/);
  assert.equal(minServing, 3);
  assert.ok(w.provider.running().every((i) => i.release === "r1"));
});

test("one-instance fleet with maxHealthyPercent 150 launches the replacement first", async () => {
  const w = world();
  w.controller.deploy(deployReq("v1", releaseSpec({ instances: 1 })));
  await w.run(settled(w));
  w.controller.deploy(deployReq("v2", releaseSpec({ instances: 1 })));
  let minServing = Infinity;
  await w.run(settled(w), { each: () => (minServing = Math.min(minServing, w.serving().length)) });
  assert.equal(minServing, 1);
  assert.equal(w.controller.liveRelease()?.id, "r2");
});

test("blue-green keeps blue warm; rollback inside the window flips traffic with no new instance", async () => {
  const w = world();
  await firstDeploy(w);
  const bg = releaseSpec({}, { type: "blue-green" });
  w.controller.deploy(deployReq("v2", bg));
  await w.run(settled(w));
  assert.equal(w.controller.liveRelease()?.id, "r2");
  assert.ok(w.serving().every((s) => s.release === "r2"));
  assert.equal(w.provider.running().filter((i) => i.release === "r1").length, 3, "blue kept warm");
  const launches = w.provider.launches;
  w.controller.rollback();
  await w.run(settled(w));
  assert.equal(w.controller.liveRelease()?.id, "r1");
  assert.equal(w.provider.launches, launches, "instant rollback launches nothing");
  assert.ok(w.serving().every((s) => s.release === "r1"));
  assert.equal(w.db.getRelease("r2")?.status, "rolled-back");
  // The finish event says what happened: traffic went back to r1's fleet (it said "switched to 3 green instance(s)").
  const finished = w.db.events("svc", 0, 100_000).map((e) => e.message).filter((m) => m.startsWith("rolled back to"));
  assert.deepEqual(finished, ["rolled back to r1 (traffic switched back to 3 instance(s) of r1)"]);
  await w.run(() => w.provider.running().every((i) => i.release === "r1"));
});

test("a rollback by replacement finishes with 'rolled back to r1 (3 instances in rotation)', not 'of the new release'", async () => {
  const w = world();
  await firstDeploy(w);
  w.controller.deploy(deployReq("v2", releaseSpec()));
  await w.run(settled(w));
  assert.equal(w.controller.liveRelease()?.id, "r2");
  w.controller.rollback();
  await w.run(settled(w));
  assert.equal(w.controller.liveRelease()?.id, "r1");
  const finished = w.db.events("svc", 0, 100_000).map((e) => e.message).filter((m) => m.startsWith("rolled back to"));
  assert.deepEqual(finished, ["rolled back to r1 (3 instances in rotation)"]);
});

test("blue fleet is retired after keepPreviousFor", async () => {
  const w = world();
  await firstDeploy(w);
  w.controller.deploy(deployReq("v2", releaseSpec({}, { type: "blue-green", blueGreen: { keepPreviousFor: 2000, promotion: "auto", deadline: 60_000, autoRollback: true } })));
  await w.run(settled(w));
  await w.run(() => w.provider.running().every((i) => i.release === "r2"), { maxTicks: 200 });
  assert.equal(w.provider.running().length, 3);
});

test("a crashed instance is replaced from the live release", async () => {
  const w = world();
  await firstDeploy(w);
  const victim = w.provider.running()[0]!.id;
  w.provider.crash(victim);
  await w.run(() => w.serving().length === 3 && !w.serving().some((s) => s.id === victim));
  assert.ok(w.provider.running().every((i) => i.release === "r1"));
});

test("auto-heal never launches a failed release", async () => {
  const w = world();
  await firstDeploy(w);
  w.provider.behave("r2", { unhealthy: true });
  w.controller.deploy(deployReq("v2", releaseSpec()));
  await w.run(settled(w));
  w.provider.crash(w.provider.running()[0]!.id);
  await w.run(() => w.serving().length === 3);
  assert.ok(w.provider.running().every((i) => i.release === "r1"));
});

test("a restarted controller adopts the fleet and finishes the rollout", async () => {
  const w = world();
  await firstDeploy(w);
  w.controller.deploy(deployReq("v2", releaseSpec()));
  await w.run(() => w.provider.running().some((i) => i.release === "r2"));
  const c = w.restart();
  await c.adopt();
  await w.run(settled(w));
  assert.equal(w.controller.liveRelease()?.id, "r2");
  assert.equal(w.provider.running().length, 3);
});

test("scale changes the fleet size of the live release", async () => {
  const w = world();
  await firstDeploy(w);
  w.controller.scale(5);
  await w.run(() => w.serving().length === 5);
  w.controller.scale(2);
  await w.run(() => w.provider.running().length === 2 && w.serving().length === 2);
});

test("pause holds a rollout where it is; resume finishes it", async () => {
  const w = world();
  await firstDeploy(w);
  w.controller.deploy(deployReq("v2", releaseSpec()));
  await w.run(() => w.provider.running().some((i) => i.release === "r2"));
  w.controller.pause();
  const launches = w.provider.launches;
  for (let i = 0; i < 100; i++) {
    w.clock.advance(50);
    await w.controller.tick();
  }
  assert.equal(w.provider.launches, launches, "no step while paused");
  assert.ok(w.db.activeRollout("svc")?.paused);
  w.controller.resume();
  await w.run(settled(w));
  assert.equal(w.controller.liveRelease()?.id, "r2");
});

test("abort returns to the live release even with autoRollback off", async () => {
  const w = world();
  await firstDeploy(w);
  const spec = releaseSpec({}, { rolling: { minHealthyPercent: 100, maxHealthyPercent: 150, instanceWarmup: 300, deadline: 60_000, autoRollback: false } });
  w.controller.deploy(deployReq("v2", spec));
  await w.run(() => w.provider.running().some((i) => i.release === "r2"));
  w.controller.abort();
  await w.run(settled(w));
  await w.run(() => w.provider.running().every((i) => i.release === "r1"));
  assert.equal(w.controller.liveRelease()?.id, "r1");
  assert.equal(w.db.getRelease("r2")?.status, "failed");
  assert.match(w.db.getRelease("r2")?.reason ?? "", /kiln abort/);
});

test("a lease keeps a second controller from acting on the same service", async () => {
  const { Controller } = await import("../../src/controller/controller.js");
  const w = world();
  const mk = (owner: string) =>
    new Controller({ service: "svc", defaultSpec: releaseSpec(), listen: "x", db: w.db, provider: w.provider, router: w.router, probe: (a) => w.provider.probe(a), clock: w.clock, owner, leaseTtlMs: 1000 });
  const a = mk("a");
  const b = mk("b");
  assert.equal(a.holdLease(), true);
  assert.equal(b.holdLease(), false);
  w.clock.advance(1500); // a stopped renewing: its lease expired
  assert.equal(b.holdLease(), true);
  assert.equal(a.holdLease(), false);
});

test("a deploy whose rollback target's image is missing is refused before anything changes", async () => {
  const w = world();
  await firstDeploy(w);
  const { Controller } = await import("../../src/controller/controller.js");
  const present = new Set([deployReq("v2", releaseSpec()).digest]);
  const c = new Controller({ service: "svc", defaultSpec: releaseSpec(), listen: "x", db: w.db, provider: w.provider, router: w.router, probe: (a) => w.provider.probe(a), clock: w.clock, imageExists: async (d) => present.has(d) });
  await assert.rejects(c.checkDeployable(deployReq("v2", releaseSpec())), /rollback target r1 .* is missing/);
  await assert.rejects(c.checkDeployable(deployReq("v3", releaseSpec())), /not in the store/);
  present.add(deployReq("v1", releaseSpec()).digest);
  await c.checkDeployable(deployReq("v2", releaseSpec()));
  assert.equal(w.db.listReleases("svc").length, 1, "nothing was recorded");
});

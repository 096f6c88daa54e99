// The loop's wake-ups, the quick poll of a new instance's port and the launch bound, in the
// fake world (manual clock): what the controller signals and what the fleet goes through,
// never how long anything took in real time.

import assert from "node:assert/strict";
import { test } from "node:test";
import { deployReq, releaseSpec, world } from "./fake-world.js";

const settled = (w: ReturnType<typeof world>) => () => w.db.activeRollout("svc") === undefined;

test("a command, a pass that acted, and a health change wake the loop; a pass that only waited does not", async () => {
  let wakes = 0;
  const w = world(undefined, { loop: { wake: () => wakes++, startPollMs: 5 } });
  w.controller.deploy(deployReq("v1", releaseSpec()));
  assert.equal(wakes, 1, "the deploy command");
  wakes = 0;
  w.clock.advance(10);
  const steps = await w.controller.tick();
  assert.ok(steps.some((s) => s.kind === "launch"));
  assert.ok(wakes >= 1, "the pass launched");
  await w.run(settled(w));
  // Steady and idle: passes only wait (probes keep passing, health does not change).
  for (let i = 0; i < 5; i++) {
    w.clock.advance(50);
    await w.controller.tick();
    for (let k = 0; k < 5; k++) await new Promise((r) => setImmediate(r));
  }
  wakes = 0;
  for (let i = 0; i < 10; i++) {
    w.clock.advance(50);
    const s = await w.controller.tick();
    for (let k = 0; k < 5; k++) await new Promise((r) => setImmediate(r));
    assert.ok(s.every((x) => x.kind === "wait"), JSON.stringify(s));
  }
  assert.equal(wakes, 0, "an idle fleet never wakes the loop (no busy loop)");
  // A health change does.
  w.provider.setHealthy(w.provider.running()[0]!.id, false);
  await w.run(() => wakes > 0, { maxTicks: 50 });
});

/** A fleet just launched by two passes: its new instances' probes are queued. */
async function justLaunched() {
  const w = world(undefined, { loop: { wake: () => undefined, startPollMs: 5 } });
  w.controller.deploy(deployReq("v1", releaseSpec()));
  w.clock.advance(10);
  await w.controller.tick();
  w.clock.advance(10);
  await w.controller.tick();
  return w;
}

test("the loop knows when to look next: a due probe after a launch, nothing earlier than now", async () => {
  const w = await justLaunched();
  const due = w.controller.nextDueAt();
  assert.ok(due !== undefined, "probes of the new instances are queued");
  assert.ok(due <= w.clock.now() + releaseSpec().health.interval);
});

test("stopping: nothing falls due any more, though probes were queued (the loop must not spin on them)", async () => {
  const w = await justLaunched();
  assert.ok(w.controller.nextDueAt() !== undefined, "probes of the new instances are queued");
  const stopped = w.controller.stopAll();
  // probeDue does nothing once stopping began; before, what it left queued stayed due "now"
  w.clock.advance(10_000);
  w.controller.probeDue();
  assert.equal(w.controller.nextDueAt(), undefined);
  assert.equal(w.controller.nextPassDueAt(), undefined);
  await stopped;
});

test("new instances' ports are polled quickly: a slow starter turns healthy in fewer passes than with interval polling", async () => {
  const health = { path: "/healthz", interval: 1000, timeout: 100, healthyThreshold: 2, unhealthyThreshold: 2, grace: 0 };
  const passes = async (startPollMs: number | undefined) => {
    const w = world(undefined, { loop: startPollMs === undefined ? {} : { startPollMs } });
    w.provider.behave("r1", { readyAfter: 120 });
    w.controller.deploy(deployReq("v1", releaseSpec({ health })));
    return w.run(settled(w), { stepMs: 50 });
  };
  const quick = await passes(5);
  const slow = await passes(undefined);
  assert.ok(quick < slow, `quick poll ${quick} passes, interval polling ${slow}`);
});

test("launch bound 2: never more than 2 instances starting at once, and the rolling replacement completes", async () => {
  const w = world(undefined, { loop: { wake: () => undefined, startPollMs: 5, launchConcurrency: 2 } });
  const spec = releaseSpec({ instances: 6 }, { rolling: { minHealthyPercent: 100, maxHealthyPercent: 200, instanceWarmup: 100, deadline: 60_000, autoRollback: true } });
  // An instance's port opens 200 ms after it starts: one launched less than that ago cannot
  // have answered, so it is starting whatever the controller knows.
  const readyAfter = 200;
  w.provider.behave("r1", { readyAfter });
  w.provider.behave("r2", { readyAfter });
  let maxStarting = 0;
  const watch = () => {
    const now = w.clock.now();
    const starting = w.db.liveInstances("svc").filter((r) => r.state !== "terminating" && now - r.launchedAt < readyAfter).length;
    maxStarting = Math.max(maxStarting, starting);
  };
  w.controller.deploy(deployReq("v1", spec));
  await w.run(settled(w), { each: watch, stepMs: 20 });
  assert.equal(w.controller.liveRelease()?.id, "r1");
  w.controller.deploy(deployReq("v2", spec));
  await w.run(settled(w), { each: watch, stepMs: 20 });
  assert.equal(w.controller.liveRelease()?.id, "r2");
  assert.equal(w.provider.running().filter((i) => i.release === "r2").length, 6);
  assert.equal(maxStarting, 2, "the bound holds, and is used");
});

test("a blue-green switch is confirmed in the pass that makes it: one routing write, one read-back", async () => {
  const w = world(undefined, { loop: { wake: () => undefined, startPollMs: 5 } });
  const spec = releaseSpec();
  w.controller.deploy(deployReq("v1", spec, "blue-green"));
  await w.run(settled(w));
  w.controller.deploy(deployReq("v2", spec, "blue-green"));
  const rolloutId = w.db.activeRollout("svc")!.id;
  let switchPass: { steps: string[]; switchedAt: number | undefined } | undefined;
  for (let i = 0; i < 500 && !switchPass; i++) {
    w.clock.advance(50);
    const steps = await w.controller.tick();
    for (let k = 0; k < 5; k++) await new Promise((r) => setImmediate(r));
    if (steps.some((s) => s.kind === "switch")) switchPass = { steps: steps.map((s) => s.kind), switchedAt: w.db.getRollout(rolloutId)?.switchedAt };
  }
  assert.ok(switchPass, "the rollout switched");
  assert.ok(!switchPass.steps.includes("mark-switched"));
  assert.equal(switchPass.switchedAt, w.clock.now(), "confirmed by the switch's own read-back, in the same pass");
  assert.ok(w.serving().every((s) => s.release === "r2") && w.serving().length === 3, "the router serves green");
  const events = w.db.events("svc").filter((e) => e.rollout === rolloutId);
  assert.ok(events.some((e) => /^router confirms r2 in rotation/.test(e.message)), JSON.stringify(events));
  await w.run(settled(w));
  assert.equal(w.controller.liveRelease()?.id, "r2");
});

/** Holds the fake provider's launches until `release()`: a provider still building its sandboxes. */
function gateLaunches(w: ReturnType<typeof world>) {
  const launch = w.provider.launch.bind(w.provider);
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  let held = 0;
  w.provider.launch = async (req) => {
    held++;
    await gate;
    return launch(req);
  };
  return { release: () => open(), held: () => held };
}
const settle = async () => {
  for (let k = 0; k < 10; k++) await new Promise((r) => setImmediate(r));
};

test("a launch does not hold the pass: its intent rows are written at once, the provider's answer wakes the loop", async () => {
  let wakes = 0;
  const w = world(undefined, { loop: { wake: () => wakes++, startPollMs: 5 } });
  const gate = gateLaunches(w);
  w.controller.deploy(deployReq("v1", releaseSpec()));
  w.clock.advance(10);
  const steps = await w.controller.tick();
  assert.ok(steps.some((s) => s.kind === "launch"));
  // The pass returned while the provider still holds all three launches.
  assert.equal(gate.held(), 3);
  assert.deepEqual(w.db.liveInstances("svc").map((r) => r.state), ["launching", "launching", "launching"]);
  // Passes meanwhile see the instances starting and launch nothing more.
  w.clock.advance(10);
  const meanwhile = await w.controller.tick();
  assert.ok(!meanwhile.some((s) => s.kind === "launch"), JSON.stringify(meanwhile));
  assert.equal(w.db.liveInstances("svc").length, 3);
  wakes = 0;
  gate.release();
  await settle();
  assert.ok(wakes >= 1, "the launches' outcome woke the loop");
  assert.deepEqual(w.db.liveInstances("svc").map((r) => r.state), ["running", "running", "running"]);
  await w.run(settled(w));
  assert.equal(w.controller.liveRelease()?.id, "r1");
  assert.equal(w.provider.running().length, 3);
});

test("stopping while launches are with the provider: the stop waits for them, nothing is left running", async () => {
  const w = world(undefined, { loop: { wake: () => undefined, startPollMs: 5 } });
  const gate = gateLaunches(w);
  w.controller.deploy(deployReq("v1", releaseSpec()));
  w.clock.advance(10);
  await w.controller.tick();
  assert.equal(gate.held(), 3);
  const stopped = w.controller.stopAll();
  await settle();
  gate.release();
  await stopped;
  assert.equal(w.provider.running().length, 0);
  assert.deepEqual(w.db.liveInstances("svc"), []);
});

test("a launch that fails in the background is an error event and fails the rollout, as one that failed inside its pass", async () => {
  const w = world(undefined, { loop: { wake: () => undefined, startPollMs: 5 } });
  w.provider.behave("r1", { launchFails: true });
  // Failed launches leave no instance to judge: the rollout's deadline ends it (kept short here).
  w.controller.deploy(deployReq("v1", releaseSpec({}, { rolling: { minHealthyPercent: 100, maxHealthyPercent: 150, instanceWarmup: 300, deadline: 1000, autoRollback: true } })));
  await w.run(settled(w));
  assert.equal(w.db.getRelease("r1")?.status, "failed");
  assert.ok(w.db.events("svc").some((e) => /^launch failed: fake launch failure/.test(e.message)));
  assert.equal(w.provider.running().length, 0);
});

test("a pass that terminates writes the routing table once, and an instance is out of the table in force before its stop starts", async () => {
  const w = world(undefined, { loop: { wake: () => undefined, startPollMs: 5 } });
  const spec = releaseSpec();
  w.controller.deploy(deployReq("v1", spec));
  await w.run(settled(w));
  const terminate = w.provider.terminate.bind(w.provider);
  const stoppedWhileRouted: string[] = [];
  w.provider.terminate = async (id: string) => {
    if ((w.router.table?.targets ?? []).some((t) => t.id === id)) stoppedWhileRouted.push(id);
    return terminate(id);
  };
  w.controller.deploy(deployReq("v2", spec));
  let terminatePasses = 0;
  for (let i = 0; i < 2000 && w.db.activeRollout("svc"); i++) {
    w.clock.advance(20);
    const before = w.router.tables.length;
    const steps = await w.controller.tick();
    if (steps.some((s) => s.kind === "terminate")) {
      terminatePasses++;
      assert.ok(w.router.tables.length - before <= 1, `one table write in a terminate pass, got ${w.router.tables.length - before}`);
    }
    for (let k = 0; k < 5; k++) await new Promise((r) => setImmediate(r));
  }
  assert.equal(w.controller.liveRelease()?.id, "r2");
  assert.ok(terminatePasses >= 1);
  assert.deepEqual(stoppedWhileRouted, []);
  assert.ok(w.provider.running().every((i) => i.release === "r2"));
});

// CI saw a Docker release fail with "instance … exited" right after its launch: the pass's
// container list was taken while the container was created but not started yet, the launch
// returned (and was recorded running) before that list's answer was used, and the pass judged
// the new instance by the older answer. An answer taken before a launch returned cannot say
// the instance stopped.
for (const feed of [true, false]) {
  test(`a provider answer taken before a launch returned does not make the new instance exited (${feed ? "change feed" : "full list"})`, async () => {
    const w = world(undefined, { loop: { wake: () => undefined, startPollMs: 5 } });
    const p = w.provider;
    const inner = { launch: p.launch.bind(p), list: p.list.bind(p), changes: p.changes.bind(p) };
    let gates: (() => void)[] = [];
    let held = 0;
    // Launches wait until a provider observation has taken its answer.
    p.launch = async (req) => {
      await new Promise<void>((r) => gates.push(r));
      return inner.launch(req);
    };
    const flush = async () => { for (let k = 0; k < 10; k++) await new Promise((r) => setImmediate(r)); };
    // The answer: every launching instance as the engine shows a created container (not running,
    // no exit code); then the held launches complete and are recorded; then the answer arrives.
    const stale = (list: Awaited<ReturnType<typeof inner.list>>) => {
      const known = new Set(list.map((i) => i.id));
      const created = w.db.liveInstances("svc").filter((r) => r.state === "launching" && !known.has(r.id));
      return [...list, ...created.map((r) => ({ id: r.id, service: "svc", release: r.release, digest: r.digest, address: "", state: "exited" as const, exitCode: null, startedAt: 0 }))];
    };
    const hold = async <T>(answer: T): Promise<T> => {
      if (gates.length) {
        held += gates.length;
        const open = gates;
        gates = [];
        for (const g of open) g();
        await flush();
      }
      return answer;
    };
    if (feed) p.changes = async (service, cursor) => { const c = await inner.changes(service, cursor); return hold({ ...c, instances: stale(c.instances) }); };
    else {
      (p as { changes?: unknown }).changes = undefined;
      p.list = async (service) => hold(stale(await inner.list(service)));
    }
    w.controller.deploy(deployReq("v1", releaseSpec()));
    await w.run(settled(w), { maxTicks: 400 });
    assert.ok(held > 0, "a launch returned while an observation was under way");
    const rel = w.db.listReleases("svc").find((r) => r.id === "r1");
    assert.equal(rel?.status, "live", JSON.stringify(w.db.events("svc", 0, 1000).map((e) => e.message)));
    assert.ok(!w.db.events("svc", 0, 1000).some((e) => / exited/.test(e.message)), "no instance was judged exited");
  });
}

test("a probe turn polls a starting instance's port without a pass: no provider or router read; its first answer wakes the loop", async () => {
  let wakes = 0;
  const w = world(undefined, { loop: { wake: () => wakes++, startPollMs: 5 } });
  const readyAfter = 120;
  w.provider.behave("r1", { readyAfter });
  let reads = 0;
  const changes = w.provider.changes.bind(w.provider);
  w.provider.changes = (service, cursor) => (reads++, changes(service, cursor));
  const list = w.provider.list.bind(w.provider);
  w.provider.list = (service) => (reads++, list(service));
  const statsSince = w.router.statsSince.bind(w.router);
  w.router.statsSince = (cursor) => (reads++, statsSince(cursor));
  let probes = 0;
  const probe = w.provider.probe.bind(w.provider);
  w.provider.probe = (address) => (probes++, probe(address));
  w.controller.deploy(deployReq("v1", releaseSpec()));
  // Passes until the launches are recorded, the new instances' probes are queued and nothing else falls due.
  for (let i = 0; i < 20 && (w.controller.nextDueAt() === undefined || w.controller.nextPassDueAt() !== undefined); i++) {
    w.clock.advance(5);
    await w.controller.tick();
    await settle();
  }
  const launchedAt = w.clock.now();
  assert.ok(w.db.liveInstances("svc").length === 3 && w.db.liveInstances("svc").every((r) => r.address), "launched");
  const readsBefore = reads;
  const probesBefore = probes;
  wakes = 0;
  // Probe turns only, as the loop takes them between its passes while nothing but probes falls due.
  for (let i = 0; i < 100 && wakes === 0; i++) {
    w.clock.advance(5);
    assert.equal(w.controller.nextPassDueAt(), undefined, "nothing but probes falls due");
    w.controller.probeDue();
    await settle();
  }
  assert.equal(reads, readsBefore, "a probe turn reads neither the provider nor the router");
  assert.ok(probes - probesBefore > 3, `the ports were polled (${probes - probesBefore} probes)`);
  assert.ok(wakes > 0, "the first answer woke the loop");
  assert.ok(w.clock.now() - launchedAt >= readyAfter - 5, "not before the port opened");
  // The pass the answer asks for carries the rollout on.
  await w.run(settled(w));
  assert.equal(w.controller.liveRelease()?.id, "r1");
});

test("a probe's news that cannot be written (a full disk) is logged, and the controller goes on: no unhandled rejection", async () => {
  const lines: string[] = [];
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  process.on("unhandledRejection", onUnhandled);
  try {
    const w = world(undefined, { loop: { wake: () => undefined, startPollMs: 5, log: (l) => lines.push(l) } });
    w.controller.deploy(deployReq("v1", releaseSpec()));
    await w.run(settled(w));
    const addEvent = w.db.addEvent.bind(w.db);
    w.db.addEvent = () => {
      throw Object.assign(new Error("database or disk is full"), { code: "SQLITE_FULL" });
    };
    const victim = w.provider.running()[0]!.id;
    w.provider.setHealthy(victim, false);
    // The probe that turns it unhealthy runs in the background: its event write fails.
    const told = (l: string) => l === `[warn] instance ${victim} failed health checks: status 500 (not recorded: database or disk is full)`;
    for (let i = 0; i < 100 && !lines.some(told); i++) {
      w.clock.advance(50);
      await w.controller.tick().catch(() => []); // a pass's own writes fail too: the loop logs those (main.ts)
      for (let k = 0; k < 5; k++) await new Promise((r) => setImmediate(r));
    }
    assert.ok(lines.some(told), lines.join("\n"));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(unhandled, []);
    // Space again: the controller replaces the unhealthy instance.
    w.db.addEvent = addEvent;
    await w.run(() => !w.provider.running().some((i) => i.id === victim) && w.serving().length === 2);
  } finally {
    process.off("unhandledRejection", onUnhandled);
  }
});

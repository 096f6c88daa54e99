// Incremental observation keeps behaviour identical: the same deploys, driven once through the
// provider's and router's change feeds and once through their full lists (what a backend
// without a feed gives), take the same steps tick by tick and end in the same state.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Controller } from "../../src/controller/controller.js";
import { FakeProvider, manualClock, seededRandom } from "../../src/providers/fake/index.js";
import type { LaunchRequest, ObservedInstance, Provider } from "../../src/providers/provider.js";
import type { Step } from "../../src/rollout/types.js";
import { StateDb } from "../../src/state/db.js";
import { FakeRouter } from "../../src/traffic/fake.js";
import type { Router, RouterStats, RoutingTable } from "../../src/traffic/router.js";
import { deployReq, releaseSpec } from "./fake-world.js";

/** The fake provider without its change feed. */
class ListOnly implements Provider {
  readonly name = "list-only";
  constructor(private readonly inner: FakeProvider) {}
  launch(req: LaunchRequest): Promise<ObservedInstance> { return this.inner.launch(req); }
  terminate(id: string): Promise<void> { return this.inner.terminate(id); }
  list(service: string): Promise<ObservedInstance[]> { return this.inner.list(service); }
}

/** The fake router without its change feed. */
class StatsOnly implements Router {
  constructor(private readonly inner: FakeRouter) {}
  setTable(t: RoutingTable): Promise<void> { return this.inner.setTable(t); }
  stats(): Promise<RouterStats> { return this.inner.stats(); }
}

async function run(feeds: boolean, strategy: "rolling" | "blue-green" | "canary") {
  const clock = manualClock();
  const provider = new FakeProvider(clock, seededRandom(7));
  const router = new FakeRouter({ now: clock.now, pid: 1, listen: "127.0.0.1:0" });
  const db = new StateDb(":memory:");
  let n = 0;
  const spec = releaseSpec({ instances: 8 }, { canary: { steps: [{ setWeight: 25 }, { pause: 200 }, { setWeight: 50 }], analysis: { maxErrorRate: 0.5, minRequests: 1, window: 1000 }, instanceWarmup: 100, deadline: 60_000, autoRollback: true } });
  const c = new Controller({
    service: "svc", defaultSpec: spec, listen: "127.0.0.1:0", db,
    provider: feeds ? provider : new ListOnly(provider), router: feeds ? router : new StatsOnly(router),
    probe: (a) => provider.probe(a), clock, newId: (r) => `svc-${r}-${++n}`, instanceDeadline: 5000,
  });
  const trace: string[] = [];
  const tick = async () => {
    clock.advance(50);
    const steps: Step[] = await c.tick();
    for (let k = 0; k < 5; k++) await new Promise((r) => setImmediate(r));
    trace.push(steps.map((s) => `${s.kind}:${"ids" in s ? s.ids.join(",") : "count" in s ? s.count : ""}`).join(" "));
    if (router.table) router.serve(20, () => ({ status: 200, latencyMs: 3 }));
  };
  c.deploy(deployReq("v1", spec));
  for (let i = 0; i < 400 && db.activeRollout("svc"); i++) await tick();
  provider.behave("r2", { readyAfter: 120, failRate: 0.2 });
  c.deploy(deployReq("v2", spec, strategy));
  let crashed = "";
  for (let i = 0; i < 600 && db.activeRollout("svc"); i++) {
    await tick();
    // A crash from outside, as a sick node would: the feed must report it like the list does.
    if (i === 2) provider.crash((crashed = db.liveInstances("svc").find((r) => r.release === "r1" && r.state === "running")!.id));
  }
  for (let i = 0; i < 20; i++) await tick();
  await c.settle();
  const end = {
    releases: db.listReleases("svc").map((r) => [r.id, r.status]),
    instances: db.liveInstances("svc").map((r) => [r.id, r.release, r.state, r.routing]),
    table: router.table?.targets.map((t) => [t.id, t.weight, t.state]),
    exits: db.events("svc", 0, 100_000).filter((e) => / exited \(/.test(e.message)).map((e) => e.message),
  };
  assert.ok(crashed && end.exits.some((m) => m.startsWith(`instance ${crashed} exited (`)), `the crash of ${crashed} is an event: ${JSON.stringify(end.exits)}`);
  db.close();
  return { trace, end };
}

for (const strategy of ["rolling", "blue-green", "canary"] as const) {
  test(`${strategy}: change feeds and full lists give the same steps and the same end state`, async () => {
    const a = await run(true, strategy);
    const b = await run(false, strategy);
    assert.ok(a.trace.some((t) => t.includes("launch")), "the scenario did something");
    assert.deepEqual(a.trace, b.trace);
    assert.deepEqual(a.end, b.end);
  });
}

// The controller's HTTP API in process (hono's app.request): routes parse, call the
// controller and render; KilnErrors map to statuses here. Spawns nothing.

import assert from "node:assert/strict";
import { test } from "node:test";
import type { ReleaseView, RolloutView, StatusView } from "../../src/controller/types.js";
import { KilnError } from "../../src/errors.js";
import { createApp } from "../../src/server/app.js";
import { deployReq, releaseSpec, world } from "../controller/fake-world.js";

function setup() {
  const w = world();
  let shutdowns = 0;
  const app = createApp({ controller: w.controller, db: w.db, service: "svc", onShutdown: () => shutdowns++ });
  const post = (path: string, body?: unknown) =>
    app.request(path, { method: "POST", headers: { "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { w, app, post, shutdowns: () => shutdowns };
}

test("ping, status before any deploy, and a deploy that goes live over the API", async () => {
  const { w, app, post } = setup();
  const ping = await app.request("/v1/ping");
  assert.equal(ping.status, 200);
  assert.equal(((await ping.json()) as { ok: boolean }).ok, true);

  const before = (await (await app.request("/v1/status")).json()) as StatusView;
  assert.equal(before.service, "svc");
  assert.equal(before.release, undefined);
  assert.deepEqual(before.instances, []);

  const res = await post("/v1/deploy", deployReq("v1", releaseSpec()));
  assert.equal(res.status, 202);
  const { release, rollout } = (await res.json()) as { release: ReleaseView; rollout: RolloutView };
  assert.equal(release.status, "deploying");
  assert.equal(rollout.state, "running");

  await w.run(() => w.db.activeRollout("svc") === undefined);
  const after = (await (await app.request("/v1/status")).json()) as StatusView;
  assert.equal(after.release?.id, release.id);
  assert.equal(after.release?.status, "live");
  assert.equal(after.instances.length, 3);
  assert.ok(after.instances.every((i) => i.health === "healthy" && i.routing === "active" && i.inRotation));

  const one = await app.request(`/v1/rollouts/${rollout.id}`);
  assert.equal(((await one.json()) as RolloutView).state, "done");
  const history = (await (await app.request("/v1/history")).json()) as { releases: ReleaseView[] };
  assert.deepEqual(history.releases.map((r) => r.id), [release.id]);
  const events = (await (await app.request("/v1/events?after=0")).json()) as { events: { message: string }[] };
  assert.ok(events.events.some((e) => e.message.startsWith("release live:")));
});

test("errors map to statuses with the KilnError body", async () => {
  const { app, post } = setup();
  const bad = await post("/v1/deploy", { ref: "x" });
  assert.equal(bad.status, 400);
  assert.equal(((await bad.json()) as { error: { code: string } }).error.code, "KILN_E_USAGE");

  const missing = await app.request("/v1/rollouts/99");
  assert.equal(missing.status, 404);
  assert.equal(((await missing.json()) as { error: { code: string } }).error.code, "KILN_E_NOT_FOUND");

  const nothing = await post("/v1/rollback");
  assert.equal(nothing.status, 404);

  const noRollout = await post("/v1/pause");
  assert.equal(noRollout.status, 409);
  assert.equal(((await noRollout.json()) as { error: { code: string } }).error.code, "KILN_E_CONTROLLER");

  const scale = await post("/v1/scale", { instances: -1 });
  assert.equal(scale.status, 400);
});

test("pause, resume, scale and abort act on the controller", async () => {
  const { w, post } = setup();
  await post("/v1/deploy", deployReq("v1", releaseSpec()));
  await w.run(() => w.db.activeRollout("svc") === undefined);
  await post("/v1/deploy", deployReq("v2", releaseSpec()));

  const paused = (await (await post("/v1/pause")).json()) as RolloutView;
  assert.equal(paused.phase, "paused");
  assert.equal(w.db.activeRollout("svc")?.paused, true);
  const resumed = await post("/v1/resume");
  assert.equal(resumed.status, 200);
  assert.equal(w.db.activeRollout("svc")?.paused, false);

  const conflict = await post("/v1/deploy", deployReq("v3", releaseSpec()));
  assert.equal(conflict.status, 409);

  const aborted = (await (await post("/v1/abort")).json()) as RolloutView;
  assert.equal(aborted.state, "aborted");
  assert.equal(w.db.activeRollout("svc")?.kind, "rollback");

  const scaled = (await (await post("/v1/scale", { instances: 2 })).json()) as { instances: number };
  assert.equal(scaled.instances, 2);
  assert.equal(w.controller.desiredInstances(), 2);
});

test("shutdown without stopping instances answers, then calls onShutdown", async () => {
  const { w, post, shutdowns } = setup();
  await post("/v1/deploy", deployReq("v1", releaseSpec()));
  await w.run(() => w.db.activeRollout("svc") === undefined);
  const res = await post("/v1/shutdown", { stopInstances: false });
  assert.equal(res.status, 200);
  await new Promise((r) => setImmediate(r));
  assert.equal(shutdowns(), 1);
  assert.equal(w.provider.running().length, 3);
});

test("the audit trail: each command's note is recorded with the release and digests; a rollback without a reason says so", async () => {
  const events: import("../../src/notify/event.js").NotifyEvent[] = [];
  const w = world(":memory:", { notify: (e) => events.push(e) });
  const app = createApp({ controller: w.controller, db: w.db, service: "svc", onShutdown: () => undefined });
  const post = (path: string, body: unknown) => app.request(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const note = (reason?: string) => ({ actor: "dev@laptop", command: "kiln x", ...(reason ? { reason } : {}) });

  assert.equal((await post("/v1/deploy", { ...deployReq("v1", releaseSpec()), note: note("first") })).status, 202);
  await w.run(() => w.db.activeRollout("svc") === undefined);
  assert.equal((await post("/v1/deploy", { ...deployReq("v2", releaseSpec()), note: note() })).status, 202);
  await w.run(() => w.db.activeRollout("svc") === undefined);
  assert.equal((await post("/v1/scale", { instances: 4, note: note("traffic") })).status, 200);
  assert.equal((await post("/v1/rollback", { note: note() })).status, 202);
  await w.run(() => w.db.activeRollout("svc") === undefined);
  // no note at all (an API client of its own): still recorded, as such
  assert.equal((await post("/v1/scale", { instances: 3 })).status, 200);

  const rows = w.db.changes("svc").reverse();
  const v1 = `sha256:${"v1".padEnd(64, "0")}`, v2 = `sha256:${"v2".padEnd(64, "0")}`;
  assert.deepEqual(rows.map((c) => [c.action, c.actor, c.reason, c.release, c.digest, c.previousDigest, c.detail]), [
    ["deploy", "dev@laptop", "first", "r1", v1, undefined, "svc:v1 with rolling"],
    ["deploy", "dev@laptop", undefined, "r2", v2, v1, "svc:v2 with rolling"],
    ["scale", "dev@laptop", "traffic", "r2", v2, undefined, "3 → 4 instances"],
    ["rollback", "dev@laptop", "no reason given", "r1", v1, v2, "back to svc:v1"],
    ["scale", "unknown (API)", undefined, "r1", v1, undefined, "4 → 3 instances"],
  ]);
  const history = (await (await app.request("/v1/history")).json()) as { changes: unknown[] };
  assert.equal(history.changes.length, 5);

  // notices for the webhooks, in order
  assert.deepEqual(events.filter((e) => e.type.startsWith("rollout.")).map((e) => `${e.type} ${e.rollout?.kind} ${e.release?.id}`), [
    "rollout.started deploy r1", "rollout.live deploy r1", "rollout.started deploy r2", "rollout.live deploy r2", "rollout.started rollback r1", "rollout.rolled-back rollback r1",
  ]);
  assert.equal(events.find((e) => e.type === "rollout.live" && e.release?.id === "r2")!.previous?.id, "r1");

  const bad = await post("/v1/pause", { note: { actor: "" } });
  assert.equal(bad.status, 400);
  const rec = await post("/v1/record", { events: [{ level: "info", message: "[pre-deploy] ok" }], changes: [{ ...note(), action: "hook pre-deploy", result: "ok" }] });
  assert.equal(rec.status, 200);
  assert.equal(w.db.changes("svc")[0]!.action, "hook pre-deploy");
  assert.ok(w.db.events("svc").some((e) => e.message === "[pre-deploy] ok"));
});

test("a deploy the controller's policy check refuses: 403 with KILN_E_POLICY, nothing deployed", async () => {
  const w = world();
  const seen: string[] = [];
  const app = createApp({
    controller: w.controller,
    db: w.db,
    service: "svc",
    onShutdown: () => undefined,
    checkPolicy: async (digest) => {
      seen.push(digest);
      throw new KilnError("KILN_E_POLICY", `${digest} fails the deploy policy: signedBy: the image carries no signature`);
    },
  });
  const req = deployReq("v1", releaseSpec());
  const res = await app.request("/v1/deploy", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(req) });
  assert.equal(res.status, 403);
  const body = (await res.json()) as { error: { code: string; message: string } };
  assert.equal(body.error.code, "KILN_E_POLICY");
  assert.match(body.error.message, /signedBy/);
  assert.deepEqual(seen, [req.digest]);
  assert.equal(w.db.activeRollout("svc"), undefined, "no rollout started");
});

test("a watcher's long poll: answers at once with newer events or a settled rollout, else after its wait", async () => {
  const { w, app, post } = setup();
  const { rollout } = (await (await post("/v1/deploy", deployReq("v1", releaseSpec()))).json()) as { rollout: RolloutView };
  type Waited = { rollout: RolloutView; events: { id: number; message: string }[] };
  const wait = async (after: number, timeoutMs: number) => {
    const t = performance.now();
    const res = await app.request(`/v1/rollouts/${rollout.id}/wait?after=${after}&timeoutMs=${timeoutMs}`);
    return { status: res.status, body: (await res.json()) as Waited, ms: performance.now() - t };
  };
  // the deploy's own event is newer than 0: no waiting
  const first = await wait(0, 5000);
  assert.equal(first.status, 200);
  assert.equal(first.body.rollout.state, "running");
  assert.ok(first.body.events.some((e) => e.message.startsWith("deploying")));
  assert.ok(first.ms < 2500, `answered in ${first.ms} ms`);
  // nothing newer and still running (the fake world's clock does not move by itself): the whole wait
  const last = first.body.events.at(-1)!.id;
  const idle = await wait(last, 80);
  assert.equal(idle.body.rollout.state, "running");
  assert.deepEqual(idle.body.events, []);
  assert.ok(idle.ms >= 70, `waited ${idle.ms} ms`);

  await w.run(() => w.db.activeRollout("svc") === undefined);
  const newest = ((await (await app.request("/v1/events?after=0")).json()) as { events: { id: number }[] }).events.at(-1)!.id;
  const done = await wait(newest, 5000);
  assert.equal(done.body.rollout.state, "done");
  assert.ok(done.ms < 2500, `answered in ${done.ms} ms`);

  const missing = await app.request("/v1/rollouts/99/wait?after=0&timeoutMs=10");
  assert.equal(missing.status, 404);
});

test("a watcher's long poll is woken by the controller's own write, not by a recheck", async () => {
  const w = world();
  // Rechecks an hour apart: only the write can end this wait before its 10 s.
  const app = createApp({ controller: w.controller, db: w.db, service: "svc", onShutdown: () => undefined, waitRecheckMs: 3_600_000 });
  const res = await app.request("/v1/deploy", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(deployReq("v1", releaseSpec())) });
  const { rollout } = (await res.json()) as { rollout: RolloutView };
  const newest = w.db.events("svc", 0).at(-1)!.id;
  const waiting = app.request(`/v1/rollouts/${rollout.id}/wait?after=${newest}&timeoutMs=10000`);
  setTimeout(() => w.db.addEvent({ at: Date.now(), level: "info", service: "svc", message: "written while a watcher waits" }), 20);
  const body = (await (await waiting).json()) as { rollout: RolloutView; events: { message: string }[] };
  assert.deepEqual(body.events.map((e) => e.message), ["written while a watcher waits"]);
  assert.equal(body.rollout.state, "running");
});

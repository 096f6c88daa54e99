// The state database's own behaviour: the instance change feed, the live index, and reading
// releases recorded by an older kiln.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DueQueue } from "../../src/controller/due-queue.js";
import { StateDb, type InstanceRecord } from "../../src/state/db.js";
import { releaseSpec } from "../controller/fake-world.js";

const rec = (id: string, extra: Partial<InstanceRecord> = {}): InstanceRecord => ({ id, service: "svc", release: "r1", digest: "d", state: "launching", routing: "none", launchedAt: 1, ...extra });

describe("instance change feed", () => {
  it("first read is full; then only the ids written since, with reordering flagged", () => {
    const db = new StateDb(":memory:");
    db.insertInstance(rec("a"));
    db.liveInstances("svc");
    const first = db.instanceChangesSince("svc", undefined);
    assert.equal(first.full, true);
    db.insertInstance(rec("b"));
    db.updateInstance("a", { healthySince: 5 });
    const next = db.instanceChangesSince("svc", first.cursor);
    assert.equal(next.full, false);
    assert.deepEqual(next.ids.sort(), ["a", "b"]);
    assert.equal(next.reordered, true);
    db.updateInstance("a", { routing: "active" });
    const third = db.instanceChangesSince("svc", next.cursor);
    assert.deepEqual(third, { cursor: third.cursor, full: false, reordered: false, ids: ["a"] });
    assert.deepEqual(db.instanceChangesSince("svc", third.cursor).ids, []);
    db.close();
  });
  it("a rolled-back transaction makes the next read full", () => {
    const db = new StateDb(":memory:");
    db.insertInstance(rec("a"));
    db.liveInstances("svc");
    const c = db.instanceChangesSince("svc", undefined).cursor;
    assert.throws(() => db.tx(() => {
      db.updateInstance("a", { routing: "active" });
      throw new Error("boom");
    }));
    assert.equal(db.instanceChangesSince("svc", c).full, true);
    assert.equal(db.liveIndex("svc").get("a")?.routing, "none");
    db.close();
  });
  it("the live index follows this connection's writes and drops what left the live states", () => {
    const db = new StateDb(":memory:");
    db.insertInstance(rec("a"));
    const index = db.liveIndex("svc");
    db.updateInstance("a", { state: "running", address: "127.0.0.1:1" });
    assert.equal(index.get("a")?.address, "127.0.0.1:1");
    db.updateInstance("a", { state: "terminated" });
    assert.equal(index.has("a"), false);
    db.close();
  });
});

describe("releases", () => {
  it("a release recorded without maxQuarantined reads back with the default", () => {
    const db = new StateDb(":memory:");
    const { maxQuarantined: _, ...strategy } = releaseSpec().strategy;
    const r = db.createRelease({ service: "svc", ref: "a:1", version: "1", digest: "d", configHash: "c", env: {}, spec: { ...releaseSpec(), strategy } as never, strategy: "rolling", status: "live", createdAt: 0 });
    assert.equal(db.getRelease(r.id)!.spec.strategy.maxQuarantined, 1);
    db.close();
  });
});

describe("DueQueue", () => {
  it("pops what is due, earliest first, each id once, at its latest due time", () => {
    const q = new DueQueue();
    q.schedule("a", 30);
    q.schedule("b", 10);
    q.schedule("c", 20);
    q.schedule("a", 15); // rescheduled: the entry at 30 is stale
    assert.deepEqual(q.popDue(5), []);
    assert.deepEqual(q.popDue(20), ["b", "a", "c"]);
    assert.deepEqual(q.popDue(100), []);
    q.schedule("d", 50);
    q.cancel("d");
    assert.deepEqual(q.popDue(100), []);
    assert.equal(q.size, 0);
  });
});

describe("migrations", () => {
  it("5 (the unread step journal goes) from schema 4 with rows: everything else reads back", async () => {
    const { mkdtempSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const Database = (await import("better-sqlite3")).default;
    const { MIGRATIONS } = await import("../../src/state/db.js");
    const dir = mkdtempSync(join(tmpdir(), "kiln-migrate-"));
    try {
      const file = join(dir, "state.db");
      const raw = new Database(file);
      for (const m of MIGRATIONS.slice(0, 4)) raw.exec(m);
      raw.pragma("user_version = 4");
      const { maxQuarantined: _, ...oldStrategy } = releaseSpec().strategy;
      raw.prepare("INSERT INTO releases (id, seq, service, ref, version, digest, config_hash, env, spec, strategy, status, created_at) VALUES ('r1', 1, 'svc', 'a:1', '1', 'sha256:a', 'c', '{}', ?, 'rolling', 'live', 10)")
        .run(JSON.stringify({ ...releaseSpec(), strategy: oldStrategy }));
      raw.prepare("INSERT INTO instances (id, service, release, digest, address, state, routing, launched_at, healthy_since) VALUES ('i1', 'svc', 'r1', 'sha256:a', '127.0.0.1:1', 'running', 'active', 11, 12)").run();
      raw.prepare("INSERT INTO rollouts (service, kind, strategy, target, state, started_at, progress) VALUES ('svc', 'deploy', 'rolling', 'r1', 'running', 10, '{\"quarantined\":1}')").run();
      raw.prepare("INSERT INTO steps (rollout, service, kind, payload, status, at) VALUES (1, 'svc', 'launch', '{}', 'intent', 10)").run();
      raw.prepare("INSERT INTO events (at, level, service, message) VALUES (10, 'info', 'svc', 'deploying')").run();
      raw.prepare("INSERT INTO meta (key, value) VALUES ('live', 'r1'), ('instances', '3'), ('lease:svc', ?)").run(JSON.stringify({ owner: "1@h", until: 99 }));
      raw.close();

      const db = new StateDb(file);
      assert.deepEqual(db.schemaVersion(), { version: MIGRATIONS.length, latest: MIGRATIONS.length });
      assert.equal(db.db.prepare("SELECT name FROM sqlite_master WHERE name = 'steps'").get(), undefined);
      assert.equal(db.getRelease("r1")!.spec.strategy.maxQuarantined, 1);
      assert.deepEqual(db.liveInstances("svc").map((i) => [i.id, i.routing, i.healthySince]), [["i1", "active", 12]]);
      assert.deepEqual(db.activeRollout("svc")?.progress, { quarantined: 1 });
      assert.deepEqual(db.events("svc").map((e) => e.message), ["deploying"]);
      assert.equal(db.getMeta("live"), "r1");
      assert.equal(db.getMeta("instances"), "3");
      assert.deepEqual(db.lease("svc"), { owner: "1@h", until: 99 });
      assert.deepEqual(db.integrityCheck(), ["ok"]);
      db.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the audit trail (changes)", () => {
  it("6 (changes) from schema 5 with rows: the table is added, older rows untouched", async () => {
    const { mkdtempSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const Database = (await import("better-sqlite3")).default;
    const { MIGRATIONS } = await import("../../src/state/db.js");
    const dir = mkdtempSync(join(tmpdir(), "kiln-migrate-"));
    try {
      const file = join(dir, "state.db");
      const raw = new Database(file);
      for (const m of MIGRATIONS.slice(0, 5)) raw.exec(m);
      raw.pragma("user_version = 5");
      raw.prepare("INSERT INTO events (at, level, service, message) VALUES (10, 'info', 'svc', 'deploying')").run();
      raw.close();
      const db = new StateDb(file);
      assert.equal(db.schemaVersion().version, MIGRATIONS.length);
      assert.deepEqual(db.changes("svc"), []);
      assert.equal(db.events("svc").length, 1);
      db.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("numbers changes per service, newest first, and keeps every field (epoch ms beyond 32 bits too)", () => {
    const db = new StateDb(":memory:");
    const at = Date.UTC(2026, 11, 2, 23, 0, 0);
    db.addChange({ at, service: "svc", actor: "dev@laptop", action: "deploy", command: "kiln deploy", result: "accepted", release: "r1", digest: "sha256:b" });
    db.addChange({ at: at + 1, service: "other", actor: "ci", action: "scale", command: "kiln scale 2", result: "accepted" });
    db.addChange({ at: at + 2, service: "svc", env: "staging", actor: "github:octocat (run 9)", action: "rollback", command: "kiln rollback", reason: "no reason given", result: "accepted", previousDigest: "sha256:b", digest: "sha256:a", detail: "back to hello:1" });
    const svc = db.changes("svc");
    assert.deepEqual(svc.map((c) => [c.seq, c.action]), [[2, "rollback"], [1, "deploy"]]);
    assert.deepEqual(svc[0], { seq: 2, at: at + 2, service: "svc", env: "staging", actor: "github:octocat (run 9)", action: "rollback", command: "kiln rollback", reason: "no reason given", release: undefined, digest: "sha256:a", previousDigest: "sha256:b", result: "accepted", detail: "back to hello:1" });
    assert.deepEqual(db.changes("other").map((c) => c.seq), [1]);
    assert.equal(db.changes("svc", 1).length, 1);
    db.close();
  });
});

describe("recentEvents", () => {
  it("the newest n of one service, oldest first, whatever other services wrote in between", () => {
    const db = new StateDb(":memory:");
    for (let i = 1; i <= 6; i++) {
      db.addEvent({ at: i, level: "info", service: "svc", message: `svc ${i}` });
      db.addEvent({ at: i, level: "info", service: "other", message: `other ${i}` });
    }
    assert.deepEqual(db.recentEvents("svc", 3).map((e) => e.message), ["svc 4", "svc 5", "svc 6"]);
    assert.deepEqual(db.recentEvents("svc", 10).map((e) => e.message), ["svc 1", "svc 2", "svc 3", "svc 4", "svc 5", "svc 6"]);
    assert.deepEqual(db.recentEvents("none", 3), []);
    db.close();
  });
});

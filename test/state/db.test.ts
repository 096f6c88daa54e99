// The state database's own behaviour: the instance change feed, the live index, and reading
// releases recorded by an older kiln.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DueQueue } from "../../src/controller/due-queue.js";
import { MIGRATIONS, StateDb, type InstanceRecord } from "../../src/state/db.js";
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

describe("fleet-wide writes", () => {
  it("insertInstances, updateInstances and addEvents write every row (chunked statements) and keep the cache and feed in step", () => {
    const db = new StateDb(":memory:");
    // 64 rows per INSERT, 500 ids per UPDATE: counts around and across the chunk sizes.
    for (const n of [1, 2, 3, 63, 64, 65, 130, 499, 500, 501, 1201]) {
      const svc = `s${n}`;
      const ids = Array.from({ length: n }, (_, k) => `${svc}-${k}`);
      db.insertInstances(ids.map((id, k) => rec(id, { service: svc, launchedAt: k % 7 })));
      db.liveInstances(svc); // a reader of the feed reads the fleet first (the observer does)
      const feed = db.instanceChangesSince(svc, undefined).cursor;
      const some = ids.filter((_, k) => k % 3 !== 1);
      db.updateInstances(some, { routing: "active", drainingSince: undefined });
      db.updateInstances(ids.filter((_, k) => k % 3 === 1), { state: "terminated", routing: "none", terminatedAt: 9, reason: "x" });
      // from the cache, then from the table
      const expect = [...some].sort();
      assert.deepEqual(db.liveInstances(svc).map((i) => i.id).sort(), expect);
      assert.ok(db.liveInstances(svc).every((i) => i.routing === "active"));
      const rows = db.db.prepare("SELECT id, routing, state FROM instances WHERE service = ? ORDER BY id").all(svc) as { id: string; routing: string; state: string }[];
      assert.equal(rows.length, n);
      assert.deepEqual(rows.filter((r) => r.state === "launching" && r.routing === "active").map((r) => r.id).sort(), expect);
      assert.equal(rows.filter((r) => r.state === "terminated" && r.routing === "none").length, n - some.length);
      const changed = db.instanceChangesSince(svc, feed);
      assert.equal(changed.full, false);
      assert.equal(changed.ids.length, n);
      db.addEvents(ids.map((id, k) => ({ at: k, level: "info" as const, service: svc, instance: id, message: `m${k}` })));
      assert.deepEqual(db.events(svc, 0, 5000).map((e) => e.message), ids.map((_, k) => `m${k}`));
    }
    db.close();
  });
  it("a write to a service no one has read from this connection makes the next read of its feed full", () => {
    const db = new StateDb(":memory:");
    db.insertInstance(rec("a"));
    const cursor = db.instanceChangesSince("svc", undefined).cursor;
    db.updateInstance("a", { routing: "active" });
    assert.equal(db.instanceChangesSince("svc", cursor).full, true);
    db.close();
  });
  it("live instances keep launch order, ties in insertion order, whether inserted one by one or together", () => {
    const db = new StateDb(":memory:");
    db.insertInstances([rec("c", { launchedAt: 2 }), rec("a", { launchedAt: 1 }), rec("b", { launchedAt: 2 })]);
    db.insertInstance(rec("d", { launchedAt: 1 }));
    assert.deepEqual(db.liveInstances("svc").map((i) => i.id), ["a", "d", "c", "b"]);
    const other = new StateDb(":memory:");
    for (const r of [rec("c", { launchedAt: 2 }), rec("a", { launchedAt: 1 }), rec("b", { launchedAt: 2 }), rec("d", { launchedAt: 1 })]) other.insertInstance(r);
    assert.deepEqual(other.liveInstances("svc").map((i) => i.id), ["a", "d", "c", "b"]);
    db.close();
    other.close();
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

describe("service facts", () => {
  it("are typed and scoped: two services do not see each other's facts; undefined removes one", () => {
    const db = new StateDb(":memory:");
    db.setFact("web", "live", "r3");
    db.setFact("web", "instances", 12);
    db.setFact("web", "maintenance", { message: "m", retryAfterS: 30 });
    db.setFact("api", "instances", 2);
    assert.equal(db.getFact("web", "live"), "r3");
    assert.equal(db.getFact("api", "live"), undefined);
    assert.equal(db.getFact("web", "instances"), 12);
    assert.equal(db.getFact("api", "instances"), 2);
    assert.deepEqual(db.getFact("web", "maintenance"), { message: "m", retryAfterS: 30 });
    assert.equal(db.getFact("api", "maintenance"), undefined);
    db.setFact("web", "instances", 13);
    assert.equal(db.getFact("web", "instances"), 13);
    db.setFact("web", "maintenance", undefined);
    assert.equal(db.getFact("web", "maintenance"), undefined);
    assert.equal(db.getFact("api", "instances"), 2);
    assert.throws(() => db.setFact("web", "tableVersion", 1.5), /whole number/);
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
    await fromSchema(4, (raw) => {
      const { maxQuarantined: _, ...oldStrategy } = releaseSpec().strategy;
      raw.prepare("INSERT INTO releases (id, seq, service, ref, version, digest, config_hash, env, spec, strategy, status, created_at) VALUES ('r1', 1, 'svc', 'a:1', '1', 'sha256:a', 'c', '{}', ?, 'rolling', 'live', 10)")
        .run(JSON.stringify({ ...releaseSpec(), strategy: oldStrategy }));
      raw.prepare("INSERT INTO instances (id, service, release, digest, address, state, routing, launched_at, healthy_since) VALUES ('i1', 'svc', 'r1', 'sha256:a', '127.0.0.1:1', 'running', 'active', 11, 12)").run();
      raw.prepare("INSERT INTO rollouts (service, kind, strategy, target, state, started_at, progress) VALUES ('svc', 'deploy', 'rolling', 'r1', 'running', 10, '{\"quarantined\":1}')").run();
      raw.prepare("INSERT INTO steps (rollout, service, kind, payload, status, at) VALUES (1, 'svc', 'launch', '{}', 'intent', 10)").run();
      raw.prepare("INSERT INTO events (at, level, service, message) VALUES (10, 'info', 'svc', 'deploying')").run();
      raw.prepare("INSERT INTO meta (key, value) VALUES ('live', 'r1'), ('instances', '3'), ('lease:svc', ?)").run(JSON.stringify({ owner: "1@h", until: 99 }));
    }, (db) => {
      assert.deepEqual(db.schemaVersion(), { version: MIGRATIONS.length, latest: MIGRATIONS.length });
      assert.equal(db.db.prepare("SELECT name FROM sqlite_master WHERE name = 'steps'").get(), undefined);
      assert.equal(db.getRelease("r1")!.spec.strategy.maxQuarantined, 1);
      assert.deepEqual(db.liveInstances("svc").map((i) => [i.id, i.routing, i.healthySince]), [["i1", "active", 12]]);
      assert.deepEqual(db.activeRollout("svc")?.progress, { quarantined: 1 });
      assert.deepEqual(db.events("svc").map((e) => e.message), ["deploying"]);
      assert.equal(db.getFact("svc", "live"), "r1");
      assert.equal(db.getFact("svc", "instances"), 3);
      assert.deepEqual(db.lease("svc"), { owner: "1@h", until: 99 });
    });
  });

  /** A state file at schema `version` (the migrations before it), filled by `fill`, opened by the current kiln. */
  async function fromSchema(version: number, fill: (raw: import("better-sqlite3").Database) => void, check: (db: StateDb) => void): Promise<void> {
    const { mkdtempSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const Database = (await import("better-sqlite3")).default;
    const dir = mkdtempSync(join(tmpdir(), "kiln-migrate-"));
    try {
      const file = join(dir, "state.db");
      const raw = new Database(file);
      for (const m of MIGRATIONS.slice(0, version)) raw.exec(m);
      raw.pragma(`user_version = ${version}`);
      fill(raw);
      raw.close();
      const db = new StateDb(file);
      try {
        check(db);
        assert.deepEqual(db.integrityCheck(), ["ok"]);
      } finally {
        db.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const release = (raw: import("better-sqlite3").Database, id: string, service: string) =>
    raw.prepare("INSERT INTO releases (id, seq, service, ref, version, digest, config_hash, env, spec, strategy, status, created_at) VALUES (?, 1, ?, 'a:1', '1', 'sha256:a', 'c', '{}', ?, 'rolling', 'live', 10)")
      .run(id, service, JSON.stringify(releaseSpec()));
  const meta = (raw: import("better-sqlite3").Database, rows: Record<string, string>) => {
    for (const [k, v] of Object.entries(rows)) raw.prepare("INSERT INTO meta (key, value) VALUES (?, ?)").run(k, v);
  };

  it("6 (service-scoped facts) from schema 5 with rows: the unscoped facts go to the live release's service, maintenance keeps its own, the lease stays", async () => {
    await fromSchema(5, (raw) => {
      release(raw, "r1", "web");
      release(raw, "x1", "api");
      meta(raw, { live: "r1", instances: "4", standbyUntil: "600000", tableVersion: "17", "maintenance:api": JSON.stringify({ message: "back soon" }), "lease:web": JSON.stringify({ owner: "1@h", until: 99 }) });
    }, (db) => {
      assert.equal(db.getFact("web", "live"), "r1");
      assert.equal(db.getFact("web", "instances"), 4);
      assert.equal(db.getFact("web", "standbyUntil"), 600_000);
      assert.equal(db.getFact("web", "tableVersion"), 17);
      assert.equal(db.getFact("web", "maintenance"), undefined);
      assert.deepEqual(db.getFact("api", "maintenance"), { message: "back soon" });
      assert.equal(db.getFact("api", "live"), undefined);
      assert.equal(db.getFact("api", "instances"), undefined);
      assert.deepEqual(db.lease("web"), { owner: "1@h", until: 99 });
      // nothing but the lease is left in meta
      assert.deepEqual(db.db.prepare("SELECT key FROM meta ORDER BY key").all(), [{ key: "lease:web" }]);
    });
  });

  it("6 from schema 5: without a live release the facts go to the only service state knows of", async () => {
    await fromSchema(5, (raw) => {
      raw.prepare("INSERT INTO instances (id, service, release, digest, state, routing, launched_at) VALUES ('i1', 'solo', 'r9', 'sha256:a', 'running', 'active', 1)").run();
      meta(raw, { instances: "2", tableVersion: "3" });
    }, (db) => {
      assert.equal(db.getFact("solo", "instances"), 2);
      assert.equal(db.getFact("solo", "tableVersion"), 3);
      assert.equal(db.getFact("solo", "live"), undefined);
    });
  });

  it("6 from schema 5: facts that name no service (several services, none live) are dropped, not given to one at random", async () => {
    await fromSchema(5, (raw) => {
      release(raw, "r1", "web");
      release(raw, "x1", "api");
      raw.prepare("UPDATE releases SET status = 'superseded'").run();
      meta(raw, { instances: "5" });
    }, (db) => {
      assert.equal(db.getFact("web", "instances"), undefined);
      assert.equal(db.getFact("api", "instances"), undefined);
      assert.deepEqual(db.db.prepare("SELECT COUNT(*) AS n FROM service_facts").get(), { n: 0 });
      assert.deepEqual(db.db.prepare("SELECT COUNT(*) AS n FROM meta").get(), { n: 0 });
    });
  });
});

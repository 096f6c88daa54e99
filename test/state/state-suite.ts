// The state database's behaviour, one suite for every backend: db.test.ts runs it on SQLite,
// integration/pg-state.test.ts on PostgreSQL. `fresh()` gives a new, empty state location
// (an SQLite file, or a PostgreSQL schema) and the way to remove it.

import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { MIGRATIONS, openStateDriver, StateDb, type InstanceRecord } from "../../src/state/db.js";
import { releaseSpec } from "../controller/fake-world.js";

export interface StateBackendUnderTest {
  name: string;
  /** a new, empty state location; `drop` removes it once its connections are closed */
  fresh(): Promise<{ location: string; drop(): Promise<void> }>;
}

const rec = (id: string, extra: Partial<InstanceRecord> = {}): InstanceRecord => ({ id, service: "svc", release: "r1", digest: "d", state: "launching", routing: "none", launchedAt: 1, ...extra });
const release = (over: Record<string, unknown> = {}) => ({
  service: "svc", ref: "a:1", version: "1", digest: "sha256:a", configHash: "c", env: { A: "1" }, spec: releaseSpec(), strategy: "rolling" as const, status: "live" as const, createdAt: 1_796_000_000_000, ...over,
});

export function stateSuite(backend: StateBackendUnderTest): void {
  const drops: (() => Promise<void>)[] = [];
  after(async () => {
    for (const d of drops) await d();
  });
  /** Opens a StateDb (or several, on the same location) closed at the end of `fn`. */
  async function withState(fn: (open: () => StateDb, location: string) => void | Promise<void>): Promise<void> {
    const f = await backend.fresh();
    drops.push(f.drop);
    const opened: StateDb[] = [];
    try {
      await fn(() => {
        const db = new StateDb(f.location);
        opened.push(db);
        return db;
      }, f.location);
    } finally {
      for (const db of opened) db.close();
    }
  }

  describe(`${backend.name}: instance change feed`, () => {
    it("first read is full; then only the ids written since, with reordering flagged", () => withState((open) => {
      const db = open();
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
    }));
    it("a rolled-back transaction makes the next read full", () => withState((open) => {
      const db = open();
      db.insertInstance(rec("a"));
      db.liveInstances("svc");
      const c = db.instanceChangesSince("svc", undefined).cursor;
      assert.throws(() => db.tx(() => {
        db.updateInstance("a", { routing: "active" });
        throw new Error("boom");
      }));
      assert.equal(db.instanceChangesSince("svc", c).full, true);
      assert.equal(db.liveIndex("svc").get("a")?.routing, "none");
    }));
    it("the live index follows this connection's writes and drops what left the live states", () => withState((open) => {
      const db = open();
      db.insertInstance(rec("a"));
      const index = db.liveIndex("svc");
      db.updateInstance("a", { state: "running", address: "127.0.0.1:1" });
      assert.equal(index.get("a")?.address, "127.0.0.1:1");
      db.updateInstance("a", { state: "terminated" });
      assert.equal(index.has("a"), false);
    }));
    it("another connection's commit drops the cache; this connection's own writes do not", () => withState((open) => {
      const a = open();
      const b = open();
      a.insertInstance(rec("x", { launchedAt: 5 }));
      const cursor = a.instanceChangesSince("svc", undefined).cursor;
      assert.deepEqual(a.liveInstances("svc").map((i) => i.id), ["x"]);
      const rev = a.instancesRevision();
      a.updateInstance("x", { healthySince: 9 }); // own write, not routing-relevant: same revision
      assert.equal(a.instancesRevision(), rev);
      assert.equal(a.instanceChangesSince("svc", cursor).full, false);
      b.insertInstance(rec("y", { launchedAt: 6 }));
      b.updateInstance("x", { routing: "active" });
      assert.notEqual(a.instancesRevision(), rev);
      assert.equal(a.instanceChangesSince("svc", cursor).full, true);
      assert.deepEqual(a.liveInstances("svc").map((i) => [i.id, i.routing]), [["x", "active"], ["y", "none"]]);
      assert.equal(a.liveInstance("svc", "y")?.id, "y");
      b.updateRollout(b.createRollout({ service: "svc", kind: "deploy", strategy: "rolling", target: "r1", state: "running", startedAt: 1, fast: false, promoteRequested: false }).id, { paused: true });
      assert.equal(a.activeRollout("svc")?.paused, true);
    }));
    it("live instances come back in launch order, ties in insertion order", () => withState((open) => {
      const db = open();
      for (const [id, at] of [["c", 2], ["a", 1], ["b", 2], ["d", 1]] as const) db.insertInstance(rec(id, { launchedAt: at }));
      db.insertInstance(rec("gone", { state: "terminated", launchedAt: 0 }));
      assert.deepEqual(db.liveInstances("svc").map((i) => i.id), ["a", "d", "c", "b"]);
      const other = open(); // a full read from the database orders them the same way
      assert.deepEqual(other.liveInstances("svc").map((i) => i.id), ["a", "d", "c", "b"]);
    }));
  });

  describe(`${backend.name}: records`, () => {
    it("a release recorded without maxQuarantined reads back with the default", () => withState((open) => {
      const db = open();
      const { maxQuarantined: _, ...strategy } = releaseSpec().strategy;
      const r = db.createRelease({ service: "svc", ref: "a:1", version: "1", digest: "d", configHash: "c", env: {}, spec: { ...releaseSpec(), strategy } as never, strategy: "rolling", status: "live", createdAt: 0 });
      assert.equal(db.getRelease(r.id)!.spec.strategy.maxQuarantined, 1);
    }));
    // (Release ids are "r<seq>" and unique across services: two services' releases cannot share one state yet.)
    it("releases: a sequence, epoch-ms times, patches, newest first", () => withState((open) => {
      const db = open();
      const r1 = db.createRelease(release());
      const r2 = db.createRelease(release({ version: "2", status: "pending", previous: r1.id }));
      assert.deepEqual([r1.seq, r2.seq], [1, 2]);
      db.updateRelease(r2.id, { status: "live", liveAt: 1_796_000_000_123 });
      const back = db.getRelease(r2.id)!;
      assert.equal(back.liveAt, 1_796_000_000_123);
      assert.equal(typeof back.createdAt, "number");
      assert.deepEqual(back.env, { A: "1" });
      assert.equal(back.previous, "r1");
      assert.equal(back.reason, undefined);
      assert.deepEqual(db.listReleases("svc").map((r) => r.id), ["r2", "r1"]);
      assert.equal(db.getRelease("r9"), undefined);
    }));
    it("rollouts: ids from the database, booleans, progress, the running one", () => withState((open) => {
      const db = open();
      const base = { service: "svc", kind: "deploy" as const, strategy: "canary" as const, target: "r1", state: "running" as const, startedAt: 1_796_000_000_000, fast: true, promoteRequested: false };
      const a = db.createRollout(base);
      db.updateRollout(a.id, { state: "done", finishedAt: 1_796_000_000_500 });
      const b = db.createRollout({ ...base, target: "r2" });
      assert.ok(b.id > a.id);
      db.updateRollout(b.id, { promoteRequested: true, progress: { step: 2 } });
      const active = db.activeRollout("svc")!;
      assert.equal(active.id, b.id);
      assert.equal(active.fast, true);
      assert.equal(active.promoteRequested, true);
      assert.equal(active.paused, false);
      assert.deepEqual(active.progress, { step: 2 });
      assert.equal(db.getRollout(a.id)!.finishedAt, 1_796_000_000_500);
      assert.deepEqual(db.listRollouts("svc", 1).map((r) => r.id), [b.id]);
    }));
    it("events: ids in order, after a cursor, bounded", () => withState((open) => {
      const db = open();
      const e1 = db.addEvent({ at: 1_796_000_000_000, level: "info", service: "svc", message: "one" });
      const e2 = db.addEvent({ at: 2, level: "warn", service: "svc", instance: "i1", rollout: 3, message: "two ? 'quoted'" });
      db.addEvent({ at: 3, level: "error", service: "other", message: "elsewhere" });
      assert.ok(e2.id > e1.id);
      assert.deepEqual(db.events("svc").map((e) => e.message), ["one", "two ? 'quoted'"]);
      assert.deepEqual(db.events("svc", e1.id), [{ id: e2.id, at: 2, level: "warn", service: "svc", release: undefined, instance: "i1", rollout: 3, message: "two ? 'quoted'" }]);
      assert.equal(db.events("svc", 0, 1).length, 1);
    }));
    it("service facts are typed and scoped: two services do not see each other's; undefined removes one", () => withState((open) => {
      const db = open();
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
    }));
    it("services and leases list what state knows", () => withState((open) => {
      const db = open();
      db.createRelease(release({ service: "b" }));
      db.insertInstance(rec("i", { service: "c" }));
      db.acquireLease("a", "1@h", 10, 5);
      assert.deepEqual(db.services(), ["a", "b", "c"]);
      assert.deepEqual(db.leases(), [{ service: "a", owner: "1@h", until: 15 }]);
    }));
  });

  describe(`${backend.name}: fleet-wide writes`, () => {
    it("insertInstances, updateInstances and addEvents write every row (chunked statements) and keep the cache and feed in step", () => withState((open) => {
      const db = open();
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
    }));
    it("updateInstancesEach writes each instance its own values (chunked UPDATE … FROM VALUES), mixed field sets too, and keeps the cache and feed in step", () => withState((open) => {
      const db = open();
      // 64 rows per statement: counts around and across the chunk size.
      for (const n of [1, 2, 3, 63, 64, 65, 130]) {
        const svc = `e${n}`;
        const ids = Array.from({ length: n }, (_, k) => `${svc}-${k}`);
        db.insertInstances(ids.map((id) => rec(id, { service: svc })));
        db.liveInstances(svc);
        const feed = db.instanceChangesSince(svc, undefined).cursor;
        // Every fifth launch failed (other fields); the rest run, each at its own address and pid
        // (the last one without a pid, as a provider that keeps none reports it).
        const failed = (k: number) => k % 5 === 4;
        db.updateInstancesEach(ids.map((id, k) => ({
          id,
          patch: failed(k)
            ? { state: "terminated" as const, terminatedAt: 1_796_000_000_000 + k, reason: `launch failed: ${k}` }
            : { state: "running" as const, address: `127.0.0.1:${20000 + k}`, pid: k === n - 1 ? undefined : 4_000_000 + k, launchedAt: 1_796_000_000_000 },
        })));
        const expectRow = (k: number) => failed(k)
          ? { id: ids[k], state: "terminated", address: null, pid: null, launched_at: 1, terminated_at: 1_796_000_000_000 + k, reason: `launch failed: ${k}` }
          : { id: ids[k], state: "running", address: `127.0.0.1:${20000 + k}`, pid: k === n - 1 ? null : 4_000_000 + k, launched_at: 1_796_000_000_000, terminated_at: null, reason: null };
        const rows = (db.db.prepare("SELECT id, state, address, pid, launched_at, terminated_at, reason FROM instances WHERE service = ? ORDER BY id").all(svc) as Record<string, unknown>[])
          .map((r) => ({ ...r, pid: r.pid === null ? null : Number(r.pid), launched_at: Number(r.launched_at), terminated_at: r.terminated_at === null ? null : Number(r.terminated_at) }));
        assert.deepEqual(rows, ids.map((_, k) => expectRow(k)).sort((a, b) => String(a.id).localeCompare(String(b.id))));
        // the cache agrees with the table
        const live = db.liveInstances(svc);
        assert.deepEqual(live.map((i) => i.id).sort(), ids.filter((_, k) => !failed(k)).sort());
        for (const i of live) {
          const k = Number(i.id.slice(svc.length + 1));
          assert.equal(i.address, `127.0.0.1:${20000 + k}`);
          assert.equal(i.pid, k === n - 1 ? undefined : 4_000_000 + k);
          assert.equal(i.state, "running");
        }
        const changed = db.instanceChangesSince(svc, feed);
        assert.equal(changed.full, false);
        assert.deepEqual([...new Set(changed.ids)].sort(), [...ids].sort());
      }
    }));
    it("a write to a service no one has read from this connection makes the next read of its feed full", () => withState((open) => {
      const db = open();
      db.insertInstance(rec("a"));
      const cursor = db.instanceChangesSince("svc", undefined).cursor;
      db.updateInstance("a", { routing: "active" });
      assert.equal(db.instanceChangesSince("svc", cursor).full, true);
    }));
    it("live instances keep launch order, ties in insertion order, when inserted together", () => withState((open) => {
      const db = open();
      db.insertInstances([rec("c", { launchedAt: 2 }), rec("a", { launchedAt: 1 }), rec("b", { launchedAt: 2 })]);
      db.insertInstance(rec("d", { launchedAt: 1 }));
      assert.deepEqual(db.liveInstances("svc").map((i) => i.id), ["a", "d", "c", "b"]);
    }));
  });

  describe(`${backend.name}: lease`, () => {
    it("one holder at a time; it renews; it runs out; a dead holder can be taken from; release", () => withState((open) => {
      const a = open();
      const b = open(); // another controller's connection
      assert.deepEqual(a.acquireLease("svc", "A", 1000, 5000), { ok: true });
      assert.deepEqual(b.acquireLease("svc", "B", 2000, 5000), { ok: false, holder: "A", until: 6000 });
      assert.deepEqual(a.acquireLease("svc", "A", 3000, 5000), { ok: true });
      assert.deepEqual(b.acquireLease("svc", "B", 7999, 5000), { ok: false, holder: "A", until: 8000 });
      assert.deepEqual(b.acquireLease("svc", "B", 8000, 5000), { ok: true });
      assert.deepEqual(a.acquireLease("svc", "A", 8001, 5000), { ok: false, holder: "B", until: 13000 });
      assert.deepEqual(a.acquireLease("svc", "A", 8002, 5000, "B"), { ok: true });
      b.releaseLease("svc", "B"); // not the holder: nothing happens
      assert.equal(a.lease("svc")?.owner, "A");
      a.releaseLease("svc", "A");
      assert.equal(b.lease("svc"), undefined);
    }));
  });

  describe(`${backend.name}: migrations`, () => {
    it("a new state runs every migration once; opening it again runs none", () => withState((open) => {
      const db = open();
      assert.deepEqual(db.schemaVersion(), { version: MIGRATIONS.length, latest: MIGRATIONS.length });
      db.setFact("svc", "instances", 7);
      const again = open();
      assert.equal(again.getFact("svc", "instances"), 7);
      assert.deepEqual(again.integrityCheck(), ["ok"]);
    }));
    it("5 (the unread step journal goes) from schema 4 with rows: everything else reads back", () => withState((open, location) => {
      const raw = openStateDriver(location);
      raw.transaction(() => {
        for (const m of MIGRATIONS.slice(0, 4)) raw.exec(m);
        raw.setSchemaVersion(4);
      })();
      const { maxQuarantined: _, ...oldStrategy } = releaseSpec().strategy;
      raw.prepare("INSERT INTO releases (id, seq, service, ref, version, digest, config_hash, env, spec, strategy, status, created_at) VALUES ('r1', 1, 'svc', 'a:1', '1', 'sha256:a', 'c', '{}', ?, 'rolling', 'live', 10)")
        .run(JSON.stringify({ ...releaseSpec(), strategy: oldStrategy }));
      raw.prepare("INSERT INTO instances (id, service, release, digest, address, state, routing, launched_at, healthy_since) VALUES ('i1', 'svc', 'r1', 'sha256:a', '127.0.0.1:1', 'running', 'active', 11, 12)").run();
      raw.prepare("INSERT INTO rollouts (service, kind, strategy, target, state, started_at, progress) VALUES ('svc', 'deploy', 'rolling', 'r1', 'running', 10, '{\"quarantined\":1}')").run();
      raw.prepare("INSERT INTO steps (rollout, service, kind, payload, status, at) VALUES (1, 'svc', 'launch', '{}', 'intent', 10)").run();
      raw.prepare("INSERT INTO events (at, level, service, message) VALUES (10, 'info', 'svc', 'deploying')").run();
      raw.prepare("INSERT INTO meta (key, value) VALUES ('live', 'r1'), ('instances', '3'), ('lease:svc', ?)").run(JSON.stringify({ owner: "1@h", until: 99 }));
      raw.close();

      const db = open();
      assert.deepEqual(db.schemaVersion(), { version: MIGRATIONS.length, latest: MIGRATIONS.length });
      assert.throws(() => db.db.prepare("SELECT COUNT(*) AS n FROM steps").get(), "the steps table is gone");
      assert.equal(db.getRelease("r1")!.spec.strategy.maxQuarantined, 1);
      assert.deepEqual(db.liveInstances("svc").map((i) => [i.id, i.routing, i.healthySince]), [["i1", "active", 12]]);
      assert.deepEqual(db.activeRollout("svc")?.progress, { quarantined: 1 });
      assert.deepEqual(db.events("svc").map((e) => e.message), ["deploying"]);
      assert.equal(db.getFact("svc", "live"), "r1");
      assert.equal(db.getFact("svc", "instances"), 3);
      assert.deepEqual(db.lease("svc"), { owner: "1@h", until: 99 });
      assert.deepEqual(db.integrityCheck(), ["ok"]);
    }));

    /** A state at schema `version` (the migrations before it), filled through the raw driver. */
    const atSchema = (location: string, version: number, fill: (raw: ReturnType<typeof openStateDriver>) => void) => {
      const raw = openStateDriver(location);
      raw.transaction(() => {
        for (const m of MIGRATIONS.slice(0, version)) raw.exec(m);
        raw.setSchemaVersion(version);
      })();
      fill(raw);
      raw.close();
    };
    const oldRelease = (raw: ReturnType<typeof openStateDriver>, id: string, service: string) =>
      raw.prepare("INSERT INTO releases (id, seq, service, ref, version, digest, config_hash, env, spec, strategy, status, created_at) VALUES (?, 1, ?, 'a:1', '1', 'sha256:a', 'c', '{}', ?, 'rolling', 'live', 10)")
        .run(id, service, JSON.stringify(releaseSpec()));
    const oldMeta = (raw: ReturnType<typeof openStateDriver>, rows: Record<string, string>) => {
      for (const [k, v] of Object.entries(rows)) raw.prepare("INSERT INTO meta (key, value) VALUES (?, ?)").run(k, v);
    };
    it("6 (service-scoped facts) from schema 5 with rows: the unscoped facts go to the live release's service, maintenance keeps its own, the lease stays", () => withState((open, location) => {
      atSchema(location, 5, (raw) => {
        oldRelease(raw, "r1", "web");
        oldRelease(raw, "x1", "api");
        oldMeta(raw, { live: "r1", instances: "4", standbyUntil: "600000", tableVersion: "17", "maintenance:api": JSON.stringify({ message: "back soon" }), "lease:web": JSON.stringify({ owner: "1@h", until: 99 }) });
      });
      const db = open();
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
      assert.deepEqual(db.integrityCheck(), ["ok"]);
    }));
    it("6 from schema 5: without a live release the facts go to the only service state knows of", () => withState((open, location) => {
      atSchema(location, 5, (raw) => {
        raw.prepare("INSERT INTO instances (id, service, release, digest, state, routing, launched_at) VALUES ('i1', 'solo', 'r9', 'sha256:a', 'running', 'active', 1)").run();
        oldMeta(raw, { instances: "2", tableVersion: "3" });
      });
      const db = open();
      assert.equal(db.getFact("solo", "instances"), 2);
      assert.equal(db.getFact("solo", "tableVersion"), 3);
      assert.equal(db.getFact("solo", "live"), undefined);
    }));
    it("6 from schema 5: facts that name no service (several services, none live) are dropped, not given to one at random", () => withState((open, location) => {
      atSchema(location, 5, (raw) => {
        oldRelease(raw, "r1", "web");
        oldRelease(raw, "x1", "api");
        raw.prepare("UPDATE releases SET status = 'superseded'").run();
        oldMeta(raw, { instances: "5" });
      });
      const db = open();
      assert.equal(db.getFact("web", "instances"), undefined);
      assert.equal(db.getFact("api", "instances"), undefined);
      assert.equal(Number((db.db.prepare("SELECT COUNT(*) AS n FROM service_facts").get() as { n: number }).n), 0);
      assert.equal(Number((db.db.prepare("SELECT COUNT(*) AS n FROM meta").get() as { n: number }).n), 0);
    }));
    it("7-8 from schema 5: an old release reads back without promotedFrom; new ones keep it; drills are found by release", () => withState((open, location) => {
      atSchema(location, 5, (raw) => oldRelease(raw, "r1", "svc"));
      const db = open();
      assert.equal(db.getRelease("r1")!.promotedFrom, undefined);
      const from = { environment: "staging", service: "svc-staging", release: "r4", digest: "sha256:a", configHash: "c" };
      const r2 = db.createRelease({ service: "svc", ref: "a:1", version: "1", digest: "sha256:a", configHash: "c", env: {}, spec: releaseSpec(), strategy: "rolling", status: "deploying", createdAt: 20, promotedFrom: from });
      assert.deepEqual(db.getRelease(r2.id)!.promotedFrom, from);
      db.addDrill({ id: "d1", service: "svc", environment: "staging", digest: "sha256:a", configHash: "c", passed: false, startedAt: 1, finishedAt: 2, report: { steps: [] } });
      db.addDrill({ id: "d2", service: "svc", digest: "sha256:a", configHash: "c", passed: true, startedAt: 3, finishedAt: 4, report: { steps: [{ name: "x" }] } });
      db.addDrill({ id: "d3", service: "svc", digest: "sha256:b", configHash: "c", passed: true, startedAt: 5, finishedAt: 6, report: {} });
      assert.deepEqual(db.drills("svc", { digest: "sha256:a", configHash: "c" }).map((d) => [d.id, d.passed, d.environment]), [["d2", true, undefined], ["d1", false, "staging"]]);
      assert.deepEqual(db.drills("svc").map((d) => d.id), ["d3", "d2", "d1"]);
      assert.deepEqual(db.drills("svc", { digest: "sha256:a", configHash: "c" })[0]!.report, { steps: [{ name: "x" }] });
      assert.deepEqual(db.drills("other"), []);
    }));
    it("9 (changes) from schema 5 with rows: the table is added, older rows untouched", () => withState((open, location) => {
      atSchema(location, 5, (raw) => raw.prepare("INSERT INTO events (at, level, service, message) VALUES (10, 'info', 'svc', 'deploying')").run());
      const db = open();
      assert.equal(db.schemaVersion().version, MIGRATIONS.length);
      assert.deepEqual(db.changes("svc"), []);
      assert.equal(db.events("svc").length, 1);
    }));
  });

  describe(`${backend.name}: the audit trail and recent events`, () => {
    it("numbers changes per service, newest first, and keeps every field (epoch ms beyond 32 bits too)", () => withState((open) => {
      const db = open();
      const at = Date.UTC(2026, 11, 2, 23, 0, 0);
      db.addChange({ at, service: "svc", actor: "dev@laptop", action: "deploy", command: "kiln deploy", result: "accepted", release: "r1", digest: "sha256:b" });
      db.addChange({ at: at + 1, service: "other", actor: "ci", action: "scale", command: "kiln scale 2", result: "accepted" });
      db.addChange({ at: at + 2, service: "svc", env: "staging", actor: "github:octocat (run 9)", action: "rollback", command: "kiln rollback", reason: "no reason given", result: "accepted", previousDigest: "sha256:b", digest: "sha256:a", detail: "back to hello:1" });
      const svc = db.changes("svc");
      assert.deepEqual(svc.map((c) => [c.seq, c.action]), [[2, "rollback"], [1, "deploy"]]);
      assert.deepEqual(svc[0], { seq: 2, at: at + 2, service: "svc", env: "staging", actor: "github:octocat (run 9)", action: "rollback", command: "kiln rollback", reason: "no reason given", release: undefined, digest: "sha256:a", previousDigest: "sha256:b", result: "accepted", detail: "back to hello:1" });
      assert.deepEqual(db.changes("other").map((c) => c.seq), [1]);
      assert.equal(db.changes("svc", 1).length, 1);
    }));
    it("recentEvents: the newest n of one service, oldest first, whatever other services wrote in between", () => withState((open) => {
      const db = open();
      for (let i = 1; i <= 6; i++) {
        db.addEvent({ at: i, level: "info", service: "svc", message: `svc ${i}` });
        db.addEvent({ at: i, level: "info", service: "other", message: `other ${i}` });
      }
      assert.deepEqual(db.recentEvents("svc", 3).map((e) => e.message), ["svc 4", "svc 5", "svc 6"]);
      assert.deepEqual(db.recentEvents("svc", 10).map((e) => e.message), ["svc 1", "svc 2", "svc 3", "svc 4", "svc 5", "svc 6"]);
      assert.deepEqual(db.recentEvents("none", 3), []);
    }));
  });
}

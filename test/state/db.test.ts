// The state database's own behaviour on SQLite (the shared suite in state-suite.ts; the same
// suite runs on PostgreSQL in integration/pg-state.test.ts), and the controller's due queue.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { DueQueue } from "../../src/controller/due-queue.js";
import { StateDb } from "../../src/state/db.js";
import { stateSuite } from "./state-suite.js";

stateSuite({
  name: "SQLite",
  async fresh() {
    const dir = mkdtempSync(join(tmpdir(), "kiln-state-"));
    return { location: join(dir, "state.db"), drop: async () => rmSync(dir, { recursive: true, force: true }) };
  },
});

describe("SQLite only", () => {
  it("the migrated schema has no step journal table", () => {
    const db = new StateDb(":memory:");
    assert.equal(db.db.prepare("SELECT name FROM sqlite_master WHERE name = 'steps'").get(), undefined);
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

describe("DueQueue entries", () => {
  it("a cancelled or rescheduled id's old slot is skipped, and ids taken off the queue come back when scheduled again", () => {
    const q = new DueQueue();
    q.schedule("a", 10);
    q.cancel("a"); // its slot at 10 is stale
    q.schedule("a", 20);
    q.schedule("b", 10);
    q.schedule("b", 20); // stale at 10; at 20 twice would be a duplicate
    q.schedule("b", 20);
    assert.deepEqual(q.popDue(10), []);
    assert.equal(q.size, 2);
    assert.deepEqual(q.popDue(20), ["a", "b"]);
    q.schedule("a", 30);
    assert.equal(q.has("a"), true);
    assert.equal(q.has("b"), false);
    assert.deepEqual(q.popDue(30), ["a"]);
  });

  it("many ids taken and put back (a fleet's probes) stay exact across the sweeps of spent entries", () => {
    const q = new DueQueue();
    const due = new Map<string, number>();
    const ids = Array.from({ length: 6000 }, (_, k) => `i${k}`);
    ids.forEach((id, k) => {
      q.schedule(id, (k % 5) * 100);
      due.set(id, (k % 5) * 100);
    });
    for (let t = 0; t <= 3000; t += 100) {
      const want = [...due].filter(([, at]) => at <= t).map(([id]) => id).sort();
      const got = q.popDue(t);
      assert.deepEqual([...got].sort(), want);
      for (const id of got) due.delete(id);
      // from 1 s on, every fifth id leaves (as a stopped instance); the rest are probed again 500 ms later
      for (const id of got) {
        if (t >= 1000 && Number(id.slice(1)) % 5 === 0) continue;
        q.schedule(id, t + 500);
        due.set(id, t + 500);
      }
      assert.equal(q.size, due.size);
    }
    assert.equal(q.size, 4800);
  });
});

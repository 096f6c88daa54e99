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

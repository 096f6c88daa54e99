// lease.ts: a controller holds its lease every tick, but writes it only once half of it has run;
// another controller still cannot take it before it runs out.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Lease } from "../../src/controller/lease.js";
import { StateDb } from "../../src/state/db.js";

test("holding renews the lease only once half of it has run; a rival takes it only when it runs out", () => {
  const db = new StateDb(":memory:");
  let now = 10_000;
  const lost: string[] = [];
  const lease = (owner: string) => new Lease({ db, service: "svc", owner, ttlMs: 5000, now: () => now, onLost: (h) => lost.push(`${owner} lost to ${h}`) });
  const a = lease("a@host");
  const b = lease("b@host");

  assert.equal(a.hold(), true);
  assert.deepEqual(db.lease("svc"), { owner: "a@host", until: 15_000 });
  now = 12_400; // 2.6 s left: more than half
  assert.equal(a.hold(), true);
  assert.deepEqual(db.lease("svc"), { owner: "a@host", until: 15_000 }, "not written again");
  now = 12_600; // 2.4 s left: renewed
  assert.equal(a.hold(), true);
  assert.deepEqual(db.lease("svc"), { owner: "a@host", until: 17_600 });

  now = 17_599;
  assert.equal(b.hold(), false, "a's lease has not run out");
  assert.deepEqual(lost, ["b@host lost to a@host"]);
  now = 17_600;
  assert.equal(b.hold(), true, "run out: b takes it");
  assert.equal(a.hold(), false, "a reads that b holds it and does not act");
  assert.deepEqual(lost, ["b@host lost to a@host", "a@host lost to b@host"]);
  db.close();
});

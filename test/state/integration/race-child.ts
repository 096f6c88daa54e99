// A fixture process for pg-state.test.ts: one of several connections racing on one state.
// argv: URL OWNER INCREMENTS ROUNDS. Prints one JSON line: the lease rounds it won.

import { StateDb } from "../../../src/state/db.js";

const [url, owner, increments, rounds] = process.argv.slice(2) as [string, string, string, string];
const db = new StateDb(url);
const won: number[] = [];
for (let i = 0; i < Math.max(Number(increments), Number(rounds)); i++) {
  if (i < Number(increments)) {
    // read-then-write in one transaction: a lost update would show in the final count
    db.tx(() => db.setFact("race", "instances", (db.getFact("race", "instances") ?? 0) + 1));
  }
  if (i < Number(rounds) && db.acquireLease(`race-${i}`, owner, 1000, 5000).ok) won.push(i);
}
db.close();
process.stdout.write(`${JSON.stringify({ owner, won })}\n`);

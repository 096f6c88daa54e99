import assert from "node:assert/strict";
import { test } from "node:test";
import { DEFAULT_RESTART, failedStartsAfter, planRestart, type Exit, type RestartDecision } from "../../src/ops/supervisor.js";

test("planRestart: the doc comment's worked examples", () => {
  const kill: Exit = { code: null, signal: "SIGKILL" };
  const rows: Array<[what: string, exit: Exit, ranMs: number, crashes: number, failedStarts: number, want: RestartDecision["action"], delay?: number, nextCrashes?: number]> = [
    ["exit 0", { code: 0, signal: null }, 5000, 0, 0, "stop"],
    ["SIGKILL after 2 s, crashes 0", kill, 2000, 0, 0, "restart", 200, 1],
    ["SIGKILL after 2 s, crashes 3", kill, 2000, 3, 0, "restart", 1600, 4],
    ["exit 1 after 60 s, crashes 5", { code: 1, signal: null }, 60_000, 5, 0, "restart", 200, 1],
    ["exit 1 never answered, 3 in a row", { code: 1, signal: null }, 300, 2, 3, "give-up"],
    ["SIGKILL after 1 s, crashes 9", kill, 1000, 9, 0, "restart", 2000, 10],
  ];
  for (const [what, exit, ranMs, crashes, failed, want, delay, next] of rows) {
    const d = planRestart(DEFAULT_RESTART, exit, ranMs, crashes, failed);
    assert.equal(d.action, want, what);
    if (d.action === "restart") assert.deepEqual([d.delayMs, d.crashes], [delay, next], what);
  }
});

test("failedStartsAfter: the doc comment's worked examples (a kill from outside is not a failed start)", () => {
  assert.equal(failedStartsAfter(2, true, { code: 1, signal: null }), 0);
  assert.equal(failedStartsAfter(2, false, { code: 1, signal: null }), 3);
  assert.equal(failedStartsAfter(2, false, { code: null, signal: "SIGKILL" }), 2);
  // five SIGKILLs in a row, each before the supervisor's poll saw an answer: never a give-up
  let n = 0;
  for (let i = 0; i < 5; i++) n = failedStartsAfter(n, false, { code: null, signal: "SIGKILL" });
  assert.equal(planRestart(DEFAULT_RESTART, { code: null, signal: "SIGKILL" }, 900, 5, n).action, "restart");
});

import assert from "node:assert/strict";
import { test } from "node:test";
import { KilnError } from "../../src/errors.js";
import { computeBackoff, DEFAULT_RECONNECT, reconnecting } from "../../src/ops/reconnect.js";
import { isUnreachable } from "../../src/server/client.js";

test("computeBackoff: the doc comment's worked examples", () => {
  const rows: Array<[attempt: number, elapsed: number, want: number | undefined]> = [
    [0, 0, 100],
    [3, 700, 800],
    [6, 6300, 2000],
    [9, 89_000, 1000],
    [9, 90_000, undefined],
  ];
  for (const [attempt, elapsed, want] of rows) assert.equal(computeBackoff(DEFAULT_RECONNECT, attempt, elapsed), want, `attempt ${attempt}, elapsed ${elapsed}`);
});

const down = (code: string) => new KilnError("KILN_E_CONTROLLER", "controller unreachable at /x", { cause: Object.assign(new Error(code), { code }) });

test("isUnreachable: no answer is unreachable; an answer with an error is not", () => {
  for (const code of ["ENOENT", "ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT"]) assert.ok(isUnreachable(down(code)), code);
  assert.ok(!isUnreachable(new KilnError("KILN_E_CONTROLLER", "controller answered 500")));
  assert.ok(!isUnreachable(new KilnError("KILN_E_NOT_FOUND", "no rollout 9", { cause: Object.assign(new Error(), { code: "ENOENT" }) })));
  assert.ok(!isUnreachable(new Error("x")));
});

/** A manual clock the fake sleep advances: no real waiting. */
function clock() {
  let t = 0;
  const waits: number[] = [];
  return { now: () => t, sleep: async (ms: number) => { waits.push(ms); t += ms; }, waits };
}

test("reconnecting: waits out an outage, then reads on; says lost once and back once", async () => {
  const c = clock();
  const said: string[] = [];
  const read = reconnecting(DEFAULT_RECONNECT, { ...c, onLost: () => said.push("lost"), onBack: (ms) => said.push(`back ${ms}`) });
  let calls = 0;
  const v = await read(async () => {
    if (++calls <= 4) throw down("ECONNREFUSED");
    return "rollout r7";
  });
  assert.equal(v, "rollout r7");
  assert.deepEqual(c.waits, [100, 200, 400, 800]);
  assert.deepEqual(said, ["lost", "back 1500"]);
});

test("reconnecting: gives up with the unreachable error once the budget is spent", async () => {
  const c = clock();
  const read = reconnecting({ initialMs: 100, maxMs: 1000, budgetMs: 5000 }, c);
  let calls = 0;
  await assert.rejects(read(async () => { calls++; throw down("ENOENT"); }), (e: unknown) => isUnreachable(e));
  assert.equal(c.waits.reduce((a, b) => a + b, 0), 5000);
  assert.equal(calls, c.waits.length + 1);
});

test("reconnecting: an error the controller answered with is thrown at once", async () => {
  const c = clock();
  const read = reconnecting(DEFAULT_RECONNECT, c);
  await assert.rejects(read(async () => { throw new KilnError("KILN_E_NOT_FOUND", "no rollout 9"); }), /no rollout 9/);
  assert.deepEqual(c.waits, []);
});

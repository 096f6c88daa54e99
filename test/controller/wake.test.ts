// Table tests for when the reconcile loop wakes (controller/wake.ts); each row is a worked
// example from the function's doc comment. No real time: Wakeup is checked by its signals only.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Step } from "../../src/rollout/types.js";
import {
  hasAnswered, isSwitchConfirmed, isWakeAfter, nextWarmupEnd, planLaunchConcurrency, planLaunchCount, planLoopTurn, planNextPass, planProbeDelay, planReadBackDelay, READ_BACK_RETRIES, Wakeup,
} from "../../src/controller/wake.js";

describe("planLoopTurn", () => {
  const base = { now: 1000, tickMs: 100, woken: false, lastPassAt: 970 };
  const rows: [string, Partial<typeof base> & { passDueAt?: number }, "pass" | "probes"][] = [
    ["woken", { woken: true }, "pass"],
    ["last pass 100 ms ago, tick 100: the fallback interval", { lastPassAt: 900 }, "pass"],
    ["last pass 30 ms ago, a warmup ended", { passDueAt: 1000 }, "pass"],
    ["last pass 30 ms ago, a warmup ends later", { passDueAt: 1200 }, "probes"],
    ["last pass 30 ms ago, nothing else due", {}, "probes"],
  ];
  for (const [name, patch, want] of rows) it(name, () => assert.equal(planLoopTurn({ ...base, ...patch }), want));
});

describe("planNextPass", () => {
  const base = { now: 1000, tickMs: 100, woken: false, recentPasses: 1, maxPassesPerTick: 20 };
  const rows: [string, Partial<typeof base> & { dueAt?: number }, number][] = [
    ["woken, 1 recent pass of 20 allowed", { woken: true }, 0],
    ["woken, budget spent: the timer", { woken: true, recentPasses: 20 }, 100],
    ["a probe due in 30 ms", { dueAt: 1030 }, 30],
    ["due 5 ms ago (late)", { dueAt: 995 }, 0],
    ["due in 400 ms: the timer comes first", { dueAt: 1400 }, 100],
    ["nothing due", {}, 100],
    ["due in 30 ms, budget spent", { dueAt: 1030, recentPasses: 20 }, 100],
  ];
  for (const [name, patch, want] of rows) it(name, () => assert.equal(planNextPass({ ...base, ...patch }), want));
});

describe("isWakeAfter", () => {
  const wait: Step = { kind: "wait", reason: "x" };
  const rows: [string, Step[], boolean][] = [
    ["[wait]", [wait], false],
    ["[]", [], false],
    ["[register, wait]", [{ kind: "register", ids: ["a"], reason: "x" }, wait], true],
    ["[launch]", [{ kind: "launch", release: "r", count: 1, reason: "x" }], true],
    ["[mark-switched]", [{ kind: "mark-switched", reason: "x" }], true],
  ];
  for (const [name, steps, want] of rows) it(name, () => assert.equal(isWakeAfter(steps), want));
});

describe("nextWarmupEnd", () => {
  const rows: [string, (number | undefined)[], number, number, number | undefined][] = [
    ["healthy since 1000, warmup 1000, now 1500", [1000], 1000, 1500, 2000],
    ["two: since 1000 and 1200", [1200, 1000], 1000, 1500, 2000],
    ["already warm", [1000], 1000, 2000, undefined],
    ["warmup 0", [1000], 0, 500, undefined],
    ["none healthy", [undefined, undefined], 1000, 500, undefined],
  ];
  for (const [name, since, warmup, now, want] of rows) it(name, () => assert.equal(nextWarmupEnd(since.map((healthySince) => ({ healthySince })), warmup, now), want));
});

describe("planProbeDelay", () => {
  const rows: [string, Parameters<typeof planProbeDelay>[0], number][] = [
    ["never answered, 0 refused", { answered: false, refused: 0, interval: 500 }, 5],
    ["never answered, 1 refused", { answered: false, refused: 1, interval: 500 }, 10],
    ["never answered, 3 refused", { answered: false, refused: 3, interval: 500 }, 40],
    ["never answered, 7 refused: capped at the interval", { answered: false, refused: 7, interval: 500 }, 500],
    ["answered", { answered: true, refused: 0, interval: 500 }, 500],
    ["never answered, 7 refused, max 25: capped at the max", { answered: false, refused: 7, interval: 500, max: 25 }, 25],
    ["never answered, 1 refused, max 25: still doubling", { answered: false, refused: 1, interval: 500, max: 25 }, 10],
    ["answered, max 25: the interval", { answered: true, refused: 0, interval: 500, max: 25 }, 500],
    ["never answered, interval 2", { answered: false, refused: 0, interval: 2 }, 2],
    ["a huge refused count stays finite", { answered: false, refused: 10_000, interval: 500 }, 500],
  ];
  for (const [name, input, want] of rows) it(name, () => assert.equal(planProbeDelay(input), want));
});

describe("planReadBackDelay", () => {
  const rows: [number, number | undefined][] = [[0, 0], [1, 5], [3, 20], [6, 160], [7, undefined]];
  for (const [attempt, want] of rows) it(`attempt ${attempt} → ${want}`, () => assert.equal(planReadBackDelay(attempt), want));
  it("the retries are bounded and add up to well under a second", () => {
    let total = 0;
    for (let a = 0; planReadBackDelay(a) !== undefined; a++) total += planReadBackDelay(a)!;
    assert.equal(planReadBackDelay(READ_BACK_RETRIES + 1), undefined);
    assert.ok(total < 1000, `total ${total}`);
  });
});

describe("planLaunchConcurrency", () => {
  const rows: [number, number][] = [[1, 2], [2, 3], [8, 9], [64, 16], [15, 16], [0, 1], [Number.NaN, 1]];
  for (const [cpus, want] of rows) it(`${cpus} CPUs → ${want}`, () => assert.equal(planLaunchConcurrency(cpus), want));
});

describe("planLaunchCount", () => {
  const rows: [string, Parameters<typeof planLaunchCount>[0], number][] = [
    ["want 3, 0 starting, bound 2", { want: 3, starting: 0, bound: 2 }, 2],
    ["want 3, 2 starting, bound 2", { want: 3, starting: 2, bound: 2 }, 0],
    ["want 1, 1 starting, bound 2", { want: 1, starting: 1, bound: 2 }, 1],
    ["no bound", { want: 5, starting: 9 }, 5],
    ["more starting than the bound", { want: 3, starting: 5, bound: 2 }, 0],
  ];
  for (const [name, input, want] of rows) it(name, () => assert.equal(planLaunchCount(input), want));
});

describe("Wakeup", () => {
  it("signals coalesce into one pending wake-up, taken once", () => {
    const w = new Wakeup();
    assert.equal(w.take(), false);
    w.signal();
    w.signal();
    assert.equal(w.take(), true);
    assert.equal(w.take(), false);
  });
  it("a signal ends an interruptible sleep (the timer is an hour: only the signal can end it)", { timeout: 10_000 }, async () => {
    const w = new Wakeup();
    const slept = w.sleep(3_600_000, true);
    w.signal();
    await slept;
    assert.equal(w.take(), true);
  });
  it("a pending signal makes an interruptible sleep return at once; a zero sleep returns at once", { timeout: 10_000 }, async () => {
    const w = new Wakeup();
    w.signal();
    await w.sleep(3_600_000, true);
    await new Wakeup().sleep(0, false);
  });
  it("a loop of zero sleeps still lets timers and I/O run between its turns", { timeout: 10_000 }, async () => {
    // The controller's loop when something is always due: before, sleep(0) resolved as a
    // microtask, so a timer (a probe's answer, `kiln down`'s request) never ran again.
    const w = new Wakeup();
    let fired = false;
    setTimeout(() => (fired = true), 1);
    const end = Date.now() + 2000;
    let turns = 0;
    while (!fired && Date.now() < end) {
      await w.sleep(0, true);
      turns++;
    }
    assert.ok(fired, `a 1 ms timer never ran over ${turns} turns`);
    // the same with a signal pending (an interruptible sleep that returns at once)
    let again = false;
    setTimeout(() => (again = true), 1);
    const end2 = Date.now() + 2000;
    while (!again && Date.now() < end2) {
      w.signal();
      await w.sleep(3_600_000, true);
      w.take();
    }
    assert.ok(again, "a 1 ms timer never ran while signals kept the sleeps short");
  });
});

describe("hasAnswered", () => {
  const h = (over: Partial<Parameters<typeof hasAnswered>[0]>) => ({ everHealthy: false, consecutiveOk: 0, lastFailAnswered: false, ...over });
  const rows: [string, Parameters<typeof hasAnswered>[0], boolean][] = [
    ["fresh", h({}), false],
    ["3 refused connections", h({}), false],
    ["1 passing probe, not yet healthy", h({ consecutiveOk: 1 }), true],
    ["answered 500", h({ lastFailAnswered: true }), true],
    ["was healthy, now refusing", h({ everHealthy: true }), true],
  ];
  for (const [name, input, want] of rows) it(name, () => assert.equal(hasAnswered(input), want));
});

describe("isSwitchConfirmed", () => {
  const inRotation = (ids: string[]) => (id: string) => ids.includes(id);
  it("[a, b], both in rotation", () => assert.equal(isSwitchConfirmed(["a", "b"], inRotation(["a", "b"])), true));
  it("[a, b], b not yet", () => assert.equal(isSwitchConfirmed(["a", "b"], inRotation(["a"])), false));
  it("[]: nothing to confirm", () => assert.equal(isSwitchConfirmed([], inRotation(["a"])), false));
});

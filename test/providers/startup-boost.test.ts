import assert from "node:assert/strict";
import { test } from "node:test";
import { KilnError } from "../../src/errors.js";
import { readStat } from "../../src/providers/local/procfs.js";
import { DEFAULT_STARTUP_BOOST, parseAutogroupNice, parseStartupBoost, StartupBoost } from "../../src/providers/local/startup-boost.js";

test("parseStartupBoost: the doc comment's rows", () => {
  assert.equal(parseStartupBoost(undefined), DEFAULT_STARTUP_BOOST);
  assert.equal(parseStartupBoost(""), DEFAULT_STARTUP_BOOST);
  assert.equal(parseStartupBoost("off"), 0);
  assert.equal(parseStartupBoost("0"), 0);
  assert.ok(Object.is(parseStartupBoost("-0"), 0));
  assert.equal(parseStartupBoost("-10"), -10);
  for (const bad of ["5", "-21", "x", "-3.5"]) assert.throws(() => parseStartupBoost(bad), (e: unknown) => e instanceof KilnError && e.code === "KILN_E_USAGE" && /-20 to 0/.test(e.message), bad);
});

test("parseAutogroupNice: /proc/PID/autogroup text", () => {
  assert.equal(parseAutogroupNice("/autogroup-1234 nice -5\n"), -5);
  assert.equal(parseAutogroupNice("/autogroup-1 nice 0"), 0);
  assert.equal(parseAutogroupNice(""), undefined);
});

/** A StartupBoost over a fake /proc/PID/autogroup (this process stands for a live pid). */
function fake(level: number, fail?: string) {
  const writes: [number, number][] = [];
  const nice = new Map<number, number>();
  const logs: string[] = [];
  const b = new StartupBoost({
    level,
    log: (l) => logs.push(l),
    capMs: 30,
    autogroupsEnabled: () => true,
    readAutogroup: (pid) => `/autogroup-9 nice ${nice.get(pid) ?? 0}`,
    writeAutogroup: (pid, n) => {
      if (fail) throw Object.assign(new Error(fail), { code: fail });
      writes.push([pid, n]);
      nice.set(pid, n);
    },
  });
  return { b, writes, nice, logs };
}

test("StartupBoost: raised on add, normal again on end, once; at the cap at the latest", async () => {
  const me = process.pid;
  const f = fake(-5);
  f.b.add("i1", me);
  assert.deepEqual(f.writes, [[me, -5]]);
  assert.ok(f.b.has("i1"));
  f.b.end("i1");
  f.b.end("i1");
  assert.deepEqual(f.writes, [[me, -5], [me, 0]]);
  f.b.add("i2", me);
  await new Promise((r) => setTimeout(r, 80));
  assert.ok(!f.b.has("i2"), "the cap ended it");
  assert.deepEqual(f.writes.at(-1), [me, 0]);
  // a pid that is gone (or reused: another start time) is not written back
  f.b.add("i3", 2 ** 22 + 17);
  assert.equal(f.writes.length, 4, "a pid with no /proc entry is not boosted");
});

test("StartupBoost: off writes nothing; a refused write turns it off with one line", () => {
  const off = fake(0);
  off.b.add("i", process.pid);
  assert.deepEqual(off.writes, []);
  const denied = fake(-5, "EPERM");
  denied.b.add("i", process.pid);
  denied.b.add("j", process.pid);
  assert.equal(denied.logs.length, 1);
  assert.match(denied.logs[0]!, /EPERM/);
  assert.ok(!denied.b.has("i"));
  const noGroups = new StartupBoost({ level: -5, log: (l) => denied.logs.push(l), autogroupsEnabled: () => false, writeAutogroup: () => assert.fail("written") });
  noGroups.add("i", process.pid);
  noGroups.add("j", process.pid);
  assert.equal(denied.logs.length, 2);
  assert.match(denied.logs[1]!, /sched_autogroup_enabled/);
});

test("StartupBoost.normalize: a raised session an earlier controller left goes back to 0; a normal one is not written", () => {
  const me = process.pid;
  const start = readStat(me)!.startTime;
  const f = fake(-5);
  f.nice.set(me, -5);
  f.b.normalize(me, start);
  assert.deepEqual(f.writes, [[me, 0]]);
  f.b.normalize(me, start);
  assert.equal(f.writes.length, 1, "already normal");
  f.nice.set(me, -5);
  f.b.normalize(me, start + 1); // another process with this pid
  assert.equal(f.writes.length, 1);
});

import assert from "node:assert/strict";
import { test } from "node:test";
import { badChoice, mark, strategyName, styleFor, table } from "../../src/cli/output.js";
import type { KilnError } from "../../src/errors.js";

test("styleFor: the doc comment's worked examples", () => {
  const tty = { isTTY: true };
  const pipe = { isTTY: false };
  const rows: Array<[string, { isTTY?: boolean }, NodeJS.ProcessEnv, boolean]> = [
    ["terminal", tty, {}, true],
    ["NO_COLOR=1", tty, { NO_COLOR: "1" }, false],
    ["NO_COLOR empty", tty, { NO_COLOR: "" }, true],
    ["TERM=dumb", tty, { TERM: "dumb" }, false],
    ["pipe", pipe, {}, false],
    ["pipe, FORCE_COLOR=1", pipe, { FORCE_COLOR: "1" }, true],
  ];
  for (const [what, stream, env, on] of rows) assert.deepEqual(styleFor(stream, env), { colour: on, fancy: on }, what);
});

test("mark and table: plain text, no escape or box character, when the style is off", () => {
  const plain = { colour: false, fancy: false };
  assert.equal(mark(true, plain), "ok");
  assert.equal(mark(false, plain), "FAIL");
  assert.equal(mark(true, { colour: true, fancy: true }), "\x1b[32m✔\x1b[0m");
  const t = table(["instance", "pid"], plain);
  t.push(["hello-r1-a", 12]);
  assert.equal(t.toString(), "instance    pid\nhello-r1-a  12");
  const f = table(["a"], { colour: false, fancy: true });
  f.push(["1"]);
  assert.match(f.toString(), /┌/);
});

test("badChoice / strategyName: the doc comment's worked examples", () => {
  const e = badChoice("strategy", "blue-grene", ["rolling", "blue-green", "canary"]);
  assert.deepEqual([e.code, e.message, e.hint], ["KILN_E_USAGE", 'unknown strategy "blue-grene"', 'did you mean "blue-green"? (rolling, blue-green or canary)']);
  assert.equal(badChoice("strategy", "fast", ["rolling", "blue-green", "canary"]).hint, "use rolling, blue-green or canary");
  assert.throws(() => strategyName("canery"), (x: KilnError) => x.exitCode === 2 && x.hint === 'did you mean "canary"? (rolling, blue-green or canary)');
  assert.equal(strategyName("canary"), "canary");
});

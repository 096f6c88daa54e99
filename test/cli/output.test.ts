import assert from "node:assert/strict";
import { test } from "node:test";
import { mark, styleFor, table } from "../../src/cli/output.js";

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

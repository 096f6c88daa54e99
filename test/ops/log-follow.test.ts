import assert from "node:assert/strict";
import { test } from "node:test";
import { LogFollower } from "../../src/ops/log-follow.js";

test("LogFollower: the doc comment's worked examples, pass after pass", () => {
  const f = new LogFollower();
  const lines = (logs: Record<string, string>, tail?: number) => f.next(Object.entries(logs).map(([id, text]) => ({ id, text })), tail).map((l) => `${l.id}:${l.line}`);
  assert.deepEqual(lines({ a: "1\n2\n3\n" }, 2), ["a:2", "a:3"]);
  assert.deepEqual(lines({ a: "1\n2\n3\n4\n" }), ["a:4"]);
  assert.deepEqual(lines({ a: "1\n2\n3\n4\n5", b: "x\n" }), ["b:x"]);
  assert.deepEqual(lines({ a: "1\n2\n3\n4\n5\n", b: "x\n" }), ["a:5"]);
  assert.deepEqual(lines({ a: "new\n", b: "x\n" }), ["a:new"]);
  assert.deepEqual(lines({ a: "new\n", b: "x\n" }), []);
});

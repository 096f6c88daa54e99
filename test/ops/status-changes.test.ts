import assert from "node:assert/strict";
import { test } from "node:test";
import { statusChanges, type StatusDigest } from "../../src/ops/status-changes.js";

const d = (o: Partial<StatusDigest>): StatusDigest => ({ instances: {}, inRotation: 0, desired: 1, ...o });

test("statusChanges: the doc comment's worked examples", () => {
  const s1 = d({ release: "r1 hello:1.0.0", instances: { a: "r1 healthy in rotation" }, inRotation: 1 });
  const s2 = d({ release: "r1 hello:1.0.0", rollout: "rollout to r2 (rolling) progressing", instances: { a: "r1 healthy in rotation", b: "r2 starting" }, inRotation: 1 });
  const s3 = d({ release: "r2 hello:2.0.0", instances: { b: "r2 healthy in rotation" }, inRotation: 1 });
  const rows: Array<[string, StatusDigest | undefined, StatusDigest, string[]]> = [
    ["first snapshot", undefined, s1, ["release r1 hello:1.0.0 live", "instance a: r1 healthy in rotation", "fleet 1/1 in rotation"]],
    ["no change", s1, s1, []],
    ["rollout starts", s1, s2, ["rollout rollout to r2 (rolling) progressing", "instance b: r2 starting"]],
    ["rollout ends", s2, s3, ["release r2 hello:2.0.0 live", "rollout ended", "instance a: gone", "instance b: r2 healthy in rotation"]],
    ["nothing deployed", undefined, d({}), ["release none deployed", "fleet 0/1 in rotation"]],
  ];
  for (const [what, prev, next, want] of rows) assert.deepEqual(statusChanges(prev, next), want, what);
});

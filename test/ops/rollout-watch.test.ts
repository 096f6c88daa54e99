import assert from "node:assert/strict";
import { test } from "node:test";
import type { RolloutView } from "../../src/controller/types.js";
import { chooseRollout } from "../../src/ops/rollout-watch.js";

const r = (id: number, kind: RolloutView["kind"], target: string, state: RolloutView["state"], previous?: string): RolloutView => ({ id, kind, target, state, previous, strategy: "rolling", startedAt: "2026-12-03T08:00:00Z" });

test("chooseRollout: the doc comment's worked examples", () => {
  const d1 = r(1, "deploy", "r1", "done");
  const rows: Array<[string, RolloutView[], RolloutView | undefined, number | undefined, number | undefined]> = [
    ["the running deploy", [d1, r(2, "deploy", "r2", "running")], r(2, "deploy", "r2", "running"), undefined, 2],
    ["an automatic rollback: the failed deploy", [d1, r(2, "deploy", "r2", "aborted", "r1"), r(3, "rollback", "r1", "running", "r2")], r(3, "rollback", "r1", "running", "r2"), undefined, 2],
    ["a manual rollback: itself", [d1, r(2, "deploy", "r2", "done", "r1"), r(3, "rollback", "r1", "done", "r2")], undefined, undefined, 3],
    ["nothing running: the newest", [d1, r(2, "deploy", "r2", "done")], undefined, undefined, 2],
    ["no rollout at all", [], undefined, undefined, undefined],
    ["asked for one", [d1, r(2, "deploy", "r2", "done")], undefined, 1, 1],
  ];
  for (const [what, rollouts, running, wanted, want] of rows) assert.equal(chooseRollout(rollouts, running, wanted)?.id, want, what);
});

// judgeRecovery: the rows are the worked examples of its doc comment.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { SwarmObservation, SwarmTaskView } from "../../src/providers/swarm/observe.js";
import { judgeRecovery, type SwarmIntent } from "../../src/ops/swarm/recovery.js";

const SINCE = 1_000_000;
const intent = (p: Partial<SwarmIntent> = {}): SwarmIntent => ({ phase: "applied", since: SINCE, created: false, method: "apply", deadlineMs: 60_000, autoRollback: true, ...p });
const task = (id: string, release: string, state = "running", desired = "running", slot = 1): SwarmTaskView => ({ id: id.padEnd(25, "0"), slot, release, state, desiredState: desired, at: SINCE + 1 });
const obs = (o: Partial<SwarmObservation>): { observation: SwarmObservation } => ({ observation: { replicas: 2, tasks: [], ...o } });

describe("judgeRecovery", () => {
  const rows: { name: string; intent: SwarmIntent; view: { observation: SwarmObservation } | undefined; want: ReturnType<typeof judgeRecovery> }[] = [
    {
      name: "intent recorded, Swarm never asked: still on r1, no update since → failed, nothing changed",
      intent: intent({ phase: "intent" }),
      view: obs({ specRelease: "r1", update: { state: "completed", startedAt: SINCE - 60_000 }, tasks: [task("a", "r1"), task("b", "r1", "running", "running", 2)] }),
      want: { kind: "settled", outcome: "failed", reason: "interrupted before Swarm was asked: the service is unchanged on r1" },
    },
    {
      name: "intent recorded for a first release, no service → failed, nothing changed",
      intent: intent({ phase: "intent", created: true }),
      view: undefined,
      want: { kind: "settled", outcome: "failed", reason: "interrupted before Swarm was asked to create the service: nothing changed" },
    },
    {
      name: "applied, UpdateStatus updating → running",
      intent: intent(),
      view: obs({ specRelease: "r2", update: { state: "updating", startedAt: SINCE + 10 }, tasks: [task("a", "r1"), task("b", "r2", "starting")] }),
      want: { kind: "running", state: "updating" },
    },
    {
      name: "intent only, but Swarm has the spec (kiln died right after asking) and completed → live",
      intent: intent({ phase: "intent" }),
      view: obs({ specRelease: "r2", update: { state: "completed", startedAt: SINCE + 10 }, tasks: [task("a", "r2"), task("b", "r2", "running", "running", 2)] }),
      want: { kind: "settled", outcome: "live" },
    },
    {
      name: "applied, rollback_completed → rolled-back with the engine's message",
      intent: intent(),
      view: obs({ specRelease: "r1", update: { state: "rollback_completed", message: "update rolled back due to failure", startedAt: SINCE + 10 }, tasks: [task("a", "r1"), task("b", "r1", "running", "running", 2)] }),
      want: { kind: "settled", outcome: "rolled-back", reason: "update rolled back due to failure" },
    },
    {
      name: "applied, paused → failed (Swarm waits for a person)",
      intent: intent({ autoRollback: false }),
      view: obs({ specRelease: "r2", update: { state: "paused", message: "update paused due to failure", startedAt: SINCE + 10 }, tasks: [task("a", "r1")] }),
      want: { kind: "settled", outcome: "failed", reason: "Swarm paused the update: update paused due to failure" },
    },
    {
      name: "a Swarm rollback to r1 that completed → live",
      intent: intent({ method: "swarm-rollback", autoRollback: false }),
      view: obs({ specRelease: "r1", update: { state: "rollback_completed", message: "rollback completed", startedAt: SINCE + 10 }, tasks: [task("a", "r1"), task("b", "r1", "running", "running", 2)] }),
      want: { kind: "settled", outcome: "live" },
    },
    {
      name: "the service is gone → failed",
      intent: intent(),
      view: undefined,
      want: { kind: "settled", outcome: "failed", reason: "the Swarm service is gone" },
    },
  ];
  for (const r of rows) {
    test(r.name, () => {
      const target = r.intent.method === "swarm-rollback" ? "r1" : "r2";
      assert.deepEqual(judgeRecovery(target, r.intent, r.view), r.want);
    });
  }
});

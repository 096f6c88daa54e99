// checkPromotion's worked examples (src/ops/promotion.ts doc comment) as rows.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkPromotion, type SourceFacts } from "../../src/ops/promotion.js";
import type { DrillRecord, Release, RolloutRecord } from "../../src/state/db.js";
import { releaseSpec } from "../controller/fake-world.js";

const MIN = 60_000;
const NOW = 100 * MIN;
const HASH = "sha256:" + "c".repeat(64);

const r4: Release = {
  id: "r4", seq: 4, service: "hello-staging", ref: "hello:4", version: "4", digest: "sha256:" + "d".repeat(64), configHash: HASH, env: {},
  spec: releaseSpec(), strategy: "rolling", status: "live", createdAt: NOW - 13 * MIN, liveAt: NOW - 12 * MIN,
};
const drill = (passed: boolean): DrillRecord => ({ id: passed ? "ok" : "bad", service: "hello-staging", environment: "staging", digest: r4.digest, configHash: HASH, passed, startedAt: NOW - 20 * MIN, finishedAt: NOW - 13 * MIN, report: {} });
const running: RolloutRecord = { id: 9, service: "hello-staging", kind: "deploy", strategy: "rolling", target: "r5", previous: "r4", state: "running", startedAt: NOW - MIN, fast: false, promoteRequested: false, paused: false, progress: {} };
const facts = (over: Partial<SourceFacts>): SourceFacts => ({ environment: "staging", service: "hello-staging", live: r4, drills: [drill(true)], ...over });

describe("checkPromotion (doc comment rows)", () => {
  const rows: Array<[string, SourceFacts, { requireDrill: boolean; soak?: number }, string, RegExp | "ok"]> = [
    ["nothing live in staging", facts({ live: undefined }), { requireDrill: false }, HASH, /nothing is live in staging/],
    ["staging's live r4 mid-rollout", facts({ active: running }), { requireDrill: false }, HASH, /a deploy is running in staging/],
    ["kiln.yaml's shared config edited since", facts({}), { requireDrill: false }, "sha256:" + "e".repeat(64), /shared configuration now hashes to/],
    ["requireDrill, the last drill of r4 failed", facts({ drills: [drill(false)] }), { requireDrill: true }, HASH, /requireDrill: the drill of r4 in staging did not pass/],
    ["requireDrill, no drill at all", facts({ drills: [] }), { requireDrill: true }, HASH, /requireDrill: r4 .* has no drill in staging/],
    ["r4 live 4 min, soak 10m", facts({ live: { ...r4, liveAt: NOW - 4 * MIN } }), { requireDrill: false, soak: 10 * MIN }, HASH, /live in staging for 4m, the soak is 10m: wait 6m/],
    ["a rollback to r4 2 min ago restarts the soak", facts({ liveSince: NOW - 2 * MIN }), { requireDrill: false, soak: 10 * MIN }, HASH, /for 2m/],
    ["r4 live 12 min, drill passed, hash equal", facts({}), { requireDrill: true, soak: 10 * MIN }, HASH, "ok"],
  ];
  for (const [name, src, policy, hash, want] of rows) {
    it(name, () => {
      const r = checkPromotion(src, policy, hash, NOW);
      if (want === "ok") {
        assert.ok(r.ok, JSON.stringify(r));
        assert.equal(r.release.id, "r4");
      } else {
        assert.ok(!r.ok, "expected a refusal");
        assert.ok(r.reasons.some((x) => want.test(x)), r.reasons.join("\n"));
      }
    });
  }
  it("lists every gate that fails, not just the first", () => {
    const r = checkPromotion(facts({ drills: [], live: { ...r4, liveAt: NOW - MIN } }), { requireDrill: true, soak: 10 * MIN }, HASH, NOW);
    assert.ok(!r.ok);
    assert.equal(r.reasons.length, 2);
  });
});

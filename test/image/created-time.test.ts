// The created-time choice (pickCreatedEpoch): its doc comment's worked examples as a table.

import assert from "node:assert/strict";
import { test } from "node:test";
import { KilnError } from "../../src/errors.js";
import { pickCreatedEpoch, type CreatedFacts } from "../../src/image/index.js";

const rows: { facts: CreatedFacts; want: { epoch: number; source: string } | "KILN_E_IMAGE" }[] = [
  { facts: { explicit: 5, sourceDateEpoch: "7", gitCommitTime: 9 }, want: { epoch: 5, source: "option" } },
  { facts: { sourceDateEpoch: "7", gitCommitTime: 9, newestInputMtime: 11 }, want: { epoch: 7, source: "SOURCE_DATE_EPOCH" } },
  { facts: { sourceDateEpoch: "", gitCommitTime: 9, newestInputMtime: 11 }, want: { epoch: 9, source: "git" } },
  { facts: { newestInputMtime: 1_764_000_000 }, want: { epoch: 1_764_000_000, source: "mtime" } },
  { facts: { newestInputMtime: 0 }, want: { epoch: 0, source: "default" } },
  { facts: {}, want: { epoch: 0, source: "default" } },
  { facts: { sourceDateEpoch: "yesterday", newestInputMtime: 11 }, want: "KILN_E_IMAGE" },
  { facts: { explicit: -1 }, want: "KILN_E_IMAGE" },
];

for (const { facts, want } of rows) {
  test(`created time from ${JSON.stringify(facts)} → ${JSON.stringify(want)}`, () => {
    if (want === "KILN_E_IMAGE") {
      assert.throws(() => pickCreatedEpoch(facts), (e) => e instanceof KilnError && e.code === "KILN_E_IMAGE");
    } else {
      assert.deepEqual(pickCreatedEpoch(facts), want);
    }
  });
}

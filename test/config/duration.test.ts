import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatDuration, parseDuration } from "../../src/config/index.js";

describe("parseDuration / formatDuration", () => {
  const table: [input: string | number, ms: number][] = [
    ["0s", 0],
    ["250ms", 250],
    ["1s", 1000],
    ["1.5s", 1500],
    ["30s", 30_000],
    ["5m", 300_000],
    ["2h", 7_200_000],
    ["0.5h", 1_800_000],
    [0, 0],
    [2, 2000],
    [0.25, 250],
  ];
  for (const [input, ms] of table) {
    it(`${JSON.stringify(input)} → ${ms}ms`, () => assert.equal(parseDuration(input), ms));
  }

  it("refuses what kiln.yaml refuses", () => {
    for (const bad of ["", "5", "5 min", "-1s", "1d", "1.s", "s"]) {
      assert.throws(() => parseDuration(bad), /invalid duration/, bad);
    }
    assert.throws(() => parseDuration(-1), /invalid duration/);
    assert.throws(() => parseDuration(Number.NaN), /invalid duration/);
  });

  it("formats to the shortest string that parses back", () => {
    const table: [ms: number, text: string][] = [
      [0, "0s"],
      [250, "250ms"],
      [1000, "1s"],
      [1250, "1250ms"],
      [1500, "1.5s"],
      [30_000, "30s"],
      [61_000, "61s"],
      [90_000, "1.5m"],
      [600_000, "10m"],
      [3_600_000, "1h"],
    ];
    for (const [ms, text] of table) {
      assert.equal(formatDuration(ms), text);
      assert.equal(parseDuration(formatDuration(ms)), ms);
    }
  });
});

// The proxy bench's --trace-gc-nvp reader (pure): the rows are parseGcTrace's worked examples.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseGcTrace } from "../../bench/proxy.js";

const scavenge = (allocated: number, promoted: number) =>
  `[1:0x1]   118 ms: pause=1.6 mutator=93.5 gc=s reduce_memory=0 scavenge=1.45 total_size_before=4074344 allocated=${allocated} promoted=${promoted} new_space_survived=636880 promotion_rate=0.0%`;
const markCompact = `[1:0x1]  2118 ms: pause=9.0 mutator=200.1 gc=mc reduce_memory=0 mark=5.1 allocated=500 promoted=0 total_size_after=1`;

describe("parseGcTrace", () => {
  const rows: Array<[string, string, ReturnType<typeof parseGcTrace>]> = [
    ["two scavenges", `${scavenge(4000, 100)}\n${scavenge(4000, 100)}\n`, { allocated: 8000, promoted: 200, scavenges: 2, markCompacts: 0 }],
    ["a mark-compact", `${markCompact}\n`, { allocated: 500, promoted: 0, scavenges: 0, markCompacts: 1 }],
    ["the proxy's ready line is not a GC", '{"ready":true,"pid":1,"listen":"127.0.0.1:1"}\n', { allocated: 0, promoted: 0, scavenges: 0, markCompacts: 0 }],
  ];
  for (const [name, text, want] of rows) it(name, () => assert.deepEqual(parseGcTrace(text), want));
});

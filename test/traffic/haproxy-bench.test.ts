// The bench's wrk parser (pure): req/s, p99 in ms whatever wrk's unit, errors.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseWrk } from "../../bench/haproxy-router.js";

const sample = (p99: string, extra = "") => `Running 8s test @ http://127.0.0.1:1/version
  1 threads and 32 connections
  Latency Distribution
     50%    1.10ms
     75%    1.50ms
     90%    2.00ms
     99%    ${p99}
  145000 requests in 8.00s, 20.00MB read
${extra}Requests/sec:  18119.42
Transfer/sec:      2.50MB
`;

describe("parseWrk", () => {
  const rows: Array<[string, string, { reqPerSec: number; p99Ms: number; errors: number }]> = [
    ["p99 in ms", sample("4.21ms"), { reqPerSec: 18119, p99Ms: 4.21, errors: 0 }],
    ["p99 in us", sample("850.00us"), { reqPerSec: 18119, p99Ms: 0.85, errors: 0 }],
    ["p99 in s", sample("1.20s"), { reqPerSec: 18119, p99Ms: 1200, errors: 0 }],
    [
      "errors: non-2xx plus socket errors",
      sample("4.21ms", "  Socket errors: connect 1, read 2, write 0, timeout 3\n  Non-2xx or 3xx responses: 4\n"),
      { reqPerSec: 18119, p99Ms: 4.21, errors: 10 },
    ],
  ];
  for (const [name, text, want] of rows) it(name, () => assert.deepEqual(parseWrk(text), want));
});

// unreachableLoopbackRefs: the doc comment's rows, and what `kiln validate` does with them.

import assert from "node:assert/strict";
import { test } from "node:test";
import { isolationOf, unreachableLoopbackRefs, unreachableLoopbackWarnings } from "../../src/config/network-allow.js";

test("unreachableLoopbackRefs: the doc comment's rows", () => {
  const local = (env: Record<string, string>, allow: string[] = [], mode: "private" | "host" = "private", provider = "local") => unreachableLoopbackRefs({ provider, env, network: { mode, allow } });
  assert.deepEqual(local({ DATABASE_URL: "postgres://u@127.0.0.1:5432/db" }), [{ env: "DATABASE_URL", port: 5432 }]);
  assert.deepEqual(local({ DATABASE_URL: "postgres://u@127.0.0.1:5432/db" }, ["127.0.0.1:5432"]), []);
  assert.deepEqual(local({ REDIS: "redis://localhost:6379" }, [], "private", "docker"), []);
  assert.deepEqual(local({ NOTE: "see 127.0.0.1" }), []);
  // more rows: host mode, localhost, two ports in one value, a longer address that only ends alike
  assert.deepEqual(local({ REDIS: "redis://localhost:6379" }, [], "host"), []);
  assert.deepEqual(local({ REDIS: "redis://localhost:6379" }), [{ env: "REDIS", port: 6379 }]);
  assert.deepEqual(local({ PEERS: "127.0.0.1:7001,127.0.0.1:7002" }, ["127.0.0.1:7002"]), [{ env: "PEERS", port: 7001 }]);
  assert.deepEqual(local({ UPSTREAM: "http://10.127.0.0.1:80/" }), []);
});

test("unreachableLoopbackWarnings: one line per unreachable reference, saying what to add", () => {
  assert.deepEqual(unreachableLoopbackWarnings({ provider: "local", env: { DATABASE_URL: "postgres://u@127.0.0.1:5432/db" }, network: { mode: "private", allow: [] } }), [
    'env DATABASE_URL names 127.0.0.1:5432, which a local instance (own network namespace) cannot dial: add "127.0.0.1:5432" to network.allow, or set network.mode: host',
  ]);
});

test("isolationOf: the doc comment's rows", () => {
  assert.equal(isolationOf({ mode: "private", allow: [] }), undefined);
  assert.deepEqual(isolationOf({ mode: "private", allow: ["127.0.0.1:5432"] }), { mode: "private", allow: ["127.0.0.1:5432"] });
  assert.deepEqual(isolationOf({ mode: "host", allow: [] }), { mode: "host", allow: [] });
});

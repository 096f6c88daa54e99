// Where the state lives (the worked examples of resolveStateLocation), and what a user sees
// when the PostgreSQL state cannot be reached (no password in any message).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isKilnError } from "../../src/errors.js";
import { freeLoopbackPort } from "../../src/net.js";
import { StateDb } from "../../src/state/db.js";
import { resolveStateLocation } from "../../src/state/state-location.js";

describe("resolveStateLocation", () => {
  const stateDb = "/home/u/app/.kiln/state.db";
  it("nothing set: the SQLite file in the home", () => {
    assert.deepEqual(resolveStateLocation({ stateDb, env: {} }), { backend: "sqlite", location: stateDb, shown: stateDb, from: "default" });
  });
  it("kiln.yaml state: a PostgreSQL URL", () => {
    assert.deepEqual(resolveStateLocation({ stateDb, specState: "postgres://db/kiln", env: {} }), { backend: "postgres", location: "postgres://db/kiln", shown: "postgres://db/kiln", from: "kiln.yaml" });
  });
  it("KILN_STATE wins, and its password is never shown", () => {
    const r = resolveStateLocation({ stateDb, specState: "postgres://db/kiln", env: { KILN_STATE: "postgres://u:pw@db/kiln?schema=web" } });
    assert.deepEqual(r, { backend: "postgres", location: "postgres://u:pw@db/kiln?schema=web", shown: "postgres://u:***@db/kiln?schema=web", from: "KILN_STATE" });
  });
  it("KILN_STATE=sqlite forces the file back", () => {
    assert.deepEqual(resolveStateLocation({ stateDb, specState: "postgres://db/kiln", env: { KILN_STATE: "sqlite" } }), { backend: "sqlite", location: stateDb, shown: stateDb, from: "KILN_STATE" });
  });
  it("KILN_STATE=/tmp/x.db is a usage error", () => {
    assert.throws(() => resolveStateLocation({ stateDb, env: { KILN_STATE: "/tmp/x.db" } }), (e: unknown) => isKilnError(e) && e.code === "KILN_E_USAGE" && /postgres:\/\/ URL or "sqlite"/.test(e.message));
  });
  it("an environment gets its own schema on PostgreSQL (base schema, default kiln, + _ + its name), its own file on SQLite", () => {
    const staging = "/home/u/app/.kiln/env/staging/state.db";
    assert.equal(resolveStateLocation({ stateDb: staging, environment: "staging", env: {} }).location, staging);
    assert.equal(resolveStateLocation({ stateDb: staging, specState: "postgres://db/kiln", environment: "staging", env: {} }).location, "postgres://db/kiln?schema=kiln_staging");
    const r = resolveStateLocation({ stateDb: staging, environment: "eu-prod", env: { KILN_STATE: "postgres://u:pw@db/kiln?schema=web" } });
    assert.deepEqual(r, { backend: "postgres", location: "postgres://u:pw@db/kiln?schema=web_eu_prod", shown: "postgres://u:***@db/kiln?schema=web_eu_prod", from: "KILN_STATE" });
  });
});

describe("an unreachable PostgreSQL state", () => {
  it("is KILN_E_STATE with a hint, the URL shown without its password", async () => {
    const port = await freeLoopbackPort(); // nothing listens there
    const url = `postgres://kiln:s3cret-pw@127.0.0.1:${port}/kiln`;
    let err: unknown;
    try {
      new StateDb(url).close();
    } catch (e) {
      err = e;
    }
    assert.ok(isKilnError(err), `expected a KilnError, got ${String(err)}`);
    assert.equal(err.code, "KILN_E_STATE");
    assert.match(err.message, new RegExp(`cannot reach the PostgreSQL state at postgres://kiln:\\*\\*\\*@127\\.0\\.0\\.1:${port}/kiln`));
    assert.match(err.hint ?? "", /PGPASSWORD/);
    assert.doesNotMatch(JSON.stringify(err.toJSON()) + err.message + (err.hint ?? ""), /s3cret-pw/);
  });
  it("a schema that is not a plain identifier is refused before connecting", () => {
    assert.throws(() => new StateDb("postgres://db/kiln?schema=a;drop"), (e: unknown) => isKilnError(e) && e.code === "KILN_E_STATE" && /not a plain identifier/.test(e.message));
  });
});

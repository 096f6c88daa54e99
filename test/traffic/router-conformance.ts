// One suite every Router runs (STYLE habit 5): the in-memory FakeRouter in
// milliseconds, the real proxy through its admin socket. Traffic-dependent
// behaviour (counters, health, draining of real requests) is in proxy.test.ts.

import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import { isKilnError } from "../../src/errors.js";
import type { Router } from "../../src/traffic/router.js";
import { table, target } from "./helpers.js";

export interface RouterUnderTest {
  router: Router;
  teardown(): Promise<void>;
}

export function routerConformance(name: string, setup: () => Promise<RouterUnderTest>): void {
  describe(`Router conformance: ${name}`, () => {
    let sut: RouterUnderTest;
    beforeEach(async () => {
      sut = await setup();
    });
    afterEach(async () => {
      await sut.teardown();
    });

    it("starts with table version 0 and no targets", async () => {
      const s = await sut.router.stats();
      assert.equal(s.tableVersion, 0);
      assert.deepEqual(s.targets, []);
      assert.equal(typeof s.pid, "number");
      assert.match(s.listen, /^127\.0\.0\.1:\d+$/);
    });

    it("reports the table it was given, with rotation derived from state, weight and health", async () => {
      await sut.router.setTable(
        table(4, [
          target("a", "127.0.0.1:9001", { release: "r1", weight: 3 }),
          target("b", "127.0.0.1:9002", { release: "r1", weight: 0 }),
          target("c", "127.0.0.1:9003", { release: "r2", state: "draining" }),
        ]),
      );
      const s = await sut.router.stats();
      assert.equal(s.tableVersion, 4);
      const byId = Object.fromEntries(s.targets.map((t) => [t.id, t]));
      assert.deepEqual(Object.keys(byId).sort(), ["a", "b", "c"]);
      assert.deepEqual(
        { ...byId.a, drainingSince: undefined },
        {
          id: "a", release: "r1", address: "127.0.0.1:9001", state: "active", weight: 3, healthy: true,
          inRotation: true, inflight: 0, requests: 0, errors5xx: 0, connectFailures: 0, drainingSince: undefined,
        },
      );
      assert.equal(byId.a!.drainingSince, undefined);
      assert.equal(byId.b!.inRotation, false);
      assert.equal(byId.c!.inRotation, false);
      assert.equal(byId.c!.state, "draining");
      assert.equal(typeof byId.c!.drainingSince, "number");
      assert.deepEqual(Object.keys(s.releases).sort(), ["r1", "r2"]);
    });

    it("keeps drainingSince across tables and clears it on reactivation", async () => {
      await sut.router.setTable(table(1, [target("a", "127.0.0.1:9001", { state: "draining" })]));
      const first = (await sut.router.stats()).targets[0]!.drainingSince;
      await sut.router.setTable(table(2, [target("a", "127.0.0.1:9001", { state: "draining" })]));
      assert.equal((await sut.router.stats()).targets[0]!.drainingSince, first);
      await sut.router.setTable(table(3, [target("a", "127.0.0.1:9001")]));
      const s = await sut.router.stats();
      assert.equal(s.targets[0]!.drainingSince, undefined);
      assert.equal(s.targets[0]!.inRotation, true);
    });

    it("refuses an older table with KILN_E_CONTROLLER and accepts the same version again", async () => {
      await sut.router.setTable(table(5, [target("a", "127.0.0.1:9001")]));
      await assert.rejects(sut.router.setTable(table(4, [])), (e: unknown) => {
        assert.ok(isKilnError(e));
        assert.equal(e.code, "KILN_E_CONTROLLER");
        assert.match(e.message, /older than the current version 5/);
        return true;
      });
      assert.equal((await sut.router.stats()).targets.length, 1);
      await sut.router.setTable(table(5, [target("b", "127.0.0.1:9002")]));
      const s = await sut.router.stats();
      assert.deepEqual(s.targets.map((t) => t.id), ["b"]);
    });

    it("forgets removed targets but keeps their release", async () => {
      await sut.router.setTable(table(1, [target("a", "127.0.0.1:9001", { release: "old" })]));
      await sut.router.setTable(table(2, [target("b", "127.0.0.1:9002", { release: "new" })]));
      const s = await sut.router.stats();
      assert.deepEqual(s.targets.map((t) => t.id), ["b"]);
      assert.deepEqual(Object.keys(s.releases).sort(), ["new", "old"]);
    });
  });
}

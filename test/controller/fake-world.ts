// A fake world for controller tests: in-memory provider and router, manual clock, SQLite in memory.

import type { SecretKeeper } from "../../src/secrets/keeper.js";
import { Controller, type ControllerDeps } from "../../src/controller/controller.js";
import type { ReleaseSettings } from "../../src/controller/types.js";
import { FakeProvider, manualClock } from "../../src/providers/fake/index.js";
import { StateDb } from "../../src/state/db.js";
import { FakeRouter } from "../../src/traffic/fake.js";
import type { NotifyEvent } from "../../src/notify/event.js";

export function releaseSpec(over: Partial<ReleaseSettings> = {}, strategy: Partial<ReleaseSettings["strategy"]> = {}): ReleaseSettings {
  return {
    instances: 3,
    health: { path: "/healthz", interval: 100, timeout: 100, healthyThreshold: 2, unhealthyThreshold: 2, grace: 0 },
    drainTimeout: 1000,
    strategy: {
      type: "rolling",
      rolling: { minHealthyPercent: 100, maxHealthyPercent: 150, instanceWarmup: 300, deadline: 60_000, autoRollback: true },
      blueGreen: { keepPreviousFor: 60_000, promotion: "auto", deadline: 60_000, autoRollback: true },
      maxQuarantined: 1,
      ...strategy,
    },
    volumes: [],
    env: {},
    ...over,
  };
}

/**
 * The state a world starts on: SQLite in memory, or, when KILN_TEST_WORLD_PG names a PostgreSQL
 * URL (test/state/integration/pg-controller.test.ts sets it), a fresh schema there named
 * KILN_TEST_WORLD_SCHEMA + a random suffix — the same controller tests, on the other backend.
 */
function worldState(): string {
  const url = process.env.KILN_TEST_WORLD_PG;
  if (!url) return ":memory:";
  const u = new URL(url);
  u.searchParams.set("schema", `${process.env.KILN_TEST_WORLD_SCHEMA ?? "kiln_world"}_${Math.random().toString(36).slice(2, 10)}`);
  return u.toString();
}

/** `secrets`: a fresh keeper per controller (a restart loses what the last one held), as a real controller process. */
export function world(dbFile = worldState(), extra: { notify?: (e: NotifyEvent) => void; secrets?: () => SecretKeeper; loop?: Pick<ControllerDeps, "wake" | "startPollMs" | "launchConcurrency" | "log"> } = {}) {
  const clock = manualClock();
  const provider = new FakeProvider(clock);
  const router = new FakeRouter({ now: clock.now, pid: 1, listen: "127.0.0.1:0" });
  const db = new StateDb(dbFile);
  let n = 0;
  const make = () =>
    new Controller({
      service: "svc",
      defaultSpec: releaseSpec(),
      listen: "127.0.0.1:0",
      db,
      provider,
      router,
      probe: (address) => provider.probe(address),
      clock,
      newId: (release) => `svc-${release}-${++n}`,
      instanceDeadline: 5000,
      notify: extra.notify,
      ...(extra.secrets ? { secrets: extra.secrets() } : {}),
      ...extra.loop,
    });
  const w = {
    clock, provider, router, db, controller: make(),
    /** a fresh controller on the same state, provider and router (a restart) */
    restart() {
      w.controller = make();
      return w.controller;
    },
    /** serving = healthy, active, in rotation per the router */
    serving(): { id: string; release: string }[] {
      return (router.table?.targets ?? []).filter((t) => t.state === "active" && t.weight > 0).map((t) => ({ id: t.id, release: t.release }));
    },
    /** tick until `done` is true or maxTicks pass; `each` sees the world after every tick */
    async run(done: () => boolean, opts: { maxTicks?: number; stepMs?: number; each?: () => void } = {}): Promise<number> {
      const max = opts.maxTicks ?? 2000;
      for (let i = 0; i < max; i++) {
        clock.advance(opts.stepMs ?? 50);
        await w.controller.tick();
        // let background probes and terminations settle
        for (let k = 0; k < 5; k++) await new Promise((r) => setImmediate(r));
        opts.each?.();
        if (done()) return i + 1;
      }
      throw new Error(`world did not converge in ${max} ticks: ${JSON.stringify(w.db.activeRollout("svc"))}`);
    },
  };
  return w;
}

export function deployReq(release: string, spec: ReleaseSettings, strategy?: "rolling" | "blue-green" | "canary") {
  return { ref: `svc:${release}`, version: release, digest: `sha256:${release.padEnd(64, "0")}`, configHash: "sha256:x", spec, strategy };
}

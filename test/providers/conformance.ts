// One suite, every backend: the behaviour the controller relies on from any Provider,
// written once and run against the fake (unit tier, in milliseconds) and each real backend
// (integration tier, with real processes and containers). A backend that lacks a
// capability (the fake serves no HTTP) has those cases skipped with its reason printed.
//
//   providerConformance("docker", makeWorld)
//
// makeWorld(t) returns a fresh world per case (its own service, so cases never see each
// other's instances) or undefined after skipping t (the backend is not available here).

import assert from "node:assert/strict";
import { request } from "node:http";
import { describe, test, type TestContext } from "node:test";
import type { LaunchRequest, ObservedInstance, Provider } from "../../src/providers/provider.js";
import { CRASH_EXIT_CODE, type FixtureName, type FixtureReport } from "./fixture-app.js";

export type Capability =
  /** the instance serves HTTP at its address: env, filesystem and user cases ask it what it sees */
  | "http"
  /** terminate signals a real process: SIGTERM, then SIGKILL after graceMs */
  | "signals"
  /** a new provider object sees the instances an earlier one launched */
  | "adopt"
  /** read-only root filesystem, writable /tmp */
  | "filesystem"
  /** declared volumes are writable and outlive instances */
  | "volumes"
  /** instances run as a non-root user */
  | "user";

export interface ConformanceWorld {
  provider: Provider;
  /** the service every request of this world launches into */
  service: string;
  /** a launch request for `fixture` with a new instance id and no volumes; `env` in `over` is merged */
  request(fixture: FixtureName, over?: Partial<LaunchRequest>): LaunchRequest;
  /** a new provider object over the same backend state, as a restarted controller would make */
  reopen?(): Provider;
  /** capabilities this backend does not have, each with the reason */
  lacks: Partial<Record<Capability, string>>;
  /** the uid the fixture image runs as */
  appUid: number;
  /** let time pass: real backends sleep, the fake advances its manual clock */
  pass(ms: number): Promise<void>;
  /** remove whatever the world made besides instances (volumes…) */
  cleanup?(): Promise<void>;
  /**
   * Where instances serve; default 127.0.0.1:PORT. A multi-machine backend (Swarm) serves at
   * its nodes' addresses, which the world names exactly (the rig's private bridge).
   */
  address?: RegExp;
}

const LOOPBACK_ADDRESS = /^127\.0\.0\.1:\d+$/;

export type MakeWorld = (t: TestContext) => Promise<ConformanceWorld | undefined>;

export function get(address: string, path = "/", timeoutMs = 3000): Promise<{ status: number; body: string }> {
  const i = address.lastIndexOf(":");
  return new Promise((resolve, reject) => {
    const r = request({ host: address.slice(0, i), port: Number(address.slice(i + 1)), path, agent: false, timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    r.on("timeout", () => r.destroy(new Error("timeout")));
    r.on("error", reject);
    r.end();
  });
}

/** Polls `fn` until it returns a value; bounded in tries and in real time. */
async function waitFor<T>(w: ConformanceWorld, what: string, fn: () => Promise<T | undefined>, stepMs = 50, maxTries = 400, maxRealMs = 30_000): Promise<T> {
  const deadline = Date.now() + maxRealMs;
  let last: unknown;
  for (let i = 0; i < maxTries && Date.now() < deadline; i++) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await w.pass(stepMs);
  }
  throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ""}`);
}

const report = (w: ConformanceWorld, inst: ObservedInstance) =>
  waitFor(w, `${inst.id} to serve HTTP`, async () => {
    const r = await get(inst.address);
    return r.status === 200 ? (JSON.parse(r.body) as FixtureReport) : undefined;
  });

/** Waits until the instance serves, when the backend serves HTTP at all (a process that has not started yet may miss a signal). */
async function ready(w: ConformanceWorld, inst: ObservedInstance): Promise<void> {
  if (w.lacks.http === undefined) await report(w, inst);
}

/** Resolves when nothing answers at the address any more (connection refused, reset or closed). */
async function refuses(address: string): Promise<boolean> {
  try {
    await get(address, "/", 1500);
    return false;
  } catch {
    return true;
  }
}

const find = async (p: Provider, service: string, id: string) => (await p.list(service)).find((i) => i.id === id);

export function providerConformance(name: string, makeWorld: MakeWorld): void {
  /** Runs one case in a fresh world, after checking its capabilities; stops what it launched. */
  const run =
    (needs: Capability[], body: (w: ConformanceWorld, launch: (req: LaunchRequest, p?: Provider) => Promise<ObservedInstance>, t: TestContext) => Promise<void>) =>
    async (t: TestContext) => {
      const w = await makeWorld(t);
      if (!w) return;
      const missing = needs.filter((c) => w.lacks[c] !== undefined);
      if (missing.length > 0) {
        const reason = `${name} lacks ${missing[0]}: ${w.lacks[missing[0]!]}`;
        t.diagnostic(`skipped: ${reason}`);
        t.skip(reason);
        await w.cleanup?.();
        return;
      }
      const launched = new Set<string>();
      const launch = (req: LaunchRequest, p: Provider = w.provider) => {
        launched.add(req.instanceId);
        return p.launch(req);
      };
      try {
        await body(w, launch, t);
      } finally {
        for (const id of launched) await w.provider.terminate(id, { graceMs: 0 }).catch(() => undefined);
        await w.cleanup?.();
      }
    };

  describe(`Provider conformance: ${name}`, () => {
    test(
      "launch: the instance is running, at a 127.0.0.1 address (or the world's node addresses), and listed with its release and digest under its service only",
      run([], async (w, launch) => {
        const req = w.request("serve");
        const inst = await launch(req);
        assert.equal(inst.id, req.instanceId);
        assert.equal(inst.state, "running");
        assert.match(inst.address, w.address ?? LOOPBACK_ADDRESS);
        const listed = (await w.provider.list(w.service)).filter((i) => i.id === req.instanceId);
        assert.equal(listed.length, 1);
        assert.deepEqual(
          { service: listed[0]!.service, release: listed[0]!.release, digest: listed[0]!.digest, state: listed[0]!.state, address: listed[0]!.address },
          { service: w.service, release: req.release, digest: req.digest, state: "running", address: inst.address },
        );
        assert.equal((await w.provider.list(`${w.service}-other`)).length, 0, "another service sees none of it");
      }),
    );

    test(
      "launch is idempotent per instance id, concurrent or repeated",
      run([], async (w, launch) => {
        const req = w.request("serve");
        const [a, b] = await Promise.all([launch(req), launch(req)]);
        const c = await launch(req);
        assert.equal(b.address, a.address);
        assert.equal(c.address, a.address);
        assert.equal(c.startedAt, a.startedAt);
        assert.equal((await w.provider.list(w.service)).filter((i) => i.id === req.instanceId).length, 1);
      }),
    );

    test(
      "terminate is idempotent, and an unknown id resolves",
      run([], async (w, launch) => {
        const req = w.request("serve");
        const inst = await launch(req);
        await ready(w, inst);
        await w.provider.terminate(req.instanceId, { graceMs: 5000 });
        await w.provider.terminate(req.instanceId, { graceMs: 5000 });
        await w.provider.terminate(`${w.service}-never-launched`, { graceMs: 10 });
        await w.provider.terminate("../not-a-name", { graceMs: 10 });
        const after = await find(w.provider, w.service, req.instanceId);
        assert.ok(after === undefined || after.state === "exited", `no longer running: ${JSON.stringify(after)}`);
        if (w.lacks.http === undefined) assert.ok(await refuses(inst.address), "nothing answers at its address");
      }),
    );

    test(
      "an instance that exits is listed as exited with its exit code, also by a fresh provider object",
      run([], async (w, launch, t) => {
        const req = w.request("crash");
        await launch(req);
        const seen = await waitFor(w, "the crash", async () => {
          const i = await find(w.provider, w.service, req.instanceId);
          return i?.state === "exited" ? i : undefined;
        });
        assert.equal(seen.exitCode, CRASH_EXIT_CODE);
        if (!w.reopen) t.diagnostic(`${name} lacks adopt: ${w.lacks.adopt ?? "no reopen"}; the fresh-object half is not run`);
        else {
          const later = await find(w.reopen(), w.service, req.instanceId);
          assert.equal(later?.state, "exited");
          assert.equal(later?.exitCode, CRASH_EXIT_CODE);
        }
      }),
    );

    test(
      "a fresh provider object lists (adopts) instances an earlier one launched, and launching the same id again finds them",
      run(["adopt"], async (w, launch) => {
        const req = w.request("serve");
        const inst = await launch(req);
        await ready(w, inst);
        const restarted = w.reopen!();
        const adopted = await find(restarted, w.service, req.instanceId);
        assert.deepEqual(
          adopted && { release: adopted.release, digest: adopted.digest, state: adopted.state, address: adopted.address, startedAt: adopted.startedAt },
          { release: req.release, digest: req.digest, state: "running", address: inst.address, startedAt: inst.startedAt },
        );
        assert.equal((await launch(req, restarted)).address, inst.address, "the same instance, not a second one");
        await restarted.terminate(req.instanceId, { graceMs: 5000 });
        const after = await find(w.provider, w.service, req.instanceId);
        assert.ok(after === undefined || after.state === "exited", "the first object sees it stopped");
      }),
    );

    test(
      "serves HTTP at its address on 127.0.0.1 (or the world's node addresses)",
      run(["http"], async (w, launch) => {
        const inst = await launch(w.request("serve"));
        assert.match(inst.address, w.address ?? LOOPBACK_ADDRESS);
        const r = await report(w, inst);
        assert.equal(typeof r.uid, "number");
      }),
    );

    test(
      "declared environment reaches the instance, with PORT and KILN_INSTANCE_ID",
      run(["http"], async (w, launch) => {
        const req = w.request("serve", { env: { GREETING: "hello from kiln", QUOTED: "a=b c 'd' \"e\"" } });
        const inst = await launch(req);
        const r = await report(w, inst);
        assert.equal(r.env.GREETING, "hello from kiln");
        assert.equal(r.env.QUOTED, "a=b c 'd' \"e\"", "values pass through untouched");
        assert.equal(r.env.KILN_INSTANCE_ID, req.instanceId);
        assert.match(r.env.PORT ?? "", /^\d+$/, "PORT is the port the app listens on");
      }),
    );

    test(
      "terminate sends SIGTERM and waits: an app that exits on it is stopped well before the grace period",
      run(["signals", "http"], async (w, launch) => {
        const inst = await launch(w.request("serve"));
        await report(w, inst);
        const t0 = Date.now();
        await w.provider.terminate(inst.id, { graceMs: 30_000 });
        const took = Date.now() - t0;
        assert.ok(took < 15_000, `stopped on SIGTERM in ${took} ms, without waiting out the 30 s grace`);
        assert.ok(await refuses(inst.address));
        const after = await find(w.provider, w.service, inst.id);
        assert.ok(after === undefined || (after.state === "exited" && after.exitCode === 0), `exited 0 or removed: ${JSON.stringify(after)}`);
      }),
    );

    test(
      "terminate sends SIGKILL after graceMs to an app that ignores SIGTERM",
      run(["signals", "http"], async (w, launch) => {
        const inst = await launch(w.request("ignore-sigterm"));
        await report(w, inst);
        const t0 = Date.now();
        await w.provider.terminate(inst.id, { graceMs: 700 });
        const took = Date.now() - t0;
        assert.ok(took >= 650, `waited for the grace period first (${took} ms)`);
        assert.ok(took < 12_000, `then killed it (${took} ms)`);
        assert.ok(await refuses(inst.address), "nothing answers at its address");
        const after = await find(w.provider, w.service, inst.id);
        assert.ok(after === undefined || (after.state === "exited" && after.exitCode === 128 + 9), `killed or removed: ${JSON.stringify(after)}`);
      }),
    );

    test(
      "the root filesystem is read-only and /tmp is writable",
      run(["http", "filesystem"], async (w, launch) => {
        const r = await report(w, await launch(w.request("serve")));
        assert.equal(r.writeRoot, "EROFS");
        assert.equal(r.writeApp, "EROFS", "the app's own files are read-only");
        assert.equal(r.writeTmp, "ok");
      }),
    );

    test(
      "a declared volume is writable and its data persists into the next instance",
      run(["http", "volumes"], async (w, launch) => {
        const volumes = [{ name: "data", path: "/data" }];
        const a = await launch(w.request("serve", { volumes }));
        assert.equal((await report(w, a)).writeData, "ok");
        assert.deepEqual(JSON.parse((await get(a.address, "/incr")).body), { n: 1 });
        assert.deepEqual(JSON.parse((await get(a.address, "/incr")).body), { n: 2 });
        await w.provider.terminate(a.id, { graceMs: 5000 });
        const b = await launch(w.request("serve", { volumes }));
        await report(w, b);
        assert.deepEqual(JSON.parse((await get(b.address, "/incr")).body), { n: 3 });
      }),
    );

    test(
      "the instance does not run as root",
      run(["http", "user"], async (w, launch) => {
        const r = await report(w, await launch(w.request("serve")));
        assert.notEqual(r.uid, 0);
        assert.notEqual(r.gid, 0);
        assert.equal(r.uid, w.appUid);
      }),
    );
  });
}

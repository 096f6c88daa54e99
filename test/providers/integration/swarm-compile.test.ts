// Table tests for the Swarm provider's pure half: kiln.yaml → ServiceSpec (compile.ts) and
// Swarm's reports → kiln release states (observe.ts).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { parseDocument } from "yaml";
import {
  compileRollbackConfig,
  compileService,
  compileUpdateConfig,
  explainSwarmLimits,
  judge,
  swarmCapacity,
  SwarmDriver,
  tasksByRelease,
  type SwarmObservation,
  type SwarmRelease,
  type SwarmTaskView,
} from "../../../src/providers/swarm/index.js";
import { LABEL } from "../../../src/derive/index.js";
import { computeBounds } from "../../../src/rollout/capacity.js";
import { parseSpec, type Spec } from "../../../src/config/index.js";
import { KilnError } from "../../../src/errors.js";

const helloYaml = readFileSync(join(fileURLToPath(new URL("../../../../examples/hello/", import.meta.url)), "kiln.yaml"), "utf8");

function spec(edits: [string[], unknown][] = []): Spec {
  const doc = parseDocument(helloYaml);
  doc.set("provider", "swarm");
  doc.setIn(["swarm", "rollouts"], "native");
  for (const [path, value] of edits) doc.setIn(path, value);
  const r = parseSpec(doc.toString(), "kiln.yaml");
  if (!("spec" in r)) throw new Error(`bad test spec: ${JSON.stringify(r.errors)}`);
  return r.spec;
}

const rolling = (instances: number, min: number, max: number, extra: [string[], unknown][] = []) =>
  spec([
    [["instances"], instances],
    [["strategy", "rolling", "minHealthyPercent"], min],
    [["strategy", "rolling", "maxHealthyPercent"], max],
    ...extra,
  ]);

const CONFIG = `sha256:${"c".repeat(64)}`;
const release = (image = CONFIG): SwarmRelease => ({ id: "r2", version: "1.0.0", digest: `sha256:${"d".repeat(64)}`, image, configHash: `sha256:${"e".repeat(64)}` });
const MS = 1_000_000;

describe("swarm capacity", () => {
  // The rows of swarmCapacity's doc comment: kiln's capacity, canary as one task at a time.
  const rows: { name: string; s: Spec; surge: number; minHealthy: number; maxUnavailable: number }[] = [
    { name: "rolling, 3 at 100/150", s: rolling(3, 100, 150), surge: 1, minHealthy: 3, maxUnavailable: 0 },
    { name: "rolling, 4 at 75/100", s: rolling(4, 75, 100), surge: 0, minHealthy: 3, maxUnavailable: 1 },
    { name: "blue-green, 3", s: spec([[["strategy", "type"], "blue-green"]]), surge: 3, minHealthy: 3, maxUnavailable: 0 },
    { name: "canary, 3", s: spec([[["strategy", "type"], "canary"]]), surge: 1, minHealthy: 3, maxUnavailable: 0 },
    { name: "canary, 0", s: spec([[["strategy", "type"], "canary"], [["instances"], 0]]), surge: 0, minHealthy: 0, maxUnavailable: 0 },
  ];
  for (const r of rows) {
    test(r.name, () => {
      const c = swarmCapacity(r.s);
      assert.deepEqual({ surge: c.surge, minHealthy: c.minHealthy, maxUnavailable: c.maxUnavailable, maxTotal: c.maxTotal }, { surge: r.surge, minHealthy: r.minHealthy, maxUnavailable: r.maxUnavailable, maxTotal: c.instances + r.surge });
    });
  }
});

describe("UpdateConfig from kiln's strategy", () => {
  const cases: { name: string; s: Spec; order: "start-first" | "stop-first"; parallelism: number; failure: "rollback" | "pause" }[] = [
    { name: "hello: 3 at 100/150 → surge 1, start-first one at a time", s: rolling(3, 100, 150), order: "start-first", parallelism: 1, failure: "rollback" },
    { name: "6 at 100/150 → surge 3, start-first three at a time", s: rolling(6, 100, 150), order: "start-first", parallelism: 3, failure: "rollback" },
    { name: "1 at 100/150 → 1.5 rounds down, but any max > 100 surges one", s: rolling(1, 100, 150), order: "start-first", parallelism: 1, failure: "rollback" },
    { name: "1 at 100/200 → surge 1", s: rolling(1, 100, 200), order: "start-first", parallelism: 1, failure: "rollback" },
    { name: "1 at 100/100 → no surge: stop-first, one", s: rolling(1, 100, 100), order: "stop-first", parallelism: 1, failure: "rollback" },
    { name: "4 at 75/100 → no surge, one may be out: stop-first, one", s: rolling(4, 75, 100), order: "stop-first", parallelism: 1, failure: "rollback" },
    { name: "10 at 50/100 → stop-first, five", s: rolling(10, 50, 100), order: "stop-first", parallelism: 5, failure: "rollback" },
    { name: "3 at 100/100 → floor could never move: stop-first, one", s: rolling(3, 100, 100), order: "stop-first", parallelism: 1, failure: "rollback" },
    { name: "4 at 75/125 → surge and unavailability: start-first with the surge (the safe side)", s: rolling(4, 75, 125), order: "start-first", parallelism: 1, failure: "rollback" },
    { name: "10 at 90/110 → start-first, one", s: rolling(10, 90, 110), order: "start-first", parallelism: 1, failure: "rollback" },
    { name: "autoRollback false → pause", s: rolling(3, 100, 150, [[["strategy", "rolling", "autoRollback"], false]]), order: "start-first", parallelism: 1, failure: "pause" },
    { name: "blue-green, 3 → the whole new fleet first", s: spec([[["strategy", "type"], "blue-green"]]), order: "start-first", parallelism: 3, failure: "rollback" },
    { name: "blue-green, 5, autoRollback false", s: spec([[["instances"], 5], [["strategy", "type"], "blue-green"], [["strategy", "blueGreen", "autoRollback"], false]]), order: "start-first", parallelism: 5, failure: "pause" },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const u = compileUpdateConfig(c.s);
      assert.equal(u.Order, c.order);
      assert.equal(u.Parallelism, c.parallelism);
      assert.equal(u.FailureAction, c.failure);
      // kiln fails a rollout on its first failed new instance
      assert.equal(u.MaxFailureRatio, 0);
    });
  }

  test("canary (no weights on Swarm): one new task at a time beside the full fleet, and the limit says so", () => {
    const base = spec([[["instances"], 6]]);
    const canary = { ...base, strategy: { ...base.strategy, type: "canary" as Spec["strategy"]["type"] } };
    const u = compileUpdateConfig(canary);
    assert.deepEqual([u.Order, u.Parallelism, u.FailureAction], ["start-first", 1, "rollback"]);
    assert.ok(explainSwarmLimits(canary).some((x) => /weight/.test(x.promise) && /no weights/.test(x.swarm)));
  });

  test("never more than instances + surge alive, never fewer than minHealthy running", () => {
    for (const n of [1, 2, 3, 5, 8]) {
      for (const [min, max] of [[100, 150], [100, 200], [75, 100], [50, 100], [90, 110], [75, 125]] as const) {
        const s = rolling(n, min, max);
        const u = compileUpdateConfig(s);
        const b = computeBounds(n, min, max);
        const alive = u.Order === "start-first" ? n + u.Parallelism : n;
        const serving = u.Order === "stop-first" ? n - u.Parallelism : n;
        assert.ok(alive <= b.maxTotal, `n=${n} ${min}/${max}: ${alive} alive > ${b.maxTotal}`);
        assert.ok(serving >= b.minHealthy, `n=${n} ${min}/${max}: ${serving} serving < ${b.minHealthy}`);
      }
    }
  });

  test("Delay is the warmup; Monitor is warmup plus the time Docker needs to call a task unhealthy", () => {
    // hello: warmup 1s; health every 500ms (probed every 1s on Swarm), 3 misses, 2s timeout → 1s + 3×1s + 2s
    const u = compileUpdateConfig(spec());
    assert.equal(u.Delay, 1000 * MS);
    assert.equal(u.Monitor, 6000 * MS);
    const bg = compileUpdateConfig(spec([[["strategy", "type"], "blue-green"]]));
    assert.equal(bg.Delay, 0);
    assert.equal(bg.Monitor, 5000 * MS);
    // 5s interval, 2 misses, 1s timeout, warmup 10s → 10 + 2×5 + 1
    const slow = compileUpdateConfig(spec([[["health", "interval"], "5s"], [["health", "unhealthyThreshold"], 2], [["health", "timeout"], "1s"], [["strategy", "rolling", "instanceWarmup"], "10s"]]));
    assert.equal(slow.Monitor, 21_000 * MS);
  });

  test("RollbackConfig: same bounds, no warmup pacing, and a failing rollback pauses", () => {
    const s = rolling(6, 100, 150);
    const r = compileRollbackConfig(s);
    assert.deepEqual(r, { ...compileUpdateConfig(s), Delay: 0, FailureAction: "pause" });
  });
});

describe("ServiceSpec", () => {
  test("the image is pinned by engine image ID or REPO@sha256, never by tag", () => {
    assert.equal(compileService(spec(), release()).TaskTemplate.ContainerSpec.Image, CONFIG);
    const pushed = `127.0.0.1:5000/hello@sha256:${"d".repeat(64)}`;
    assert.equal(compileService(spec(), release(pushed)).TaskTemplate.ContainerSpec.Image, pushed);
    for (const bad of ["hello:1.0.0", "hello", "sha256:abc", `hello:1@sha25:${"d".repeat(64)}`]) {
      assert.throws(() => compileService(spec(), release(bad)), /pinned by digest/, bad);
    }
  });

  test("hello: replicas, env, health, read-only, user, capabilities, ports, labels, volumes", () => {
    const s = compileService(spec([[["env"], { DATA_DIR: "/data", A: "1" }]]), release());
    const c = s.TaskTemplate.ContainerSpec;
    assert.equal(s.Name, "hello");
    assert.deepEqual(s.Mode, { Replicated: { Replicas: 3 } });
    assert.deepEqual(c.Env, ["A=1", "DATA_DIR=/data", "PORT=8080", "HOST=0.0.0.0", "KILN_INSTANCE_ID={{.Task.Name}}"]);
    assert.equal(c.User, "1000:1000");
    assert.equal(c.ReadOnly, true);
    assert.deepEqual(c.CapabilityDrop, ["ALL"]);
    assert.deepEqual(c.Mounts[0], { Type: "tmpfs", Target: "/tmp" });
    assert.deepEqual(c.Mounts[1], { Type: "volume", Source: "hello-data", Target: "/data", ReadOnly: false, VolumeOptions: { Labels: { [LABEL.managedBy]: "kiln", [LABEL.service]: "hello" } } });
    assert.equal(c.Healthcheck.Test[0], "CMD"); // exec form: the image has no shell
    assert.equal(c.Healthcheck.Test[1], "/usr/local/bin/node");
    // 500ms in kiln.yaml: a Docker probe starts a Node process, so Swarm probes once a second at most
    assert.deepEqual([c.Healthcheck.Interval, c.Healthcheck.Timeout, c.Healthcheck.Retries, c.Healthcheck.StartPeriod], [1000 * MS, 2000 * MS, 3, 0]);
    assert.ok(explainSwarmLimits(spec()).some((x) => /starts a process/.test(x.swarm)));
    assert.equal(compileService(spec([[["health", "interval"], "3s"]]), release()).TaskTemplate.ContainerSpec.Healthcheck.Interval, 3000 * MS);
    assert.equal(c.StopGracePeriod, 10_000 * MS);
    assert.deepEqual(s.EndpointSpec.Ports, [{ Protocol: "tcp", TargetPort: 8080, PublishedPort: 8080, PublishMode: "ingress" }]);
    for (const labels of [s.Labels, c.Labels]) {
      assert.equal(labels[LABEL.release], "r2");
      assert.equal(labels[LABEL.digest], release().digest);
      assert.equal(labels[LABEL.configHash], release().configHash);
      assert.equal(labels[LABEL.service], "hello");
    }
    assert.equal(compileService(spec(), release(), { replicas: 7 }).Mode.Replicated.Replicas, 7);
  });

  test("the node health probe passes on 2xx and fails on 5xx, timeouts and refused connections", async (t) => {
    const statuses: Record<string, number> = { "/ok": 204, "/bad": 500 };
    const server: Server = createServer((req, res) => {
      if (req.url === "/slow") return; // never answers
      res.writeHead(statuses[req.url ?? ""] ?? 404).end();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    t.after(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
    const port = (server.address() as { port: number }).port;
    const probe = async (path: string) => {
      const test = compileService(spec([[["health", "path"], path], [["health", "timeout"], "300ms"], [["image", "port"], port]]), release()).TaskTemplate.ContainerSpec.Healthcheck.Test;
      const { spawn } = await import("node:child_process");
      return new Promise<{ code: number | null; out: string }>((resolve) => {
        const p = spawn(process.execPath, test.slice(2), { stdio: ["ignore", "pipe", "inherit"] });
        let out = "";
        p.stdout.on("data", (d: Buffer) => (out += d.toString()));
        const timer = setTimeout(() => p.kill("SIGKILL"), 10_000);
        p.on("close", (code) => { clearTimeout(timer); resolve({ code, out }); });
      });
    };
    const ok = await probe("/ok");
    assert.equal(ok.code, 0);
    assert.match(ok.out, /GET http:\/\/127\.0\.0\.1:\d+\/ok 204/);
    const bad = await probe("/bad");
    assert.equal(bad.code, 1);
    assert.match(bad.out, / 500/);
    assert.equal((await probe("/slow")).code, 1);
    server.closeAllConnections();
  });
});

describe("explainSwarmLimits", () => {
  test("blue-green: no warm previous fleet, no read-back cutover, and the nearest safe thing", () => {
    const l = explainSwarmLimits(spec([[["strategy", "type"], "blue-green"]]));
    const warm = l.find((x) => /warm/.test(x.promise));
    assert.ok(warm, "the warm-fleet limit");
    assert.match(warm.instead, /start-first with Parallelism = 3/);
    assert.ok(l.some((x) => /read/.test(x.promise) && /cutover/.test(x.swarm)));
    for (const x of l) for (const k of ["promise", "swarm", "instead"] as const) assert.ok(x[k].length > 10, `${k} of ${x.promise}`);
  });

  test("rolling: no blue-green limits, but deadline, single PreviousSpec, healthy threshold, ingress", () => {
    const l = explainSwarmLimits(spec());
    assert.ok(!l.some((x) => /warm/.test(x.promise)));
    assert.ok(l.some((x) => /deadline/.test(x.promise)));
    assert.ok(l.some((x) => /PreviousSpec/.test(x.swarm)));
    assert.ok(l.some((x) => /healthy threshold/.test(x.swarm)));
    assert.ok(l.some((x) => /every interface/.test(x.swarm)));
  });

  test("a one-instance stop-first service is told it will be empty while replacing", () => {
    assert.ok(explainSwarmLimits(rolling(1, 100, 100)).some((x) => /nothing serving/.test(x.swarm)));
    assert.ok(!explainSwarmLimits(rolling(1, 100, 150)).some((x) => /nothing serving/.test(x.swarm)));
  });
});

describe("judging Swarm's reports", () => {
  const task = (id: string, release: string, state: string, extra: Partial<SwarmTaskView> = {}): SwarmTaskView => ({ id, release, state, desiredState: "running", at: 100, ...extra });
  const obs = (o: Partial<SwarmObservation>): SwarmObservation => ({ specRelease: "r2", replicas: 2, tasks: [], ...o });
  const since = 10_000;
  const cases: { name: string; o: SwarmObservation; created?: boolean; want: ReturnType<typeof judge> }[] = [
    { name: "a stale completed status (the previous update) is not this one", o: obs({ update: { state: "completed", startedAt: 1000 }, tasks: [task("a", "r1", "running")] }), want: { kind: "progressing", running: 0, starting: 0 } },
    { name: "updating", o: obs({ update: { state: "updating", startedAt: since }, tasks: [task("a", "r1", "running"), task("b", "r2", "starting")] }), want: { kind: "progressing", running: 0, starting: 1 } },
    { name: "completed and every replica runs the target → live", o: obs({ update: { state: "completed", startedAt: since }, tasks: [task("a", "r2", "running"), task("b", "r2", "running"), task("c", "r1", "shutdown", { desiredState: "shutdown" })] }), want: { kind: "live" } },
    { name: "paused → the engine's message", o: obs({ update: { state: "paused", startedAt: since, message: "update paused due to failure or early termination of task x" } }), want: { kind: "paused", reason: "Swarm paused the update: update paused due to failure or early termination of task x" } },
    { name: "rollback_started", o: obs({ update: { state: "rollback_started", startedAt: since, message: "update rolled back due to failure" } }), want: { kind: "rolling-back", reason: "update rolled back due to failure" } },
    {
      name: "rollback_completed, with the failed task's error",
      o: obs({ specRelease: "r1", update: { state: "rollback_completed", startedAt: since, message: "rollback completed" }, tasks: [task("abcdefabcdefabc", "r2", "failed", { error: "task: non-zero exit (1)", desiredState: "shutdown" })] }),
      want: { kind: "rolled-back", reason: "rollback completed — task abcdefabcdef: task: non-zero exit (1)" },
    },
    { name: "rollback_paused → failed", o: obs({ update: { state: "rollback_paused", startedAt: since, message: "rollback paused" } }), want: { kind: "failed", reason: "Swarm paused the rollback: rollback paused" } },
    { name: "a new service converged → live", created: true, o: obs({ tasks: [task("a", "r2", "running"), task("b", "r2", "running")] }), want: { kind: "live" } },
    { name: "a new service whose task failed once → Swarm retries it", created: true, o: obs({ tasks: [task("a", "r2", "running", { slot: 1 }), task("b", "r2", "failed", { slot: 2, error: "network sandbox does not exist" })] }), want: { kind: "progressing", running: 1, starting: 0 } },
    {
      name: "a new service whose slot failed twice → failed",
      created: true,
      o: obs({ tasks: [task("a", "r2", "running", { slot: 1 }), task("b", "r2", "rejected", { slot: 2, at: 50, error: "x" }), task("cccccccccccccccc", "r2", "rejected", { slot: 2, at: 60, error: "No such image: sha256:cc" })] }),
      want: { kind: "failed", reason: "task cccccccccccc: No such image: sha256:cc" },
    },
    { name: "an old release still running → not yet live", o: obs({ tasks: [task("a", "r2", "running"), task("b", "r2", "running"), task("c", "r1", "running")] }), want: { kind: "progressing", running: 2, starting: 0 } },
  ];
  for (const c of cases) test(c.name, () => assert.deepEqual(judge(c.o, "r2", since, { created: c.created ?? false }), c.want));

  test("tasks by release: running, starting and failed counted per release", () => {
    const g = tasksByRelease(obs({ tasks: [task("a", "r2", "running"), task("b", "r2", "starting"), task("c", "r1", "running"), task("d", "r2", "failed", { desiredState: "shutdown" })] }));
    assert.deepEqual(g.map((x) => [x.release, x.running, x.starting, x.failed]), [["r1", 1, 0, 0], ["r2", 1, 1, 1]]);
  });
});

describe("SwarmDriver.ensureSwarm", () => {
  // A stand-in for the engine's /info answer: the only thing ensureSwarm reads.
  const driver = (swarm: object) => new SwarmDriver({ info: async () => ({ Swarm: swarm }) } as never);

  test("an engine outside a swarm is a KilnError whose hint is `docker swarm init`", async () => {
    await assert.rejects(driver({ LocalNodeState: "inactive" }).ensureSwarm(), (e: unknown) => {
      assert.ok(e instanceof KilnError);
      assert.equal(e.code, "KILN_E_PROVIDER");
      assert.match(e.message, /inactive/);
      assert.match(e.hint ?? "", /docker swarm init --advertise-addr 127\.0\.0\.1/);
      return true;
    });
  });

  test("a worker node is refused; an active manager passes", async () => {
    await assert.rejects(driver({ LocalNodeState: "active", ControlAvailable: false, NodeID: "n1" }).ensureSwarm(), /worker/);
    assert.deepEqual(await driver({ LocalNodeState: "active", ControlAvailable: true, NodeID: "n1" }).ensureSwarm(), { nodeId: "n1" });
  });
});

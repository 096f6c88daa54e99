// The Swarm performer against an in-memory Swarm (no engine, no process): intent is recorded
// before Swarm is asked, and a rollout an interrupted kiln left running is reconciled by the
// next invocation — resumed, or recorded live / rolled back / failed from what Swarm reports.
// The real single-node swarm runs the same crash in test/providers/integration/swarm.test.ts.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { parseDocument } from "yaml";
import { toReleaseSettings } from "../../src/controller/release-settings.js";
import type { DeployRequest } from "../../src/controller/types.js";
import { LABEL } from "../../src/derive/index.js";
import { KilnError } from "../../src/errors.js";
import { requireCapability } from "../../src/ops/performer.js";
import { SwarmPerformer, type SwarmEngine } from "../../src/ops/swarm/performer.js";
import type { SwarmServiceSpec, SwarmServiceView, WatchOptions, WatchOutcome } from "../../src/providers/swarm/index.js";
import type { SwarmTaskView, SwarmUpdateState } from "../../src/providers/swarm/observe.js";
import { parseSpec, type Spec } from "../../src/config/index.js";
import { StateDb } from "../../src/state/db.js";

const helloYaml = readFileSync(fileURLToPath(new URL("../../../examples/hello/kiln.yaml", import.meta.url)), "utf8");
function spec(): Spec {
  const doc = parseDocument(helloYaml);
  doc.set("provider", "swarm");
  doc.setIn(["swarm", "rollouts"], "native");
  doc.set("instances", 2);
  const r = parseSpec(doc.toString(), "kiln.yaml");
  if (!("spec" in r)) throw new Error(JSON.stringify(r.errors));
  return r.spec;
}

const digest = (c: string) => `sha256:${c.repeat(64)}`;
function request(s: Spec, version: string, c: string): DeployRequest {
  return { ref: `hello:${version}`, version, digest: digest(c), configHash: digest("f"), spec: toReleaseSettings(s) };
}

/** A one-service Swarm in memory, with a manual clock. Updates progress only when the test says. */
class FakeSwarm implements SwarmEngine {
  clock = 1_700_000_000_000;
  service?: { spec: SwarmServiceSpec; previous?: SwarmServiceSpec; version: number; update?: { state: SwarmUpdateState; message?: string; startedAt: number }; tasks: SwarmTaskView[] };
  /** what watch() does: settle the update as this, or throw (the process dies while following) */
  onWatch: "complete" | "fail-and-roll-back" | "die" = "complete";
  /** apply() throws before Swarm is touched (the process dies between intent and request) */
  dieBeforeApply = false;
  applied = 0;

  now = () => this.clock;
  private tasksOf(s: SwarmServiceSpec, state = "running"): SwarmTaskView[] {
    const n = s.Mode.Replicated.Replicas;
    return Array.from({ length: n }, (_, i) => ({ id: `${s.Labels[LABEL.release]}-${i}`.padEnd(25, "0"), slot: i + 1, release: s.Labels[LABEL.release], state, desiredState: "running", at: this.clock }));
  }
  async inspect(_name: string): Promise<SwarmServiceView | undefined> {
    const s = this.service;
    if (!s) return undefined;
    return {
      id: "svc", version: s.version, spec: s.spec, previousRelease: s.previous?.Labels[LABEL.release],
      observation: { specRelease: s.spec.Labels[LABEL.release], replicas: s.spec.Mode.Replicated.Replicas, update: s.update, tasks: s.tasks },
    };
  }
  async mustInspect(name: string): Promise<SwarmServiceView> {
    const v = await this.inspect(name);
    if (!v) throw new KilnError("KILN_E_NOT_FOUND", "no service");
    return v;
  }
  async apply(spec: SwarmServiceSpec): Promise<{ created: boolean }> {
    if (this.dieBeforeApply) throw new Error("killed before asking Swarm");
    this.applied++;
    this.clock += 10;
    if (!this.service) {
      this.service = { spec, version: 1, tasks: this.tasksOf(spec, "starting") };
      return { created: true };
    }
    const s = this.service;
    this.service = { spec, previous: s.spec, version: s.version + 1, update: { state: "updating", startedAt: this.clock }, tasks: [...s.tasks, ...this.tasksOf(spec, "starting")] };
    return { created: false };
  }
  /** Swarm finishes the update in progress. */
  complete(): void {
    const s = this.service!;
    s.update = s.update && { ...s.update, state: "completed" };
    s.tasks = this.tasksOf(s.spec);
  }
  /** Swarm's FailureAction rollback: back to the previous spec. */
  failAndRollBack(): void {
    const s = this.service!;
    s.spec = s.previous!;
    s.previous = undefined;
    s.update = { state: "rollback_completed", message: "update rolled back due to failure or early termination of task x", startedAt: s.update!.startedAt };
    s.tasks = this.tasksOf(s.spec);
  }
  async rollback(): Promise<{ from?: string; to?: string }> {
    throw new Error("not used");
  }
  async scale(): Promise<void> {}
  async remove(): Promise<boolean> {
    this.service = undefined;
    return true;
  }
  async prepareVolumes(): Promise<void> {}
  async taskLogs(taskId: string, lines: number): Promise<string> {
    return `last ${lines} lines of ${taskId}\n`;
  }
  async ensureImage(_store: unknown, d: string): Promise<string> {
    return digest(d.slice(7, 8) === "a" ? "1" : "2");
  }
  async watch(_name: string, o: WatchOptions): Promise<WatchOutcome> {
    this.clock += 1000;
    if (this.onWatch === "die") throw new Error("kiln was interrupted while following the rollout");
    if (this.onWatch === "fail-and-roll-back") {
      this.failAndRollBack();
      return { outcome: "rolled-back", reason: this.service!.update!.message, durationMs: this.clock - o.since };
    }
    if (this.service?.update) this.complete();
    else this.service!.tasks = this.tasksOf(this.service!.spec);
    return { outcome: "live", durationMs: this.clock - o.since };
  }
}

function world(t: { after(fn: () => void): void }) {
  const home = mkdtempSync(join(tmpdir(), "kiln-swarm-perf-"));
  t.after(() => rmSync(home, { recursive: true, force: true }));
  const swarm = new FakeSwarm();
  const s = spec();
  // Each performer is one `kiln` invocation; a new one after a "crash" shares only state and Swarm.
  const invocation = () => new SwarmPerformer({ spec: s, home, stateDb: join(home, "state.db"), engine: async () => swarm, probe: async () => ({ address: s.listen, answering: true }), now: swarm.now });
  const db = () => new StateDb(join(home, "state.db"));
  const read = <T>(fn: (d: StateDb) => T): T => {
    const d = db();
    try {
      return fn(d);
    } finally {
      d.close();
    }
  };
  return { swarm, s, invocation, read };
}

/** r1 live, then a deploy of r2 interrupted while Swarm updates (its rollout is left running). */
async function interruptedDeploy(t: { after(fn: () => void): void }) {
  const w = world(t);
  await w.invocation().deploy(request(w.s, "1.0.0", "a"));
  w.swarm.onWatch = "die";
  await assert.rejects(w.invocation().deploy(request(w.s, "2.0.0", "b")), /interrupted/);
  w.swarm.onWatch = "complete";
  return w;
}

describe("Swarm performer", () => {
  test("deploy records the intent, then the outcome; a second release supersedes the first", async (t) => {
    const w = world(t);
    const r1 = await w.invocation().deploy(request(w.s, "1.0.0", "a"));
    assert.equal(r1.outcome, "live");
    const r2 = await w.invocation().deploy(request(w.s, "2.0.0", "b"));
    assert.equal(r2.outcome, "live");
    const h = await w.invocation().history();
    assert.deepEqual(h.releases.map((r) => [r.id, r.status]), [["r2", "live"], ["r1", "superseded"]]);
    assert.deepEqual(h.rollouts.map((r) => [r.target, r.state]), [["r2", "done"], ["r1", "done"]]);
    const intent = w.read((d) => d.listRollouts(w.s.name)[0]!.progress) as { swarm: { phase: string; created: boolean } };
    assert.deepEqual([intent.swarm.phase, intent.swarm.created], ["applied", false]);
  });

  test("interrupted while Swarm updates: status reports it running, resume follows it to live", async (t) => {
    const w = await interruptedDeploy(t);
    assert.equal(w.read((d) => d.activeRollout(w.s.name))?.target, "r2", "the rollout is left running, as after Ctrl-C");

    const st = await w.invocation().status();
    const rec = (st.view as { recovery?: { outcome: string; rollout: { target: string } } }).recovery;
    assert.deepEqual([rec?.outcome, rec?.rollout.target], ["running", "r2"]);

    const resumed = await requireCapability(w.invocation(), "resume")();
    assert.deepEqual([resumed.target, resumed.state], ["r2", "done"]);
    const h = await w.invocation().history();
    assert.deepEqual(h.releases.map((r) => [r.id, r.status]), [["r2", "live"], ["r1", "superseded"]]);
    assert.equal(w.read((d) => d.activeRollout(w.s.name)), undefined);
  });

  test("interrupted, and Swarm finished meanwhile: the next invocation records it live without waiting", async (t) => {
    const w = await interruptedDeploy(t);
    w.swarm.complete();
    const h = await w.invocation().history();
    assert.deepEqual(h.releases.map((r) => [r.id, r.status]), [["r2", "live"], ["r1", "superseded"]]);
    assert.equal(h.rollouts[0]!.state, "done");
  });

  test("interrupted, and Swarm rolled the release back meanwhile: recorded rolled back, r1 still live", async (t) => {
    const w = await interruptedDeploy(t);
    w.swarm.failAndRollBack();
    const h = await w.invocation().history();
    assert.deepEqual(h.releases.map((r) => [r.id, r.status]), [["r2", "failed"], ["r1", "live"]]);
    assert.equal(h.rollouts[0]!.state, "aborted");
    assert.match(h.releases[0]!.reason ?? "", /rolled back due to failure/);
  });

  test("interrupted between intent and request: failed, nothing changed, and the next deploy proceeds", async (t) => {
    const w = world(t);
    await w.invocation().deploy(request(w.s, "1.0.0", "a"));
    w.swarm.dieBeforeApply = true;
    await assert.rejects(w.invocation().deploy(request(w.s, "2.0.0", "b")), /killed before asking Swarm/);
    assert.equal(w.swarm.applied, 1);
    w.swarm.dieBeforeApply = false;
    const r3 = await w.invocation().deploy(request(w.s, "2.0.0", "b"));
    assert.equal(r3.outcome, "live");
    const h = await w.invocation().history();
    assert.deepEqual(h.releases.map((r) => [r.id, r.status]), [["r3", "live"], ["r2", "failed"], ["r1", "superseded"]]);
    assert.match(h.releases[1]!.reason ?? "", /interrupted before Swarm was asked/);
  });

  test("logs: each running task's log from the engine; an unknown task is a clear error", async (t) => {
    const w = world(t);
    await w.invocation().deploy(request(w.s, "1.0.0", "a"));
    const logs = await requireCapability(w.invocation(), "logs")(undefined, 20);
    assert.deepEqual(logs.map((l) => l.text), [`last 20 lines of ${"r1-0".padEnd(25, "0")}\n`, `last 20 lines of ${"r1-1".padEnd(25, "0")}\n`]);
    assert.match(logs[0]!.id, /^r1-0.* \(r1, slot 1\)$/);
    await assert.rejects(w.invocation().logs("nope", 5), (e: unknown) => e instanceof KilnError && e.code === "KILN_E_NOT_FOUND");
  });

  test("verbs Swarm cannot perform say so with exit 2 and what to do instead", (t) => {
    const w = world(t);
    const p = w.invocation();
    for (const [verb, instead] of [["abort", /kiln rollback/], ["pause", /kiln rollback/], ["promote", /kiln deploy/]] as const) {
      assert.throws(
        () => requireCapability(p, verb),
        (e: unknown) => e instanceof KilnError && e.code === "KILN_E_USAGE" && e.exitCode === 2 && /Swarm performs the rollout itself/.test(e.message) && instead.test(e.hint ?? ""),
      );
    }
  });
});

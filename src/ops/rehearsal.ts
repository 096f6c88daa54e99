// The pieces a rehearsal of the bake → deploy → replace loop is made of, shared by `kiln demo`
// (on kiln's example) and `kiln drill` (on the user's own service): steps timed and counted
// against continuous load, a deploy followed to its end, fleet checks, killing an instance and
// waiting for the controller to heal the fleet.

import type { DeployRequest, InstanceView, StatusView } from "../controller/types.js";
import { emptyTotals, startLoad, type FinalTotals, type LoadHandle, type LoadOptions, type Totals } from "../loadgen/client.js";
import type { ControllerClient } from "../server/client.js";
import { lastEventId, watch, type WatchResult } from "./deploy-flow.js";

export interface RehearsalStep {
  name: string;
  outcome: "ok" | "failed" | "skipped";
  durationMs: number;
  /** requests the load generator sent during the step, and how many of them failed */
  requests: number;
  failed: number;
  detail: string;
}

/** A step's failure with the reason a person should read. */
export class StepFailure extends Error {}

export function expect(cond: boolean, what: string): asserts cond {
  if (!cond) throw new StepFailure(what);
}

export async function until(check: () => Promise<boolean>, timeoutMs: number, stepMs = 100): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return false;
}

/**
 * Runs steps one after the other and records each one's duration and the load generator's
 * requests and failures during it (the difference of two snapshots).
 */
export class StepRecorder {
  readonly steps: RehearsalStep[] = [];
  private load: LoadHandle | undefined;
  private mark: Totals = emptyTotals();

  constructor(private readonly say: (line: string) => void = () => undefined) {}

  /** Start continuous load; what it counts from here on is charged to the steps. */
  async startLoad(opts: LoadOptions, settleMs = 1000): Promise<void> {
    this.load = await startLoad(opts);
    await new Promise((r) => setTimeout(r, settleMs));
    this.mark = await this.load.snapshot();
  }

  /** Run `fn` as a step; its return value is the step's detail, a throw fails it. Returns whether it passed. */
  async step(name: string, fn: () => Promise<string>): Promise<boolean> {
    this.say(`▶ ${name}`);
    const started = Date.now();
    let outcome: RehearsalStep["outcome"] = "ok";
    let detail = "";
    try {
      detail = await fn();
    } catch (e) {
      outcome = "failed";
      detail = (e as Error).message;
    }
    const now = this.load ? await this.load.snapshot() : this.mark;
    const s: RehearsalStep = { name, outcome, durationMs: Date.now() - started, requests: now.requests - this.mark.requests, failed: now.failed - this.mark.failed, detail };
    this.mark = now;
    this.steps.push(s);
    this.say(`  ${outcome === "ok" ? "✔" : "✘"} ${detail} (${s.durationMs} ms, ${s.requests} requests, ${s.failed} failed)`);
    return outcome === "ok";
  }

  /** A step that did not run because an earlier one failed. */
  skip(name: string, why: string): void {
    this.steps.push({ name, outcome: "skipped", durationMs: 0, requests: 0, failed: 0, detail: why });
    this.say(`- ${name}: skipped (${why})`);
  }

  /** Stop the load; its final totals, or undefined when it never started. */
  async stopLoad(): Promise<FinalTotals | undefined> {
    const l = this.load;
    this.load = undefined;
    return l ? l.stop() : undefined;
  }
}

/** Send a deploy and follow it (and the rollback it may turn into) until it settles. */
export async function deployAndWatch(client: ControllerClient, req: DeployRequest, timeoutMs = 5 * 60_000): Promise<WatchResult> {
  const after = await lastEventId(client);
  const { rollout } = await client.deploy(req);
  return watch(client, rollout, { afterEvent: after, timeoutMs });
}

/** Roll back and follow it; `ms` is how long until the rollback settled. */
export async function rollbackAndWatch(client: ControllerClient, timeoutMs = 5 * 60_000): Promise<WatchResult & { ms: number }> {
  const after = await lastEventId(client);
  const started = Date.now();
  const { rollout } = await client.rollback();
  const r = await watch(client, rollout, { afterEvent: after, timeoutMs });
  return { ...r, ms: Date.now() - started };
}

/** Every desired instance is in rotation and each serving one satisfies `is`, as is the live release. */
export function fleetServes(s: StatusView, is: (i: Pick<InstanceView, "release" | "version">) => boolean): boolean {
  const serving = s.instances.filter((i) => i.inRotation);
  return s.release !== undefined && is({ release: s.release.id, version: s.release.version }) && serving.length === s.desiredInstances && serving.every(is);
}

/**
 * SIGKILL an instance the way a crash would. The local provider's pid leads the instance's
 * process group; a container's is its init.
 */
export function killInstance(provider: string, pid: number): void {
  if (provider === "docker") process.kill(pid, "SIGKILL");
  else process.kill(-pid, "SIGKILL");
}

/** Kill one serving instance and wait until `desired` healthy instances serve again without it. */
export async function killAndHeal(client: ControllerClient, provider: string, timeoutMs = 60_000): Promise<{ victim: string; healed: boolean; ms: number }> {
  const before = await client.status();
  const victim = before.instances.find((i) => i.inRotation && i.pid);
  expect(victim !== undefined, "no serving instance with a process to kill");
  const started = Date.now();
  killInstance(provider, victim.pid!);
  const healed = await until(async () => {
    const s = await client.status();
    const serving = s.instances.filter((i) => i.inRotation && i.health === "healthy");
    return serving.length === s.desiredInstances && !serving.some((i) => i.id === victim.id);
  }, timeoutMs);
  return { victim: victim.id, healed, ms: Date.now() - started };
}

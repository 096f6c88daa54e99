// An in-memory provider driven by a manual clock, for fast tests and simulation.
// Each release can be given a behaviour: how long its instances take to turn healthy,
// whether they fail health checks, or exit.

import { firstAfter } from "../../change-log.js";
import type { InstanceChanges, LaunchRequest, ObservedInstance, Provider } from "../provider.js";

export interface FakeBehaviour {
  /** ms after launch before health checks pass (default 0) */
  readyAfter?: number;
  /** health checks answer 500 (the app is up but says it is not healthy) */
  unhealthy?: boolean;
  /** the process exits this many ms after launch */
  exitAfter?: number;
  /** the code it exits with (default 1) */
  exitCode?: number;
  /** launch itself throws */
  launchFails?: boolean;
  /** share of instances (0–1) that answer their health check with a failure; drawn per instance */
  failRate?: number;
}

export interface ManualClock {
  now(): number;
  advance(ms: number): void;
}

/** mulberry32: a small, seeded PRNG so simulations repeat exactly. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function manualClock(start = 1_700_000_000_000): ManualClock {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

/** A health check's answer as an instance gives it. */
export interface ProbeAnswer {
  readonly ok: boolean;
  readonly answered: boolean;
  readonly reason?: string;
  readonly status?: number;
}

// The three answers there are, shared (frozen): a simulation asks ~250,000 times. One object
// shape for all three (every field present, in one order): the code that folds them in then
// reads one shape, whichever answer a phase of the rollout gives most.
const answer = (ok: boolean, answered: boolean, reason: string | undefined, status: number | undefined): ProbeAnswer => Object.freeze({ ok, answered, reason, status });
const REFUSED: ProbeAnswer = answer(false, false, "connection refused", undefined);
const ANSWERED_500: ProbeAnswer = answer(false, true, "status 500", 500);
const ANSWERED_OK: ProbeAnswer = answer(true, true, undefined, 200);

const FIRST_PORT = 20000;
const ADDRESS_PREFIX = "127.0.0.1:";

/** The port of an address this provider handed out, or -1 (any other shape). */
function portOf(address: string): number {
  if (!address.startsWith(ADDRESS_PREFIX)) return -1;
  let port = 0;
  for (let k = ADDRESS_PREFIX.length; k < address.length; k++) {
    const d = address.charCodeAt(k) - 48;
    if (d < 0 || d > 9) return -1;
    port = port * 10 + d;
  }
  return port;
}

/**
 * A behaviour with every field present, in one order, whichever fields the test or the
 * simulation gave: the probe of every instance reads it (~250,000 times in a simulation),
 * and behaviours of several shapes there make that read polymorphic.
 */
interface Behaviour {
  readonly readyAfter: number;
  readonly unhealthy: boolean;
  readonly exitAfter: number | undefined;
  readonly exitCode: number | undefined;
  readonly launchFails: boolean;
  readonly failRate: number | undefined;
}

function behaviourOf(b: FakeBehaviour): Behaviour {
  return {
    readyAfter: b.readyAfter ?? 0,
    unhealthy: b.unhealthy === true,
    exitAfter: b.exitAfter,
    exitCode: b.exitCode,
    launchFails: b.launchFails === true,
    failRate: b.failRate,
  };
}

const DEFAULT_BEHAVIOUR = behaviourOf({});

/** One object shape for every instance (all fields from launch on; exit sets, never adds). */
interface FakeInstance {
  readonly id: string;
  readonly service: string;
  readonly release: string;
  readonly digest: string;
  readonly address: string;
  state: ObservedInstance["state"];
  readonly startedAt: number;
  exitCode: number | undefined;
  readonly pid: number | undefined;
  behaviour: Behaviour;
}

/** What launch() and list() report of an instance: a copy without its behaviour (cheap: simulations list 10,000 a tick). */
function observed(i: FakeInstance): ObservedInstance {
  const o: ObservedInstance = { id: i.id, service: i.service, release: i.release, digest: i.digest, address: i.address, state: i.state, startedAt: i.startedAt };
  if (i.exitCode !== undefined) o.exitCode = i.exitCode;
  if (i.pid !== undefined) o.pid = i.pid;
  return o;
}

export class FakeProvider implements Provider {
  readonly name = "fake";
  private readonly instances = new Map<string, FakeInstance>();
  private readonly byAddress = new Map<string, FakeInstance>();
  /**
   * The same instances by port (`127.0.0.1:PORT`, ports handed out from FIRST_PORT up): a probe's
   * lookup is an array index, not a hash of its address (simulations probe ~250,000 times).
   */
  private readonly byPort: (FakeInstance | undefined)[] = [];
  private readonly behaviours = new Map<string, Behaviour>();
  private nextPort = FIRST_PORT;
  launches = 0;
  /** instances in state running */
  private runningN = 0;
  /** change log for changes(): every launch, exit and removal, newest last */
  private log: { seq: number; service: string; id: string }[] = [];
  private seq = 0;
  /** cursors at or below this were compacted away */
  private floor = 0;
  /** running instances that exit by themselves later (behaviour.exitAfter) */
  private readonly timed = new Set<FakeInstance>();

  constructor(
    private readonly clock: { now(): number },
    /** deterministic random numbers in [0, 1) for per-instance draws */
    private readonly random: () => number = seededRandom(1),
  ) {}

  /** Behaviour for instances of a release (by release id). */
  behave(release: string, b: FakeBehaviour): void {
    this.behaviours.set(release, behaviourOf(b));
  }

  /** Make one instance start (false) or stop (true) failing its health checks, as a sick node would. */
  setHealthy(id: string, healthy: boolean): void {
    const i = this.instances.get(id);
    if (i) i.behaviour = { ...i.behaviour, unhealthy: !healthy };
  }

  /** Kill an instance from outside, as a crash would. */
  crash(id: string): void {
    const i = this.instances.get(id);
    if (i) this.exit(i, 137);
  }

  private exit(i: FakeInstance, code: number): void {
    if (i.state === "exited") return;
    if (i.state === "running") this.runningN--;
    i.state = "exited";
    i.exitCode = code;
    this.timed.delete(i);
    this.changed(i.service, i.id);
  }

  private changed(service: string, id: string): void {
    this.log.push({ seq: ++this.seq, service, id });
    if (this.log.length > 4 * this.instances.size + 1024) {
      const drop = this.log.length >> 1;
      this.floor = this.log[drop - 1]!.seq;
      this.log = this.log.slice(drop);
    }
  }

  /** Instances whose exitAfter has come exit now (time only moves with the manual clock). */
  private exitDue(): void {
    if (this.timed.size === 0) return;
    const now = this.clock.now();
    for (const i of this.timed) if (now - i.startedAt >= i.behaviour.exitAfter!) this.exit(i, i.behaviour.exitCode ?? 1);
  }

  async launch(req: LaunchRequest): Promise<ObservedInstance> {
    const existing = this.instances.get(req.instanceId);
    if (existing) return observed(existing);
    const base = this.behaviours.get(req.release) ?? DEFAULT_BEHAVIOUR;
    const behaviour = base.failRate !== undefined && this.random() < base.failRate ? { ...base, unhealthy: true } : base;
    if (behaviour.launchFails) throw new Error(`fake launch failure for ${req.release}`);
    this.launches++;
    const inst: FakeInstance = {
      id: req.instanceId, service: req.service, release: req.release, digest: req.digest, address: `${ADDRESS_PREFIX}${this.nextPort++}`,
      state: "running", startedAt: this.clock.now(), exitCode: undefined, pid: undefined, behaviour,
    };
    this.instances.set(inst.id, inst);
    this.runningN++;
    this.byAddress.set(inst.address, inst);
    this.byPort[this.nextPort - 1 - FIRST_PORT] = inst;
    if (behaviour.exitAfter !== undefined) this.timed.add(inst);
    this.changed(inst.service, inst.id);
    return observed(inst);
  }

  async terminate(instanceId: string): Promise<void> {
    const i = this.instances.get(instanceId);
    if (!i) return;
    if (i.state === "running") this.runningN--;
    this.byAddress.delete(i.address);
    const port = portOf(i.address);
    if (this.byPort[port - FIRST_PORT] === i) this.byPort[port - FIRST_PORT] = undefined;
    this.instances.delete(instanceId);
    this.timed.delete(i);
    this.changed(i.service, i.id);
  }

  async list(service: string): Promise<ObservedInstance[]> {
    this.exitDue();
    const out: ObservedInstance[] = [];
    for (const i of this.instances.values()) if (i.service === service) out.push(observed(i));
    return out;
  }

  async changes(service: string, cursor: number | undefined): Promise<InstanceChanges> {
    this.exitDue();
    if (cursor === undefined || cursor < this.floor) return { cursor: this.seq, full: true, instances: await this.list(service), removed: [] };
    const lo = firstAfter(this.log, cursor);
    const ids = new Set<string>();
    for (let k = lo; k < this.log.length; k++) if (this.log[k]!.service === service) ids.add(this.log[k]!.id);
    const instances: ObservedInstance[] = [];
    const removed: string[] = [];
    for (const id of ids) {
      const i = this.instances.get(id);
      if (i) instances.push(observed(i));
      else removed.push(id);
    }
    return { cursor: this.seq, full: false, instances, removed };
  }

  /** The health check as an instance would answer it. */
  async probe(address: string): Promise<ProbeAnswer> {
    return this.answer(address);
  }

  /** probe's answer, synchronously (the simulation records it without a promise). */
  answer(address: string): ProbeAnswer {
    const port = portOf(address);
    const p = port >= FIRST_PORT ? this.byPort[port - FIRST_PORT] : undefined;
    const i = p !== undefined && p.address === address ? p : this.byAddress.get(address);
    if (i === undefined) return REFUSED;
    // Every field read for every probe, then the answer chosen: the compiled code then has no
    // read first made when the first instance turns ready (seconds into a simulation).
    const b = i.behaviour;
    const up = i.state === "running" && this.clock.now() - i.startedAt >= b.readyAfter;
    const unhealthy = b.unhealthy;
    return !up ? REFUSED : unhealthy ? ANSWERED_500 : ANSWERED_OK;
  }

  /** How many instances run now (running().length without copying the fleet: simulations sample it). */
  runningCount(): number {
    return this.runningN;
  }

  running(): ObservedInstance[] {
    return [...this.instances.values()].filter((i) => i.state === "running").map(observed);
  }
}

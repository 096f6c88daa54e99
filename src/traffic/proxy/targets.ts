// The proxy's live view of its targets: which are eligible, their health,
// in-flight work, drain deadlines, keep-alive pools and counters.
//
// Lifecycle of one target (keyed by id; a new address for the same id is a new target):
//
//   table adds it ──▶ active (healthy until checks say otherwise)
//   table sets draining ──▶ no new requests; drainingSince = now; at
//                           drainingSince + drainTimeoutMs its in-flight requests are aborted
//   table drops it ──▶ "retired": listed as draining while requests are in flight,
//                      same deadline; disposed (agent closed) when the last one ends
//
// Health: new targets start healthy (the controller registers only instances
// it has already checked). Active probes every health.intervalMs fold into
// nextHealth; a failed connect marks a target unhealthy at once (passive) and
// the active probes bring it back.
//
// Picking: production requests follow RoutingTable.releaseWeights (a release,
// then a target, both by smooth weighted round robin; see router.ts); preview
// requests go round robin over the preview release's healthy active targets,
// whatever their weight. Counting: production requests count on the target and
// its release; preview requests only in the preview counters of the release.

import http from "node:http";
import {
  LATENCY_HISTOGRAM_SIZE,
  latencyBucket,
  type Counters,
  type RoutingTable,
  type Target,
  type TargetState,
  type TargetStatus,
} from "../router.js";
import { nextHealth, parseHostPort, probeHttp, type HealthState } from "../../health/probe.js";
import { IDLE_SINCE, TargetAgent } from "./agent.js";
import { groupByRelease, pickByRelease, type ReleaseGroup } from "./balancer.js";
import { EMPTY_TABLE } from "./table.js";

export interface Upstream {
  readonly id: string;
  release: string;
  readonly address: string;
  readonly host: string;
  readonly port: number;
  weight: number;
  state: TargetState;
  /** dropped from the table; kept only while requests are in flight */
  retired: boolean;
  health: HealthState;
  inflight: number;
  drainingSince?: number;
  readonly counters: Counters;
  /** production latency histogram of this target's requests (LATENCY_BUCKETS_MS), and their sum, for metrics */
  readonly latency: Float64Array;
  latencySumMs: number;
  /** upgraded connections (WebSockets) open to this target */
  tunnels: number;
  /** smooth weighted round robin score */
  currentWeight: number;
  /** the production counters of its release, looked up when the table sets the release (not per request) */
  releaseStats: ReleaseCounters;
  readonly agent: http.Agent;
  /**
   * abort functions of what is in flight outside `agent` (WebSockets, attempts on a fresh
   * connection), called at the drain deadline; requests on `agent` are aborted through it
   */
  readonly aborts: Set<() => void>;
  drainTimer?: NodeJS.Timeout;
  healthTimer?: NodeJS.Timeout;
}

export interface PoolOptions {
  log: (line: string) => void;
  now: () => number;
  /** keep-alive connections per target (bounded: a slow instance cannot eat every fd) */
  maxSocketsPerTarget: number;
  /**
   * idle keep-alive sockets are closed after this (by a sweep: the agents have no socket
   * timeout, which Node would clear and re-arm on every request; the forwarder sweeps its
   * requests in flight for the upstream timeout); below typical 5 s server keep-alive timeouts
   */
  idleSocketMs: number;
}

/** When a pooled socket went idle (see sweepIdleSockets). */
type PooledSocket = import("node:net").Socket & { [IDLE_SINCE]?: number };

const zero = (): Counters => ({ requests: 0, errors5xx: 0, connectFailures: 0 });

/** A release's counters; the histogram is a small typed array, added to in place per request. */
export interface ReleaseCounters {
  requests: number;
  errors5xx: number;
  connectFailures: number;
  readonly latency: Float64Array;
}

const zeroRelease = (): ReleaseCounters => ({
  requests: 0,
  errors5xx: 0,
  connectFailures: 0,
  latency: new Float64Array(LATENCY_HISTOGRAM_SIZE),
});

/** The error an attempt on a draining target fails with when the drain deadline cuts it. */
export class DrainDeadline extends Error {
  constructor() {
    super("drain deadline");
  }
}

/**
 * Fail every request `agent` is carrying or has queued with `error()`: a socket destroyed
 * with an error hands that error to the request on it ('error'), as `request.destroy(error)`
 * does to one still waiting for a socket.
 */
export function abortAgent(agent: http.Agent, error: () => Error): void {
  for (const name in agent.sockets) for (const s of [...(agent.sockets[name] ?? [])]) s.destroy(error());
  for (const name in agent.requests) for (const r of [...(agent.requests[name] ?? [])]) r.destroy(error());
}

/** Production traffic or the preview listener's. */
export type Lane = "production" | "preview";

export function isEligible(u: Upstream): boolean {
  return !u.retired && u.state === "active" && u.weight > 0 && u.health.healthy;
}

/** Preview ignores weight: a standby fleet at weight 0 is previewable. */
function isPreviewable(u: Upstream, release: string | undefined): boolean {
  return !u.retired && u.release === release && u.state === "active" && u.health.healthy;
}

export class TargetPool {
  private table: RoutingTable = EMPTY_TABLE;
  private live = new Map<string, Upstream>();
  private order: Upstream[] = [];
  private readonly retired = new Set<Upstream>();
  private readonly releases = new Map<string, ReleaseCounters>();
  private readonly previewReleases = new Map<string, ReleaseCounters>();
  private groups: ReleaseGroup<Upstream>[] | undefined;
  private previewCursor = 0;
  private closed = false;
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly opts: PoolOptions) {
    this.sweeper = setInterval(() => this.sweepIdleSockets(), Math.max(100, Math.min(1000, opts.idleSocketMs / 4)));
    this.sweeper.unref();
  }

  /** Close keep-alive sockets idle for idleSocketMs or more. */
  private sweepIdleSockets(): void {
    const now = Date.now();
    for (const list of [this.order, this.retired]) {
      for (const u of list) {
        const free = u.agent.freeSockets;
        for (const name in free) {
          for (const sock of [...(free[name] ?? [])] as PooledSocket[]) {
            if (now - (sock[IDLE_SINCE] ?? now) >= this.opts.idleSocketMs) sock.destroy();
          }
        }
      }
    }
  }

  get version(): number {
    return this.table.version;
  }

  /** the table's maintenance mode, when on */
  get maintenance(): RoutingTable["maintenance"] {
    return this.table.maintenance;
  }

  /** the table's preview release, if any */
  get previewRelease(): string | undefined {
    return this.table.preview;
  }

  /** Make `table` the routing table. The caller has checked it and its version. */
  apply(table: RoutingTable): void {
    const now = this.opts.now();
    // Set first: new targets schedule their first probe with the new health config.
    this.table = table;
    const next = new Map<string, Upstream>();
    for (const t of table.targets) {
      let u = this.live.get(t.id);
      if (u !== undefined && u.address !== t.address) u = undefined; // replaced: old one retires below
      if (u === undefined) {
        u = this.create(t, now);
      } else {
        u.release = t.release;
        u.weight = t.weight;
      }
      u.releaseStats = this.releaseCounters(u.release);
      if (t.state === "draining" && u.state !== "draining") {
        u.drainingSince = now;
        this.opts.log(`target ${u.id} (${u.address}) draining, ${u.inflight} in flight`);
      }
      if (t.state === "active" && u.state === "draining") {
        u.drainingSince = undefined;
        this.opts.log(`target ${u.id} (${u.address}) active again`);
      }
      u.state = t.state;
      next.set(t.id, u);
    }
    const previous = this.live;
    this.live = next;
    this.order = [...next.values()];
    this.groups = groupByRelease(table.releaseWeights, this.order, this.groups);
    for (const u of previous.values()) if (next.get(u.id) !== u) this.retire(u, now);
    // A new drainTimeoutMs applies to targets already draining too.
    for (const u of this.order) this.scheduleDrainDeadline(u);
    for (const u of this.retired) this.scheduleDrainDeadline(u);
  }

  /**
   * The next target for a new request, skipping `exclude` (targets already
   * tried). A retry picks by the same rule, so the split is over attempts.
   */
  pick(exclude?: ReadonlySet<Upstream>): Upstream | undefined {
    const usable = exclude && exclude.size > 0 ? (u: Upstream) => isEligible(u) && !exclude.has(u) : isEligible;
    return pickByRelease(this.groups, this.order, usable);
  }

  /** The next target for a preview request: round robin over the preview release's healthy active targets. */
  pickPreview(exclude?: ReadonlySet<Upstream>): Upstream | undefined {
    const release = this.table.preview;
    if (release === undefined) return undefined;
    const n = this.order.length;
    for (let i = 0; i < n; i++) {
      const at = (this.previewCursor + i) % n;
      const u = this.order[at]!;
      if (isPreviewable(u, release) && !exclude?.has(u)) {
        this.previewCursor = (at + 1) % n;
        return u;
      }
    }
    return undefined;
  }

  /** Whether `u` may still take a request in `lane` (for a last try on a fresh connection). */
  isUsable(u: Upstream, lane: Lane): boolean {
    return lane === "preview" ? isPreviewable(u, this.table.preview) : isEligible(u);
  }

  /**
   * Count a request on `u.agent` as in flight; endPooled(u) once (and only once) when it is over.
   * Nothing per request is kept in a collection: at the drain deadline the agent's sockets and
   * queued requests are what is aborted (abortAgent). Measured under wrk (--trace-gc-nvp):
   * keeping each attempt in a long-lived Set here and in the forwarder made V8 promote about
   * 3.5 KB per request to the old generation (mark-compacts every few seconds), against
   * about 0.2 KB without; the naive proxy ~0.1 KB.
   */
  beginPooled(u: Upstream): void {
    u.inflight++;
  }

  /** The end of what beginPooled(u) counted (the caller makes sure it comes once). */
  endPooled(u: Upstream): void {
    u.inflight--;
    if (u.retired && u.inflight === 0) this.dispose(u);
  }

  /** Count something in flight outside `u.agent` (a WebSocket, a fresh connection); `abort` is called at the drain deadline. */
  begin(u: Upstream, abort: () => void): () => void {
    u.inflight++;
    u.aborts.add(abort);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      u.inflight--;
      u.aborts.delete(abort);
      if (u.retired && u.inflight === 0) this.dispose(u);
    };
  }

  /** A client got `status` from (or, for 502/504, on behalf of) `u`. */
  countResponse(u: Upstream, status: number, lane: Lane): void {
    const r = lane === "production" ? u.releaseStats : this.releaseCounters(u.release, lane);
    r.requests++;
    if (status >= 500) r.errors5xx++;
    if (lane === "preview") return;
    u.counters.requests++;
    if (status >= 500) u.counters.errors5xx++;
  }

  /** An attempt on `u` could not connect or got no response. */
  countFailure(u: Upstream, lane: Lane): void {
    (lane === "production" ? u.releaseStats : this.releaseCounters(u.release, lane)).connectFailures++;
    if (lane === "production") u.counters.connectFailures++;
  }

  /** A counted request on `u` (its release; production also on the target) ended after `ms`. */
  observeLatency(u: Upstream, ms: number, lane: Lane): void {
    const bucket = latencyBucket(ms);
    (lane === "production" ? u.releaseStats : this.releaseCounters(u.release, lane)).latency[bucket]++;
    if (lane === "preview") return;
    u.latency[bucket]++;
    u.latencySumMs += ms;
  }

  /** Every target the proxy still knows: live ones in table order, then removed ones still draining. */
  allUpstreams(): readonly Upstream[] {
    return this.retired.size === 0 ? this.order : [...this.order, ...this.retired];
  }

  /** Passive health: a failed connect takes the target out until active checks pass again. */
  markDown(u: Upstream, reason: string): void {
    if (u.health.healthy) this.opts.log(`target ${u.id} (${u.address}) unhealthy: connect failed (${reason})`);
    u.health = {
      healthy: false,
      consecutiveOk: 0,
      consecutiveFail: Math.max(u.health.consecutiveFail + 1, this.table.health.unhealthyThreshold),
    };
  }

  targetStatuses(): TargetStatus[] {
    const out: TargetStatus[] = [];
    // Retired first: a caller indexing by id then sees the live target when an
    // id was removed and re-added while its old requests were still running.
    for (const u of [...this.retired, ...this.order]) {
      const s: TargetStatus = {
        id: u.id,
        release: u.release,
        address: u.address,
        // a removed target with requests still in flight is, for every purpose, draining
        state: u.retired ? "draining" : u.state,
        weight: u.retired ? 0 : u.weight,
        healthy: u.health.healthy,
        inRotation: isEligible(u),
        inflight: u.inflight,
        ...u.counters,
      };
      if (u.drainingSince !== undefined) s.drainingSince = u.drainingSince;
      out.push(s);
    }
    return out;
  }

  releaseStats(lane: Lane = "production"): Record<string, Counters> {
    const out: Record<string, Counters> = {};
    for (const [k, v] of lane === "preview" ? this.previewReleases : this.releases) {
      out[k] = { requests: v.requests, errors5xx: v.errors5xx, connectFailures: v.connectFailures, latency: Array.from(v.latency) };
    }
    return out;
  }

  /** Stop probes and timers and close every keep-alive pool (in-flight sockets included). */
  close(): void {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const u of [...this.order, ...this.retired]) this.dispose(u);
    this.live.clear();
    this.order = [];
  }

  private releaseCounters(release: string, lane: Lane = "production"): ReleaseCounters {
    const map = lane === "preview" ? this.previewReleases : this.releases;
    let c = map.get(release);
    if (c === undefined) {
      c = zeroRelease();
      map.set(release, c);
    }
    return c;
  }

  private create(t: Target, now: number): Upstream {
    const hp = parseHostPort(t.address);
    if (!hp) throw new Error(`unchecked target address ${t.address}`); // checkTable guarantees this
    const u: Upstream = {
      id: t.id,
      release: t.release,
      address: t.address,
      host: hp.host,
      port: hp.port,
      weight: t.weight,
      state: t.state,
      retired: false,
      health: { healthy: true, consecutiveOk: 0, consecutiveFail: 0 },
      inflight: 0,
      drainingSince: t.state === "draining" ? now : undefined,
      counters: zero(),
      latency: new Float64Array(LATENCY_HISTOGRAM_SIZE),
      latencySumMs: 0,
      tunnels: 0,
      currentWeight: 0,
      releaseStats: this.releaseCounters(t.release),
      agent: this.agent(`${hp.host}:${hp.port}:`),
      aborts: new Set(),
    };
    this.scheduleProbe(u);
    return u;
  }

  /** A keep-alive pool to one target; `name` is its one destination's key in the agent's maps. */
  private agent(name: string): http.Agent {
    const agent = new TargetAgent(name, {
      keepAlive: true,
      maxSockets: this.opts.maxSocketsPerTarget,
      maxFreeSockets: this.opts.maxSocketsPerTarget,
      // LIFO keeps the fewest sockets warm: the rest time out instead of going stale.
      scheduling: "lifo",
    });
    return agent;
  }

  private retire(u: Upstream, now: number): void {
    u.retired = true;
    clearTimeout(u.healthTimer);
    u.healthTimer = undefined;
    if (u.inflight === 0) {
      this.dispose(u);
      return;
    }
    if (u.drainingSince === undefined) u.drainingSince = now;
    this.retired.add(u);
    this.opts.log(`target ${u.id} (${u.address}) removed with ${u.inflight} in flight; draining`);
  }

  private dispose(u: Upstream): void {
    clearTimeout(u.healthTimer);
    clearTimeout(u.drainTimer);
    u.healthTimer = undefined;
    u.drainTimer = undefined;
    u.agent.destroy();
    this.retired.delete(u);
  }

  private scheduleDrainDeadline(u: Upstream): void {
    clearTimeout(u.drainTimer);
    u.drainTimer = undefined;
    if (u.drainingSince === undefined || this.closed) return;
    const delay = Math.max(0, u.drainingSince + this.table.drainTimeoutMs - this.opts.now());
    u.drainTimer = setTimeout(() => {
      u.drainTimer = undefined;
      if (u.inflight === 0) return;
      this.opts.log(`target ${u.id} (${u.address}) drain timeout: aborting ${u.inflight} in-flight request(s)`);
      abortAgent(u.agent, () => new DrainDeadline());
      for (const abort of [...u.aborts]) abort();
    }, delay);
  }

  private scheduleProbe(u: Upstream): void {
    if (this.closed || u.retired) return;
    u.healthTimer = setTimeout(() => void this.probe(u), this.table.health.intervalMs);
  }

  private async probe(u: Upstream): Promise<void> {
    u.healthTimer = undefined;
    const h = this.table.health;
    const r = await probeHttp(u.address, h.path, h.timeoutMs);
    if (this.closed || u.retired) return;
    const was = u.health.healthy;
    u.health = nextHealth(u.health, r.ok, h);
    if (was !== u.health.healthy) {
      this.opts.log(
        `target ${u.id} (${u.address}) ${u.health.healthy ? "healthy" : `unhealthy: ${r.ok ? "" : r.reason}`}`,
      );
    }
    this.scheduleProbe(u);
  }
}

// Durable state: releases, instances, rollouts, events, per-service facts and leases, in SQLite
// (the default, a file in KILN_HOME) or PostgreSQL (a state a team shares), behind one driver
// seam (driver.ts). Every multi-row change goes through `tx` so a crash leaves either all of it or none.

import { KilnError } from "../errors.js";
import { isPostgresLocation, type StateDriver, type Statement } from "./driver.js";
import { PgDriver } from "./pg-driver.js";
import { SqliteDriver } from "./sqlite-driver.js";
import type { RolloutProgress, Routing, StrategyName } from "../rollout/types.js";
import type { MaintenanceMode } from "../traffic/router.js";
import { normalizeReleaseSettings, type ReleaseSettings, type StoredReleaseSettings } from "./release-settings.js";

export type ReleaseStatus = "pending" | "deploying" | "live" | "superseded" | "failed" | "rolled-back";

export interface Release {
  id: string;
  seq: number;
  service: string;
  ref: string;
  version: string;
  digest: string;
  configHash: string;
  /** declared environment given at launch */
  env: Record<string, string>;
  /** the runtime part of kiln.yaml this release was deployed with (older releases' gaps filled on read) */
  spec: ReleaseSettings;
  strategy: StrategyName;
  status: ReleaseStatus;
  reason?: string;
  createdAt: number;
  liveAt?: number;
  finishedAt?: number;
  previous?: string;
  /** set when `kiln promote-release` deployed this release from another environment's live one */
  promotedFrom?: PromotedFrom;
}

/** Where a promoted release came from: the source environment's live release, as it was. */
export interface PromotedFrom {
  environment: string;
  /** the source fleet's service key, e.g. "hello-staging" */
  service: string;
  release: string;
  digest: string;
  configHash: string;
}

/** One `kiln drill` run against an environment's fleet, with the release it tested. */
export interface DrillRecord {
  id: string;
  service: string;
  environment?: string;
  digest: string;
  configHash: string;
  passed: boolean;
  startedAt: number;
  finishedAt: number;
  /** the drill's report (steps, durations, failed requests) as JSON */
  report: unknown;
}

export type InstanceRecordState = "launching" | "running" | "terminating" | "terminated";

export interface InstanceRecord {
  id: string;
  service: string;
  release: string;
  digest: string;
  address?: string;
  pid?: number;
  state: InstanceRecordState;
  routing: Routing;
  launchedAt: number;
  healthySince?: number;
  drainingSince?: number;
  terminatedAt?: number;
  reason?: string;
}

/** One instance's own values for a fleet-wide write (see updateInstancesEach). */
export interface InstanceWrite {
  id: string;
  patch: Partial<Omit<InstanceRecord, "id">>;
}

/** Where a reader of instanceChangesSince stands. */
export interface InstanceCursor {
  seq: number;
  dataVersion: number;
}

export type RolloutKind = "deploy" | "rollback";
export type RolloutState = "running" | "done" | "aborted" | "failed";

export interface RolloutRecord {
  id: number;
  service: string;
  kind: RolloutKind;
  strategy: StrategyName;
  target: string;
  previous?: string;
  state: RolloutState;
  reason?: string;
  startedAt: number;
  switchedAt?: number;
  finishedAt?: number;
  fast: boolean;
  promoteRequested: boolean;
  /** set by `kiln pause`: the rollout takes no step until `kiln resume` */
  paused: boolean;
  /** strategy progress persisted by `progress` steps */
  progress: RolloutProgress;
}

export interface EventRecord {
  id: number;
  at: number;
  level: "info" | "warn" | "error";
  service: string;
  release?: string;
  instance?: string;
  rollout?: number;
  message: string;
}

/** What changed a fleet, by whom and why: one row of the audit trail (`kiln history`). */
export interface ChangeRecord {
  /** per service, in order */
  seq: number;
  at: number;
  service: string;
  /** the environment (staging, production…); undefined where none is named */
  env?: string;
  /** user@host, the CI's identity, or KILN_ACTOR */
  actor: string;
  /** deploy, rollback, promote, scale, pause, resume, abort, maintenance, hook */
  action: string;
  /** the command line, e.g. `kiln deploy hello:2.0.0 --reason "fix login"` */
  command: string;
  reason?: string;
  /** the release the change targets, when there is one */
  release?: string;
  digest?: string;
  previousDigest?: string;
  /** accepted (the controller took it), ok, failed, refused */
  result: string;
  detail?: string;
}

/** What state records about one service beyond its releases, rollouts and instances. */
export interface ServiceFacts {
  /** the live release's id */
  live: string;
  /** the desired fleet size, as the last deploy or `kiln scale` set it */
  instances: number;
  /** epoch ms until which a blue-green deploy keeps the previous fleet warm on standby */
  standbyUntil: number;
  /** the version of the last routing table pushed to the router */
  tableVersion: number;
  /** `kiln maintenance on` (absent: off) */
  maintenance: MaintenanceMode;
}

/** How each fact is kept as text: verbatim, a whole number, or JSON. */
const FACT_ENCODING: { readonly [K in keyof ServiceFacts]: "text" | "integer" | "json" } = {
  live: "text",
  instances: "integer",
  standbyUntil: "integer",
  tableVersion: "integer",
  maintenance: "json",
};

/**
 * The schema, one step per version (the driver's schemaVersion = how many ran); exported so a
 * test can build an older schema. Written in SQLite's dialect, run unchanged on PostgreSQL
 * (pg-dialect.ts translates INTEGER, AUTOINCREMENT and the implicit rowid).
 */
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE releases (
     id TEXT PRIMARY KEY, seq INTEGER NOT NULL, service TEXT NOT NULL, ref TEXT NOT NULL, version TEXT NOT NULL,
     digest TEXT NOT NULL, config_hash TEXT NOT NULL, env TEXT NOT NULL, spec TEXT NOT NULL, strategy TEXT NOT NULL,
     status TEXT NOT NULL, reason TEXT, created_at INTEGER NOT NULL, live_at INTEGER, finished_at INTEGER, previous TEXT);
   CREATE UNIQUE INDEX releases_seq ON releases(service, seq);
   CREATE TABLE instances (
     id TEXT PRIMARY KEY, service TEXT NOT NULL, release TEXT NOT NULL, digest TEXT NOT NULL, address TEXT, pid INTEGER,
     state TEXT NOT NULL, routing TEXT NOT NULL, launched_at INTEGER NOT NULL, healthy_since INTEGER,
     draining_since INTEGER, terminated_at INTEGER, reason TEXT);
   CREATE INDEX instances_service ON instances(service, state);
   CREATE TABLE rollouts (
     id INTEGER PRIMARY KEY AUTOINCREMENT, service TEXT NOT NULL, kind TEXT NOT NULL, strategy TEXT NOT NULL,
     target TEXT NOT NULL, previous TEXT, state TEXT NOT NULL, reason TEXT, started_at INTEGER NOT NULL,
     switched_at INTEGER, finished_at INTEGER, fast INTEGER NOT NULL DEFAULT 0, promote_requested INTEGER NOT NULL DEFAULT 0);
   CREATE TABLE steps (
     id INTEGER PRIMARY KEY AUTOINCREMENT, rollout INTEGER, service TEXT NOT NULL, kind TEXT NOT NULL, payload TEXT NOT NULL,
     status TEXT NOT NULL, error TEXT, at INTEGER NOT NULL, done_at INTEGER);
   CREATE TABLE events (
     id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, level TEXT NOT NULL, service TEXT NOT NULL,
     release TEXT, instance TEXT, rollout INTEGER, message TEXT NOT NULL);
   CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);`,
  `ALTER TABLE rollouts ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;`,
  // strategy progress (canary step, checkpoints, bake/guard start…) as JSON: everything a strategy remembers between ticks
  `ALTER TABLE rollouts ADD COLUMN progress TEXT NOT NULL DEFAULT '{}';`,
  // every tick asks for the running rollout, a restart for the unfinished steps, the event stream for what is new:
  // none of them may scan a table that grows with every deploy
  `CREATE INDEX rollouts_active ON rollouts(service, state, id);
   CREATE INDEX steps_pending ON steps(service, status, id);
   CREATE INDEX events_service ON events(service, id);`,
  // The step journal was written and never read: what a restart recovers from is the intent
  // already committed in the rows it reads (instances launching/terminating, the rollout's
  // state, progress and switch time), each written before the provider or router is called.
  // A failed step leaves an error event.
  `DROP INDEX steps_pending;
   DROP TABLE steps;`,
  // Facts about a service (its live release, desired size, standby deadline, routing table
  // version, maintenance mode) keyed by (service, name) instead of loose, unscoped meta keys.
  // The unscoped ones belong to the live release's service, or, without one, to the only
  // service state knows of; with neither (no service, or several and none live) they name no
  // service and are dropped. `maintenance:<service>` keys carry their service. Leases stay in meta.
  `CREATE TABLE service_facts (service TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (service, name));
   INSERT INTO service_facts (service, name, value)
     SELECT o.service, m.key, m.value
     FROM meta m CROSS JOIN (
       SELECT service FROM releases WHERE id = (SELECT value FROM meta WHERE key = 'live')
       UNION
       SELECT MIN(service) FROM (SELECT service FROM releases UNION SELECT service FROM instances UNION SELECT service FROM rollouts) known
       WHERE NOT EXISTS (SELECT 1 FROM releases r JOIN meta l ON l.key = 'live' AND l.value = r.id)
       HAVING COUNT(DISTINCT service) = 1
     ) o
     WHERE m.key IN ('live', 'instances', 'standbyUntil', 'tableVersion');
   INSERT INTO service_facts (service, name, value)
     SELECT substr(key, 13), 'maintenance', value FROM meta WHERE key LIKE 'maintenance:%';
   DELETE FROM meta WHERE key IN ('live', 'instances', 'standbyUntil', 'tableVersion') OR key LIKE 'maintenance:%';`,
  // issue 14, environments: where `kiln promote-release` took a release from (JSON PromotedFrom; NULL for a deploy)
  `ALTER TABLE releases ADD COLUMN promoted_from TEXT;`,
  // issue 14, `kiln drill`: one row per drill, against the release (digest + config hash) it tested, so promotion can require one
  `CREATE TABLE drills (
     id TEXT PRIMARY KEY, service TEXT NOT NULL, environment TEXT, digest TEXT NOT NULL, config_hash TEXT NOT NULL,
     passed INTEGER NOT NULL, started_at BIGINT NOT NULL, finished_at BIGINT NOT NULL, report TEXT NOT NULL);
   CREATE INDEX drills_release ON drills(service, digest, config_hash);`,
  // The audit trail: who changed the fleet (deploy, rollback, promote, scale, pause, resume, abort,
  // maintenance, a hook's outcome), with which command and why. Append-only; seq is per service
  // (assigned in the insert, no AUTOINCREMENT) and `at` is epoch ms (BIGINT: PostgreSQL's INTEGER is 32-bit).
  `CREATE TABLE changes (
     service TEXT NOT NULL, seq INTEGER NOT NULL, at BIGINT NOT NULL, env TEXT, actor TEXT NOT NULL, action TEXT NOT NULL,
     command TEXT NOT NULL, reason TEXT, release_id TEXT, digest TEXT, previous_digest TEXT, result TEXT NOT NULL, detail TEXT,
     PRIMARY KEY (service, seq));`,
];

type Row = Record<string, unknown>;
const LIVE_STATES: ReadonlySet<string> = new Set(["launching", "running", "terminating"]);
const opt = <T>(v: unknown): T | undefined => (v === null || v === undefined ? undefined : (v as T));

function toRelease(r: Row): Release {
  return {
    id: r.id as string,
    seq: r.seq as number,
    service: r.service as string,
    ref: r.ref as string,
    version: r.version as string,
    digest: r.digest as string,
    configHash: r.config_hash as string,
    env: JSON.parse(r.env as string),
    spec: normalizeReleaseSettings(JSON.parse(r.spec as string) as StoredReleaseSettings),
    strategy: r.strategy as StrategyName,
    status: r.status as ReleaseStatus,
    reason: opt(r.reason),
    createdAt: r.created_at as number,
    liveAt: opt(r.live_at),
    finishedAt: opt(r.finished_at),
    previous: opt(r.previous),
    ...(typeof r.promoted_from === "string" ? { promotedFrom: JSON.parse(r.promoted_from) as PromotedFrom } : {}),
  };
}

function toInstance(r: Row): InstanceRecord {
  return {
    id: r.id as string,
    service: r.service as string,
    release: r.release as string,
    digest: r.digest as string,
    address: opt(r.address),
    pid: opt(r.pid),
    state: r.state as InstanceRecordState,
    routing: r.routing as Routing,
    launchedAt: r.launched_at as number,
    healthySince: opt(r.healthy_since),
    drainingSince: opt(r.draining_since),
    terminatedAt: opt(r.terminated_at),
    reason: opt(r.reason),
  };
}

/**
 * One object shape for every cached instance record (all fields, this order), whether it came
 * from a row, an insert or a patch: the controller reads these in loops over whole fleets,
 * and records of many shapes make every such read slow (V8's megamorphic property access).
 */
function canonInstance(i: InstanceRecord): InstanceRecord {
  return {
    id: i.id,
    service: i.service,
    release: i.release,
    digest: i.digest,
    address: i.address,
    pid: i.pid,
    state: i.state,
    routing: i.routing,
    launchedAt: i.launchedAt,
    healthySince: i.healthySince,
    drainingSince: i.drainingSince,
    terminatedAt: i.terminatedAt,
    reason: i.reason,
  };
}

/**
 * A patch of instance fields in one object shape whatever fields it names: which fields it
 * names (`has`, a bit per field, as `in` tells them: a field named with undefined clears it),
 * their values, and what the write means for the cache and the change feed. Made once per
 * write (a fleet-wide write patches thousands of records with it): the cache's per-record
 * code then reads one shape, not one per combination of fields.
 */
interface CanonPatch {
  readonly has: number;
  readonly service: string | undefined;
  readonly release: string | undefined;
  readonly digest: string | undefined;
  readonly address: string | undefined;
  readonly pid: number | undefined;
  readonly state: InstanceRecordState | undefined;
  readonly routing: Routing | undefined;
  readonly launchedAt: number | undefined;
  readonly healthySince: number | undefined;
  readonly drainingSince: number | undefined;
  readonly terminatedAt: number | undefined;
  readonly reason: string | undefined;
  /** may change what routing reads (state, routing, address, release, drain start) */
  readonly routingRelevant: boolean;
  /** may change a record's place in launch order, or its presence (state, launch time, service) */
  readonly reorders: boolean;
  /** names a live state: a record not cached may be coming back to life */
  readonly revives: boolean;
}

const HAS = {
  service: 1, release: 2, digest: 4, address: 8, pid: 16, state: 32, routing: 64, launchedAt: 128,
  healthySince: 256, drainingSince: 512, terminatedAt: 1024, reason: 2048,
} as const;

function canonPatch(p: Partial<Omit<InstanceRecord, "id">>): CanonPatch {
  let has = 0;
  for (const k in p) has |= HAS[k as keyof typeof HAS] ?? 0;
  return canonPatchAs(has, p);
}

/** The bits of HAS for a patch's field names (Object.keys of a plain patch, as `in` sees them). */
function hasOf(keys: readonly string[]): number {
  let has = 0;
  for (let k = 0; k < keys.length; k++) has |= HAS[keys[k] as keyof typeof HAS] ?? 0;
  return has;
}

/** canonPatch when the fields it names are known (`has`): rows of a fleet-wide write name the same fields. */
function canonPatchAs(has: number, p: Partial<Omit<InstanceRecord, "id">>): CanonPatch {
  return {
    has,
    service: p.service, release: p.release, digest: p.digest, address: p.address, pid: p.pid, state: p.state, routing: p.routing,
    launchedAt: p.launchedAt, healthySince: p.healthySince, drainingSince: p.drainingSince, terminatedAt: p.terminatedAt, reason: p.reason,
    routingRelevant: p.state !== undefined || p.routing !== undefined || p.address !== undefined || p.release !== undefined || (has & HAS.drainingSince) !== 0,
    reorders: p.state !== undefined || p.launchedAt !== undefined || p.service !== undefined,
    revives: p.state !== undefined && LIVE_STATES.has(p.state),
  };
}

/** canonInstance({ ...i, ...patch }) in one allocation (fleet-wide writes). */
function patchInstance(i: InstanceRecord, p: CanonPatch): InstanceRecord {
  const h = p.has;
  // Every field of both read, then chosen: a patch naming fields no earlier one named (each
  // step of a rollout writes its own) meets no read the compiled code has not seen.
  const service = p.service, release = p.release, digest = p.digest, address = p.address, pid = p.pid, state = p.state, routing = p.routing;
  const launchedAt = p.launchedAt, healthySince = p.healthySince, drainingSince = p.drainingSince, terminatedAt = p.terminatedAt, reason = p.reason;
  const iService = i.service, iRelease = i.release, iDigest = i.digest, iAddress = i.address, iPid = i.pid, iState = i.state, iRouting = i.routing;
  const iLaunchedAt = i.launchedAt, iHealthySince = i.healthySince, iDrainingSince = i.drainingSince, iTerminatedAt = i.terminatedAt, iReason = i.reason;
  return {
    id: i.id,
    service: h & HAS.service ? service! : iService,
    release: h & HAS.release ? release! : iRelease,
    digest: h & HAS.digest ? digest! : iDigest,
    address: h & HAS.address ? address : iAddress,
    pid: h & HAS.pid ? pid : iPid,
    state: h & HAS.state ? state! : iState,
    routing: h & HAS.routing ? routing! : iRouting,
    launchedAt: h & HAS.launchedAt ? launchedAt! : iLaunchedAt,
    healthySince: h & HAS.healthySince ? healthySince : iHealthySince,
    drainingSince: h & HAS.drainingSince ? drainingSince : iDrainingSince,
    terminatedAt: h & HAS.terminatedAt ? terminatedAt : iTerminatedAt,
    reason: h & HAS.reason ? reason : iReason,
  };
}

/**
 * One chunk's values for updateInstances: the patch's values, then `n` ids from `k`, padded
 * to `size` with the first. A function of its own, compiled once: the loop around it runs a
 * handful of times per write and never needs compiling, whatever the write.
 */
function chunkValues(set: readonly unknown[], ids: readonly string[], k: number, n: number, size: number): unknown[] {
  const values = new Array<unknown>(set.length + size);
  for (let j = 0; j < set.length; j++) values[j] = set[j];
  for (let j = 0; j < size; j++) values[set.length + j] = ids[k + (j < n ? j : 0)];
  return values;
}

/**
 * `list` ordered by launch time, ties in their order (Array.prototype.sort is stable). Usually
 * already in order: then no sort. A function of its own: the sort runs only in some phases of
 * a rollout, and the code around it is compiled once, not again when it first sorts.
 */
function inLaunchOrder(list: InstanceRecord[]): InstanceRecord[] {
  for (let k = 1; k < list.length; k++) if (list[k - 1]!.launchedAt > list[k]!.launchedAt) return list.sort(byLaunchTime);
  return list;
}
const byLaunchTime = (a: InstanceRecord, b: InstanceRecord): number => a.launchedAt - b.launchedAt;

function toRollout(r: Row): RolloutRecord {
  return {
    id: r.id as number,
    service: r.service as string,
    kind: r.kind as RolloutKind,
    strategy: r.strategy as StrategyName,
    target: r.target as string,
    previous: opt(r.previous),
    state: r.state as RolloutState,
    reason: opt(r.reason),
    startedAt: r.started_at as number,
    switchedAt: opt(r.switched_at),
    finishedAt: opt(r.finished_at),
    fast: r.fast === 1,
    promoteRequested: r.promote_requested === 1,
    paused: r.paused === 1,
    progress: r.progress ? (JSON.parse(r.progress as string) as RolloutProgress) : {},
  };
}

const instanceColumns: Record<keyof InstanceRecord, string> = {
  id: "id", service: "service", release: "release", digest: "digest", address: "address", pid: "pid", state: "state",
  routing: "routing", launchedAt: "launched_at", healthySince: "healthy_since", drainingSince: "draining_since",
  terminatedAt: "terminated_at", reason: "reason",
};
const releaseColumns: Partial<Record<keyof Release, string>> = {
  status: "status", reason: "reason", liveAt: "live_at", finishedAt: "finished_at",
};
const rolloutColumns: Partial<Record<keyof RolloutRecord, string>> = {
  state: "state", reason: "reason", switchedAt: "switched_at", finishedAt: "finished_at",
  promoteRequested: "promote_requested",
  paused: "paused",
  progress: "progress",
};

function setClause(patch: object, columns: Partial<Record<string, string>>): { sql: string; values: unknown[] } {
  const parts: string[] = [];
  const values: unknown[] = [];
  for (const [k, v] of Object.entries(patch)) {
    const col = columns[k];
    if (!col) throw new KilnError("KILN_E_INTERNAL", `cannot update field ${k}`);
    parts.push(`${col} = ?`);
    values.push(typeof v === "boolean" ? (v ? 1 : 0) : v !== null && typeof v === "object" ? JSON.stringify(v) : (v ?? null));
  }
  return { sql: parts.join(", "), values };
}

/** Rows per multi-row INSERT and ids per `IN (…)`: well under SQLite's and PostgreSQL's bound-parameter limits. */
const ROWS_PER_INSERT = 64;
const IDS_PER_UPDATE = 500;
/** Instance columns holding whole numbers (the rest are text). */
const INTEGER_INSTANCE_COLUMNS: ReadonlySet<string> = new Set(["pid", "launched_at", "healthy_since", "draining_since", "terminated_at"]);
/** The `IN (…)` list sizes prepared (a short last chunk is padded up to the next one). */
const IN_SIZES = [2, 8, 64, IDS_PER_UPDATE];
/** `(?, ?), (?, ?)` for `rows` rows of `columns` values. */
const rowsOf = (columns: number, rows: number) => Array.from({ length: rows }, () => `(${"?, ".repeat(columns - 1)}?)`).join(", ");
const INSERT_INSTANCE_INTO =
  "INSERT INTO instances (id, service, release, digest, address, pid, state, routing, launched_at, healthy_since, draining_since, terminated_at, reason) VALUES ";
const INSERT_INSTANCE = INSERT_INSTANCE_INTO + rowsOf(13, 1);
const INSERT_INSTANCES = INSERT_INSTANCE_INTO + rowsOf(13, ROWS_PER_INSERT);
const INSERT_EVENT_INTO = "INSERT INTO events (at, level, service, release, instance, rollout, message) VALUES ";
const INSERT_EVENT = INSERT_EVENT_INTO + rowsOf(7, 1);
const INSERT_EVENTS = INSERT_EVENT_INTO + rowsOf(7, ROWS_PER_INSERT);

/** A row's values written into `out` from `k` on (a multi-row statement's values are one array, filled in place). */
type RowWriter<T> = (out: unknown[], k: number, x: T) => void;

const INSTANCE_ROW_WIDTH = 13;
const instanceRowInto: RowWriter<InstanceRecord> = (out, k, i) => {
  out[k] = i.id;
  out[k + 1] = i.service;
  out[k + 2] = i.release;
  out[k + 3] = i.digest;
  out[k + 4] = i.address ?? null;
  out[k + 5] = i.pid ?? null;
  out[k + 6] = i.state;
  out[k + 7] = i.routing;
  out[k + 8] = i.launchedAt;
  out[k + 9] = i.healthySince ?? null;
  out[k + 10] = i.drainingSince ?? null;
  out[k + 11] = i.terminatedAt ?? null;
  out[k + 12] = i.reason ?? null;
};

const EVENT_ROW_WIDTH = 7;
const eventRowInto: RowWriter<Omit<EventRecord, "id">> = (out, k, e) => {
  out[k] = e.at;
  out[k + 1] = e.level;
  out[k + 2] = e.service;
  out[k + 3] = e.release ?? null;
  out[k + 4] = e.instance ?? null;
  out[k + 5] = e.rollout ?? null;
  out[k + 6] = e.message;
};

/**
 * ROWS_PER_INSERT rows of `list` from `k` written into `out` (one multi-row statement's values).
 * One per kind of row, each calling its own row writer: the loop that fills a statement
 * (40,000 events and 20,000 instances a 10,000-instance simulation) is then compiled for one
 * writer, not thrown away when the other kind of row first comes through.
 */
type ChunkWriter<T> = (out: unknown[], list: readonly T[], k: number) => void;

const instanceChunkInto: ChunkWriter<InstanceRecord> = (out, list, k) => {
  for (let j = 0; j < ROWS_PER_INSERT; j++) instanceRowInto(out, j * INSTANCE_ROW_WIDTH, list[k + j]!);
};

const eventChunkInto: ChunkWriter<Omit<EventRecord, "id">> = (out, list, k) => {
  for (let j = 0; j < ROWS_PER_INSERT; j++) eventRowInto(out, j * EVENT_ROW_WIDTH, list[k + j]!);
};

function rowOf<T>(width: number, into: RowWriter<T>, x: T): unknown[] {
  const out = new Array<unknown>(width);
  into(out, 0, x);
  return out;
}

/** The driver for a state location: a postgres:// URL is PostgreSQL, anything else an SQLite file. */
export function openStateDriver(location: string): StateDriver {
  return isPostgresLocation(location) ? new PgDriver(location) : new SqliteDriver(location);
}

export class StateDb {
  readonly db: StateDriver;
  /** nextChange's waiters: woken by the next rollout or event written through this object */
  private readonly changeWaiters = new Set<() => void>();

  /** `location`: an SQLite file (or ":memory:"), or a postgres:// URL (see state-location.ts). */
  constructor(location: string) {
    this.db = openStateDriver(location);
    try {
      this.migrate();
    } catch (e) {
      this.db.close();
      throw e;
    }
  }

  private migrate(): void {
    // The version is read again inside each step's transaction: on a shared state another
    // kiln may be running the same migrations at the same moment.
    for (let v = this.db.schemaVersion(); v < MIGRATIONS.length; ) {
      v = this.tx(() => {
        const at = this.db.schemaVersion();
        if (at >= MIGRATIONS.length || at !== v) return at;
        this.db.exec(MIGRATIONS[at]!);
        this.db.setSchemaVersion(at + 1);
        return at + 1;
      });
    }
  }

  private readonly statements = new Map<string, Statement>();

  /** Prepared once per SQL text: preparing is most of the cost of a small query. */
  private stmt(sql: string): Statement {
    let st = this.statements.get(sql);
    if (!st) {
      st = this.db.prepare(sql);
      this.statements.set(sql, st);
    }
    return st;
  }

  tx<T>(fn: () => T): T {
    try {
      return this.db.transaction(fn)();
    } catch (e) {
      // The transaction rolled back: what the caches saw of it never happened.
      this.liveCache.clear();
      this.instanceWrites++;
      this.instanceFloor = this.instanceSeq;
      this.rolloutWrites++;
      throw e;
    }
  }

  /**
   * Live instances per service, kept in memory: the controller reads them several times a
   * tick and is (under its lease) their only writer, so reads are served from here and each
   * write patches the cache. A commit by another connection changes SQLite's data_version,
   * which drops the cache.
   */
  private instanceWrites = 0;
  /**
   * Changes whenever an instance's routing-relevant fields (state, routing, address, release)
   * may have changed, here or (via data_version) in another connection. Health timestamps do not count.
   */
  instancesRevision(): string {
    return `${this.instanceWrites}:${this.dataVersion()}`;
  }
  /**
   * Instance change feed (see instanceChangesSince): ids written, newest last. Entry k is write
   * number logStart + k (numbers are consecutive); its id, service and whether it reorders are
   * kept in three arrays, not an object per write (a 10,000-instance rollout writes ~100,000).
   */
  private logIds: string[] = [];
  private logServices: string[] = [];
  private logReorders: boolean[] = [];
  private logStart = 1;
  private instanceSeq = 0;
  /** cursors below this cannot be answered from the log (compacted, a rolled-back transaction, an uncached write) */
  private instanceFloor = 0;
  private logInstance(service: string, id: string, reorders: boolean): void {
    ++this.instanceSeq;
    this.logIds.push(id);
    this.logServices.push(service);
    this.logReorders.push(reorders);
    // Compacted by half when it outgrows the fleets it describes (a reader more than one
    // fleet's worth of changes behind re-reads everything).
    // Checked every 1,024 entries: counting the fleets on every write is a pass over the caches.
    const n = this.logIds.length;
    if ((n & 1023) === 0 && n > 4 * this.liveCount() + 4096) {
      const drop = n >> 1;
      this.instanceFloor = this.logStart + drop - 1;
      this.logIds = this.logIds.slice(drop);
      this.logServices = this.logServices.slice(drop);
      this.logReorders = this.logReorders.slice(drop);
      this.logStart += drop;
    }
  }
  private liveCount(): number {
    let n = 0;
    for (const c of this.liveCache.values()) n += c.byId.size;
    return n;
  }
  /**
   * Ids of `service`'s instances written since `cursor` (from an earlier answer), so a reader
   * follows what changed instead of rescanning the fleet. `full`: the log cannot answer (first
   * call, compacted, a transaction rolled back, or another connection wrote): re-read everything.
   * `reordered`: an instance was added, left the live states or changed launch time.
   */
  instanceChangesSince(service: string, cursor: InstanceCursor | undefined): { cursor: InstanceCursor; full: boolean; reordered: boolean; ids: string[] } {
    const next = { seq: this.instanceSeq, dataVersion: this.dataVersion() };
    if (!cursor || cursor.seq < this.instanceFloor || cursor.dataVersion !== next.dataVersion) return { cursor: next, full: true, reordered: true, ids: [] };
    const ids = new Set<string>();
    let reordered = false;
    // The first entry written after the cursor (entry k is write logStart + k).
    const n = this.logIds.length;
    const lo = Math.min(n, Math.max(0, cursor.seq + 1 - this.logStart));
    for (let i = lo; i < n; i++) {
      if (this.logServices[i] !== service) continue;
      ids.add(this.logIds[i]!);
      if (this.logReorders[i]) reordered = true;
    }
    return { cursor: next, full: false, reordered, ids: [...ids] };
  }
  /**
   * Per service: the live records by id (in insertion order: rows as read, then inserts) and,
   * once asked for, the same records in launch order (dropped by any write to them and rebuilt
   * on the next read: a copy and an order check, cheaper than keeping an index to patch it).
   */
  private readonly liveCache = new Map<string, { dataVersion: number; byId: Map<string, InstanceRecord>; list?: InstanceRecord[] }>();
  private dataVersion(): number {
    return this.db.dataVersion();
  }

  close(): void {
    this.db.close();
  }

  // --- facts about a service (live release, desired size, standby deadline, table version, maintenance) ---
  getFact<K extends keyof ServiceFacts>(service: string, name: K): ServiceFacts[K] | undefined {
    const r = this.stmt("SELECT value FROM service_facts WHERE service = ? AND name = ?").get(service, name) as Row | undefined;
    if (!r) return undefined;
    const v = r.value as string;
    const enc = FACT_ENCODING[name];
    return (enc === "text" ? v : enc === "integer" ? Number(v) : JSON.parse(v)) as ServiceFacts[K];
  }
  /** Record a fact; undefined removes it. */
  setFact<K extends keyof ServiceFacts>(service: string, name: K, value: ServiceFacts[K] | undefined): void {
    if (value === undefined) {
      this.stmt("DELETE FROM service_facts WHERE service = ? AND name = ?").run(service, name);
      return;
    }
    const enc = FACT_ENCODING[name];
    if (enc === "integer" && !Number.isSafeInteger(value)) throw new KilnError("KILN_E_INTERNAL", `fact ${name} of ${service} must be a whole number, got ${String(value)}`);
    const text = enc === "text" ? String(value) : enc === "integer" ? String(value) : JSON.stringify(value);
    this.stmt("INSERT INTO service_facts (service, name, value) VALUES (?, ?, ?) ON CONFLICT (service, name) DO UPDATE SET value = excluded.value").run(service, name, text);
  }

  // --- meta: leases, keyed lease:<service> ---
  private getMeta(key: string): string | undefined {
    const r = this.stmt("SELECT value FROM meta WHERE key = ?").get(key) as Row | undefined;
    return r ? (r.value as string) : undefined;
  }
  private setMeta(key: string, value: string | undefined): void {
    if (value === undefined) this.stmt("DELETE FROM meta WHERE key = ?").run(key);
    else this.stmt("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value").run(key, value);
  }

  // --- lease: one controller acts on a service at a time ---
  /**
   * Take or renew the lease for `owner` until `now + ttlMs`. Refused (returns the holder)
   * while another owner's lease has not expired.
   */
  acquireLease(service: string, owner: string, now: number, ttlMs: number, takeFrom?: string): { ok: true } | { ok: false; holder: string; until: number } {
    return this.tx(() => {
      const raw = this.getMeta(`lease:${service}`);
      if (raw && (JSON.parse(raw) as { owner: string }).owner !== takeFrom) {
        const cur = JSON.parse(raw) as { owner: string; until: number };
        if (cur.owner !== owner && cur.until > now) return { ok: false as const, holder: cur.owner, until: cur.until };
      }
      this.setMeta(`lease:${service}`, JSON.stringify({ owner, until: now + ttlMs }));
      return { ok: true as const };
    });
  }
  /** The service's lease as recorded (it may have run out). */
  lease(service: string): { owner: string; until: number } | undefined {
    const raw = this.getMeta(`lease:${service}`);
    return raw ? (JSON.parse(raw) as { owner: string; until: number }) : undefined;
  }
  releaseLease(service: string, owner: string): void {
    this.tx(() => {
      const raw = this.getMeta(`lease:${service}`);
      if (raw && (JSON.parse(raw) as { owner: string }).owner === owner) this.setMeta(`lease:${service}`, undefined);
    });
  }

  // --- releases ---
  createRelease(r: Omit<Release, "id" | "seq">): Release {
    return this.tx(() => {
      const row = this.stmt("SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM releases WHERE service = ?").get(r.service) as Row;
      const seq = row.next as number;
      const id = `r${seq}`;
      this.stmt(
          `INSERT INTO releases (id, seq, service, ref, version, digest, config_hash, env, spec, strategy, status, reason, created_at, live_at, finished_at, previous, promoted_from)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(id, seq, r.service, r.ref, r.version, r.digest, r.configHash, JSON.stringify(r.env), JSON.stringify(r.spec), r.strategy, r.status, r.reason ?? null, r.createdAt, r.liveAt ?? null, r.finishedAt ?? null, r.previous ?? null, r.promotedFrom ? JSON.stringify(r.promotedFrom) : null);
      return { ...r, id, seq };
    });
  }
  getRelease(id: string): Release | undefined {
    const r = this.stmt("SELECT * FROM releases WHERE id = ?").get(id) as Row | undefined;
    return r ? toRelease(r) : undefined;
  }
  listReleases(service: string): Release[] {
    return (this.stmt("SELECT * FROM releases WHERE service = ? ORDER BY seq DESC").all(service) as Row[]).map(toRelease);
  }
  updateRelease(id: string, patch: Partial<Pick<Release, "status" | "reason" | "liveAt" | "finishedAt">>): void {
    const { sql, values } = setClause(patch, releaseColumns);
    this.stmt(`UPDATE releases SET ${sql} WHERE id = ?`).run(...values, id);
  }

  // --- instances ---
  /**
   * Many instances in one statement per chunk of rows (a 5,000-instance launch step is 79
   * statements, not 5,000), in one transaction.
   */
  insertInstances(list: readonly InstanceRecord[]): void {
    if (list.length === 0) return;
    this.tx(() => this.insertInstancesIn(list));
  }
  /**
   * insertInstances' work, inside its transaction. The fleet-wide writes do their work in
   * methods, not in the closure handed to tx: a closure made per call and run once is never
   * worth compiling, and the loops in the methods are compiled once for every call.
   */
  private insertInstancesIn(list: readonly InstanceRecord[]): void {
    this.insertRows(list, INSTANCE_ROW_WIDTH, instanceRowInto, instanceChunkInto, INSERT_INSTANCES, INSERT_INSTANCE);
    // In list order: the cache's order breaks launch-time ties as rowid does.
    for (let k = 0; k < list.length; k++) this.cacheInsert(list[k]!);
  }
  /** `list` as rows: ROWS_PER_INSERT to a statement (`many`), the rest one by one (`one`). */
  private insertRows<T>(list: readonly T[], width: number, into: RowWriter<T>, fill: ChunkWriter<T>, many: string, one: string): void {
    let k = 0;
    if (list.length >= ROWS_PER_INSERT) {
      // One values array for every chunk: the driver reads it during run().
      const values = new Array<unknown>(ROWS_PER_INSERT * width);
      const st = this.stmt(many);
      for (; k + ROWS_PER_INSERT <= list.length; k += ROWS_PER_INSERT) {
        fill(values, list, k);
        st.run(values);
      }
    }
    for (; k < list.length; k++) this.stmt(one).run(rowOf(width, into, list[k]!));
  }
  insertInstance(i: InstanceRecord): void {
    this.stmt(INSERT_INSTANCE).run(rowOf(INSTANCE_ROW_WIDTH, instanceRowInto, i));
    this.cacheInsert(i);
  }
  private cacheInsert(i: InstanceRecord): void {
    this.instanceWrites++;
    this.logInstance(i.service, i.id, true);
    const c = this.liveCache.get(i.service);
    if (c) {
      if (LIVE_STATES.has(i.state)) c.byId.set(i.id, canonInstance(i));
      c.list = undefined;
    }
  }
  /** One prepared statement per set of patched fields (a handful) and number of ids, bound positionally. */
  private instanceUpdate(keys: string[], patch: object, ids: number): Statement {
    // A fleet-wide step patches thousands of instances with the same fields: the last shape is kept.
    const last = this.lastUpdate;
    if (last && last.ids === ids && last.keys.length === keys.length && last.keys.every((k, i) => k === keys[i])) return last.st;
    const sig = `${keys.join(",")}|${ids}`;
    let st = this.instanceUpdates.get(sig);
    if (!st) {
      st = this.stmt(`UPDATE instances SET ${setClause(patch, instanceColumns).sql} WHERE id ${ids === 1 ? "= ?" : `IN (${"?, ".repeat(ids - 1)}?)`}`);
      this.instanceUpdates.set(sig, st);
    }
    this.lastUpdate = { keys, ids, st };
    return st;
  }
  private lastUpdate?: { keys: string[]; ids: number; st: Statement };
  private readonly instanceUpdates = new Map<string, Statement>();
  updateInstance(id: string, patch: Partial<Omit<InstanceRecord, "id">>): void {
    const keys = Object.keys(patch);
    if (keys.length === 0) return;
    const values: unknown[] = new Array(keys.length + 1);
    for (let k = 0; k < keys.length; k++) values[k] = (patch as Record<string, unknown>)[keys[k]!] ?? null;
    values[keys.length] = id;
    this.instanceUpdate(keys, patch, 1).run(values);
    this.cachePatch(id, canonPatch(patch));
  }
  /**
   * The same patch to many instances: one statement per chunk of ids, in one transaction (a
   * 5,000-instance drain is ten statements, not 5,000). The last chunk is padded by repeating
   * an id, so a handful of statement shapes serve every count.
   */
  updateInstances(ids: readonly string[], patch: Partial<Omit<InstanceRecord, "id">>): void {
    const keys = Object.keys(patch);
    if (keys.length === 0 || ids.length === 0) return;
    if (ids.length === 1) return this.updateInstance(ids[0]!, patch);
    const set = keys.map((k) => (patch as Record<string, unknown>)[k] ?? null);
    this.tx(() => this.updateInstancesIn(ids, keys, set, patch));
  }
  /** updateInstances' work, inside its transaction (see insertInstancesIn). */
  private updateInstancesIn(ids: readonly string[], keys: string[], set: unknown[], patch: Partial<Omit<InstanceRecord, "id">>): void {
    for (let k = 0; k < ids.length; k += IDS_PER_UPDATE) {
      // The patch's values, then the chunk's ids, padded with its first.
      const n = Math.min(IDS_PER_UPDATE, ids.length - k);
      const size = IN_SIZES.find((x) => x >= n)!;
      this.instanceUpdate(keys, patch, size).run(chunkValues(set, ids, k, n, size));
    }
    this.cachePatchAll(ids, canonPatch(patch));
  }
  /**
   * The same fields written to many instances with values of their own (a launch step's
   * addresses and pids): a chunk of rows per statement (`UPDATE … FROM (VALUES …)`, joined on
   * the id), in one transaction: a 5,000-instance launch is 79 statements, not 5,000 (on
   * PostgreSQL, 79 round trips). Rows whose patches name different fields go in separate
   * statements. Values are CAST to their column's type: PostgreSQL types bare parameters in
   * VALUES as text.
   */
  updateInstancesEach(rows: readonly InstanceWrite[]): void {
    if (rows.length === 0) return;
    const groups = new Map<string, { keys: string[]; rows: InstanceWrite[] }>();
    for (let k = 0; k < rows.length; k++) {
      const r = rows[k]!;
      const keys = Object.keys(r.patch);
      if (keys.length === 0) continue;
      const sig = keys.join(",");
      const g = groups.get(sig);
      if (g) g.rows.push(r);
      else groups.set(sig, { keys, rows: [r] });
    }
    this.tx(() => {
      for (const g of groups.values()) this.updateInstancesEachIn(g.keys, g.rows);
    });
  }
  /** updateInstancesEach's work for rows patching the same fields, inside its transaction (see insertInstancesIn). */
  private updateInstancesEachIn(keys: string[], list: readonly InstanceWrite[]): void {
    for (let k = 0; k < list.length; k += ROWS_PER_INSERT) {
      const chunk = list.slice(k, k + ROWS_PER_INSERT);
      const size = IN_SIZES.find((n) => n >= chunk.length)!;
      // Padded by repeating the first row: the same id with the same values, written once.
      while (chunk.length < size) chunk.push(chunk[0]!);
      const values: unknown[] = [];
      for (let j = 0; j < chunk.length; j++) {
        const r = chunk[j]!;
        values.push(r.id);
        for (let q = 0; q < keys.length; q++) values.push((r.patch as Record<string, unknown>)[keys[q]!] ?? null);
      }
      this.instanceUpdateEach(keys, size).run(values);
    }
    this.cachePatchEach(list, hasOf(keys));
  }
  /** cachePatch for each row (patches naming the fields `has` says), in one loop when one service is cached (see cachePatchAll). */
  private cachePatchEach(list: readonly InstanceWrite[], has: number): void {
    let k = 0;
    if (this.liveCache.size === 1 && !(has & HAS.service)) {
      for (const [service, c] of this.liveCache) {
        k = this.cacheEachRun(service, c.byId, list, has);
        if (k > 0) c.list = undefined;
      }
    }
    for (; k < list.length; k++) this.cachePatch(list[k]!.id, canonPatchAs(has, list[k]!.patch));
  }
  /** cachePatchEach's loop: how many rows (from the first) it applied; it stops at the first id not cached. */
  private cacheEachRun(service: string, byId: Map<string, InstanceRecord>, list: readonly InstanceWrite[], has: number): number {
    let k = 0;
    for (; k < list.length; k++) {
      const w = list[k]!;
      const rec = byId.get(w.id);
      if (rec === undefined) break;
      const p = canonPatchAs(has, w.patch);
      if (p.routingRelevant) this.instanceWrites++;
      this.logInstance(service, w.id, p.reorders);
      if (has & HAS.state && !LIVE_STATES.has(p.state as string)) byId.delete(w.id);
      else byId.set(w.id, patchInstance(rec, p));
    }
    return k;
  }
  private instanceUpdateEach(keys: string[], rows: number): Statement {
    const sig = `each|${keys.join(",")}|${rows}`;
    let st = this.instanceUpdates.get(sig);
    if (!st) {
      const cols = keys.map((k) => {
        const col = instanceColumns[k as keyof InstanceRecord];
        if (!col || k === "id") throw new KilnError("KILN_E_INTERNAL", `cannot update field ${k}`);
        return col;
      });
      // VALUES columns are named column1, column2… on both SQLite and PostgreSQL.
      const set = cols.map((col, j) => `${col} = v.column${j + 2}`).join(", ");
      const row = `(?${cols.map((col) => `, CAST(? AS ${INTEGER_INSTANCE_COLUMNS.has(col) ? "INTEGER" : "TEXT"})`).join("")})`;
      st = this.stmt(`UPDATE instances SET ${set} FROM (VALUES ${Array.from({ length: rows }, () => row).join(", ")}) AS v WHERE instances.id = v.column1`);
      this.instanceUpdates.set(sig, st);
    }
    return st;
  }
  /**
   * cachePatch for each of `ids`, one patch. The usual case (one service cached, every id in
   * it) runs in one of two loops of its own: records that stay live are patched, records the
   * patch takes out of the live states are dropped. Which one is known from the patch alone,
   * so neither loop meets the other's branch when a rollout moves from one phase to the next
   * (register, drain → stop): each is compiled once, for the one thing it does. The first id
   * not cached, and everything after it, go through cachePatch.
   */
  private cachePatchAll(ids: readonly string[], p: CanonPatch): void {
    let k = 0;
    if (this.liveCache.size === 1 && !(p.has & HAS.service)) {
      for (const [service, c] of this.liveCache) {
        k = p.has & HAS.state && !LIVE_STATES.has(p.state as string) ? this.cacheDropRun(service, c.byId, ids, p) : this.cacheKeepRun(service, c.byId, ids, p);
        if (k > 0) c.list = undefined;
      }
    }
    for (; k < ids.length; k++) this.cachePatch(ids[k]!, p);
  }
  /** cachePatchAll's loop for a patch that keeps records live: how many of `ids` (from the first) it patched. */
  private cacheKeepRun(service: string, byId: Map<string, InstanceRecord>, ids: readonly string[], p: CanonPatch): number {
    let k = 0;
    for (; k < ids.length; k++) {
      const id = ids[k]!;
      const rec = byId.get(id);
      if (rec === undefined) break;
      if (p.routingRelevant) this.instanceWrites++;
      this.logInstance(service, id, p.reorders);
      byId.set(id, patchInstance(rec, p));
    }
    return k;
  }
  /** cachePatchAll's loop for a patch that takes records out of the live states: how many of `ids` (from the first) it dropped. */
  private cacheDropRun(service: string, byId: Map<string, InstanceRecord>, ids: readonly string[], p: CanonPatch): number {
    let k = 0;
    for (; k < ids.length; k++) {
      const id = ids[k]!;
      if (!byId.has(id)) break;
      if (p.routingRelevant) this.instanceWrites++;
      this.logInstance(service, id, p.reorders);
      byId.delete(id);
    }
    return k;
  }
  /** Keep the live cache and the change feed in step with a write of `patch` to instance `id`. */
  private cachePatch(id: string, patch: CanonPatch): void {
    if (patch.routingRelevant) this.instanceWrites++;
    const reorders = patch.reorders;
    let logged = false;
    for (const [service, c] of this.liveCache) {
      const rec = c.byId.get(id);
      if (rec || patch.service === service) {
        this.logInstance(service, id, reorders);
        logged = true;
      }
      if (!rec) {
        // An instance coming back to a live state (never done by kiln) or moving service: reload.
        if (patch.revives || patch.service === service) this.liveCache.delete(service);
        continue;
      }
      const next = patchInstance(rec, patch);
      if (!LIVE_STATES.has(next.state) || next.service !== service) c.byId.delete(id);
      else c.byId.set(id, next);
      c.list = undefined;
    }
    // Not cached: no reader follows it from this connection's cache; a reader with a cursor
    // must still hear of it (the cache is rebuilt on a full read): the cursor it holds, the
    // current sequence number included, can no longer be answered from the log.
    if (!logged) this.instanceFloor = this.instanceSeq + 1;
  }
  getInstance(id: string): InstanceRecord | undefined {
    const r = this.stmt("SELECT * FROM instances WHERE id = ?").get(id) as Row | undefined;
    return r ? toInstance(r) : undefined;
  }
  /** Instances not yet terminated. */
  liveInstances(service: string): InstanceRecord[] {
    const dv = this.dataVersion();
    let c = this.liveCache.get(service);
    if (!c || c.dataVersion !== dv) {
      const rows = this.stmt("SELECT * FROM instances WHERE service = ? AND state IN ('launching', 'running', 'terminating') ORDER BY launched_at, rowid").all(service) as Row[];
      c = { dataVersion: dv, byId: new Map(rows.map((r) => [r.id as string, toInstance(r)])) };
      this.liveCache.set(service, c);
    }
    // Ordered by launch time, ties in insertion order (the Map's), as the query orders them.
    // Array.prototype.sort is stable: ties keep the Map's order. Usually already in order: no sort.
    if (!c.list) c.list = inLaunchOrder([...c.byId.values()]);
    return [...c.list];
  }
  /**
   * The live instances by id, checked against other connections' writes once: a reader that
   * looks up many ids in one pass (the controller's observation) takes this instead of
   * liveInstance per id. This connection's writes keep it current; do not modify it.
   */
  liveIndex(service: string): ReadonlyMap<string, InstanceRecord> {
    const dv = this.dataVersion();
    const c = this.liveCache.get(service);
    if (c && c.dataVersion === dv) return c.byId;
    this.liveInstances(service);
    return this.liveCache.get(service)!.byId;
  }
  /** One instance if it is live (launching, running or terminating), from the same cache as liveInstances. */
  liveInstance(service: string, id: string): InstanceRecord | undefined {
    const dv = this.dataVersion();
    const c = this.liveCache.get(service);
    if (c && c.dataVersion === dv) return c.byId.get(id);
    return this.liveInstances(service).find((i) => i.id === id);
  }
  // --- rollouts ---
  createRollout(r: Omit<RolloutRecord, "id" | "paused" | "progress">): RolloutRecord {
    const info = this.stmt(
        `INSERT INTO rollouts (service, kind, strategy, target, previous, state, reason, started_at, switched_at, finished_at, fast, promote_requested)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(r.service, r.kind, r.strategy, r.target, r.previous ?? null, r.state, r.reason ?? null, r.startedAt, r.switchedAt ?? null, r.finishedAt ?? null, r.fast ? 1 : 0, r.promoteRequested ? 1 : 0);
    this.rolloutWrites++;
    return { ...r, paused: false, progress: {}, id: Number(info.lastInsertRowid) };
  }
  getRollout(id: number): RolloutRecord | undefined {
    const r = this.stmt("SELECT * FROM rollouts WHERE id = ?").get(id) as Row | undefined;
    return r ? toRollout(r) : undefined;
  }
  /**
   * The running rollout, read several times a tick: kept until this connection writes a rollout
   * or another connection commits anything (data_version). Callers must not modify it.
   */
  activeRollout(service: string): RolloutRecord | undefined {
    const key = `${this.rolloutWrites}:${this.dataVersion()}`;
    const c = this.activeCache.get(service);
    if (c && c.key === key) return c.value;
    const r = this.stmt("SELECT * FROM rollouts WHERE service = ? AND state = 'running' ORDER BY id DESC LIMIT 1").get(service) as Row | undefined;
    const value = r ? toRollout(r) : undefined;
    this.activeCache.set(service, { key, value });
    return value;
  }
  private rolloutWrites = 0;
  private readonly activeCache = new Map<string, { key: string; value: RolloutRecord | undefined }>();
  listRollouts(service: string, limit = 50): RolloutRecord[] {
    return (this.stmt("SELECT * FROM rollouts WHERE service = ? ORDER BY id DESC LIMIT ?").all(service, limit) as Row[]).map(toRollout);
  }
  updateRollout(id: number, patch: Partial<Pick<RolloutRecord, "state" | "reason" | "switchedAt" | "finishedAt" | "promoteRequested" | "paused" | "progress">>): void {
    const { sql, values } = setClause(patch, rolloutColumns);
    this.stmt(`UPDATE rollouts SET ${sql} WHERE id = ?`).run(...values, id);
    this.rolloutWrites++;
    this.changed();
  }

  /**
   * Settles at the next rollout or event written through this object (a watcher's long poll then
   * reads them), or after `ms` at the latest: what another process writes is seen then.
   */
  nextChange(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.changeWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      this.changeWaiters.add(done);
    });
  }

  /** Wakes nextChange's waiters. Inside a transaction they run once it has ended (they are resumed from the microtask queue). */
  private changed(): void {
    if (this.changeWaiters.size === 0) return;
    for (const done of [...this.changeWaiters]) done();
  }

  // --- events ---
  addEvent(e: Omit<EventRecord, "id">): EventRecord {
    const info = this.stmt(INSERT_EVENT).run(rowOf(EVENT_ROW_WIDTH, eventRowInto, e));
    this.changed();
    return { ...e, id: Number(info.lastInsertRowid) };
  }
  /** Many events in one transaction, a chunk of rows per statement (one per instance of a 5,000-instance step). */
  addEvents(list: readonly Omit<EventRecord, "id">[]): void {
    if (list.length === 0) return;
    this.tx(() => this.insertRows(list, EVENT_ROW_WIDTH, eventRowInto, eventChunkInto, INSERT_EVENTS, INSERT_EVENT));
    this.changed();
  }
  /** The newest `limit` events, oldest first (`kiln events`). */
  recentEvents(service: string, limit: number): EventRecord[] {
    const newest = this.stmt("SELECT id FROM events WHERE service = ? ORDER BY id DESC LIMIT 1 OFFSET ?").get(service, Math.max(0, limit - 1)) as Row | undefined;
    return this.events(service, newest ? Number(newest.id) - 1 : 0, limit);
  }
  events(service: string, afterId = 0, limit = 500): EventRecord[] {
    return (this.stmt("SELECT * FROM events WHERE service = ? AND id > ? ORDER BY id LIMIT ?").all(service, afterId, limit) as Row[]).map((r) => ({
      id: r.id as number,
      at: r.at as number,
      level: r.level as EventRecord["level"],
      service: r.service as string,
      release: opt(r.release),
      instance: opt(r.instance),
      rollout: opt(r.rollout),
      message: r.message as string,
    }));
  }

  // --- the audit trail ---
  addChange(c: Omit<ChangeRecord, "seq">): ChangeRecord {
    return this.tx(() => {
      const row = this.stmt("SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM changes WHERE service = ?").get(c.service) as Row;
      const seq = Number(row.next);
      this.stmt(
        `INSERT INTO changes (service, seq, at, env, actor, action, command, reason, release_id, digest, previous_digest, result, detail)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(c.service, seq, c.at, c.env ?? null, c.actor, c.action, c.command, c.reason ?? null, c.release ?? null, c.digest ?? null, c.previousDigest ?? null, c.result, c.detail ?? null);
      return { ...c, seq };
    });
  }
  /** The newest `limit` changes, newest first. */
  changes(service: string, limit = 100): ChangeRecord[] {
    return (this.stmt("SELECT * FROM changes WHERE service = ? ORDER BY seq DESC LIMIT ?").all(service, limit) as Row[]).map((r) => ({
      seq: Number(r.seq),
      at: Number(r.at),
      service: r.service as string,
      env: opt(r.env),
      actor: r.actor as string,
      action: r.action as string,
      command: r.command as string,
      reason: opt(r.reason),
      release: opt(r.release_id),
      digest: opt(r.digest),
      previousDigest: opt(r.previous_digest),
      result: r.result as string,
      detail: opt(r.detail),
    }));
  }

  // --- read-only queries for `kiln doctor` and `kiln gc` ---
  /** How many migrations the state has had and the newest schema this kiln knows (a newer state was written by a newer kiln). */
  schemaVersion(): { version: number; latest: number } {
    return { version: this.db.schemaVersion(), latest: MIGRATIONS.length };
  }
  /** ["ok"] when the store is sound (SQLite: PRAGMA integrity_check), else one line per problem. */
  integrityCheck(): string[] {
    return this.db.integrityCheck();
  }
  /** Every service state knows of: releases, instances, rollouts, leases. */
  services(): string[] {
    const rows = this.stmt(
      `SELECT service FROM releases UNION SELECT service FROM instances UNION SELECT service FROM rollouts
       UNION SELECT substr(key, 7) AS service FROM meta WHERE key LIKE 'lease:%' ORDER BY service`,
    ).all() as Row[];
    return rows.map((r) => r.service as string);
  }
  addDrill(d: DrillRecord): void {
    this.stmt(
      `INSERT INTO drills (id, service, environment, digest, config_hash, passed, started_at, finished_at, report) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(d.id, d.service, d.environment ?? null, d.digest, d.configHash, d.passed ? 1 : 0, d.startedAt, d.finishedAt, JSON.stringify(d.report));
  }
  /** The service's drills, newest first; only those of one release (digest and config hash) when given. */
  drills(service: string, release?: { digest: string; configHash: string }, limit = 50): DrillRecord[] {
    const rows = (release
      ? this.stmt("SELECT * FROM drills WHERE service = ? AND digest = ? AND config_hash = ? ORDER BY finished_at DESC, id DESC LIMIT ?").all(service, release.digest, release.configHash, limit)
      : this.stmt("SELECT * FROM drills WHERE service = ? ORDER BY finished_at DESC, id DESC LIMIT ?").all(service, limit)) as Row[];
    return rows.map((r) => ({
      id: r.id as string,
      service: r.service as string,
      ...(r.environment === null ? {} : { environment: r.environment as string }),
      digest: r.digest as string,
      configHash: r.config_hash as string,
      passed: r.passed === 1,
      startedAt: Number(r.started_at),
      finishedAt: Number(r.finished_at),
      report: JSON.parse(r.report as string) as unknown,
    }));
  }
  /** Every lease recorded in meta; `until` is epoch ms. */
  leases(): { service: string; owner: string; until: number }[] {
    const rows = this.stmt("SELECT key, value FROM meta WHERE key LIKE 'lease:%' ORDER BY key").all() as Row[];
    const out: { service: string; owner: string; until: number }[] = [];
    for (const r of rows) {
      try {
        const v = JSON.parse(r.value as string) as { owner?: unknown; until?: unknown };
        out.push({ service: (r.key as string).slice("lease:".length), owner: String(v.owner ?? ""), until: Number(v.until ?? 0) });
      } catch {
        out.push({ service: (r.key as string).slice("lease:".length), owner: "", until: 0 });
      }
    }
    return out;
  }
}

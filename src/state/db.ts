// Durable state in SQLite: releases, instances, rollouts, events and per-service facts (meta).
// Every multi-row change goes through `tx` so a crash leaves either all of it or none.

import Database from "better-sqlite3";
import { chmodSync, existsSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { KilnError } from "../errors.js";
import type { RolloutProgress, Routing, StrategyName } from "../rollout/types.js";
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

/** The schema, one step per version (user_version = how many ran); exported so a test can build an older schema. */
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

/** canonInstance({ ...i, ...patch }) in one allocation (fleet-wide writes). */
function patchInstance(i: InstanceRecord, p: Partial<InstanceRecord>): InstanceRecord {
  return {
    id: i.id,
    service: "service" in p ? p.service! : i.service,
    release: "release" in p ? p.release! : i.release,
    digest: "digest" in p ? p.digest! : i.digest,
    address: "address" in p ? p.address : i.address,
    pid: "pid" in p ? p.pid : i.pid,
    state: "state" in p ? p.state! : i.state,
    routing: "routing" in p ? p.routing! : i.routing,
    launchedAt: "launchedAt" in p ? p.launchedAt! : i.launchedAt,
    healthySince: "healthySince" in p ? p.healthySince : i.healthySince,
    drainingSince: "drainingSince" in p ? p.drainingSince : i.drainingSince,
    terminatedAt: "terminatedAt" in p ? p.terminatedAt : i.terminatedAt,
    reason: "reason" in p ? p.reason : i.reason,
  };
}

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

export class StateDb {
  readonly db: Database.Database;

  constructor(file: string) {
    if (file !== ":memory:") mkdirSync(dirname(file), { recursive: true });
    try {
      this.db = new Database(file);
      this.db.pragma("journal_mode = WAL");
      this.db.pragma("synchronous = FULL");
      this.db.pragma("busy_timeout = 5000");
      // Releases hold declared env: the database and its WAL are the owner's alone, whatever the umask.
      if (file !== ":memory:") for (const f of [file, `${file}-wal`, `${file}-shm`]) if (existsSync(f)) chmodSync(f, 0o600);
    } catch (cause) {
      throw new KilnError("KILN_E_STATE", `cannot open state database ${file}`, { cause, hint: "check the file's permissions, or run `kiln doctor`" });
    }
    this.migrate();
  }

  private migrate(): void {
    const version = this.db.pragma("user_version", { simple: true }) as number;
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.tx(() => {
        this.db.exec(MIGRATIONS[v]!);
        this.db.pragma(`user_version = ${v + 1}`);
      });
    }
  }

  private readonly statements = new Map<string, Database.Statement>();

  /** Prepared once per SQL text: preparing is most of the cost of a small query. */
  private stmt(sql: string): Database.Statement {
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
  /** Instance change feed (see instanceChangesSince): ids written, newest last. */
  private instanceLog: { seq: number; service: string; id: string; reorders: boolean }[] = [];
  private instanceSeq = 0;
  /** cursors at or below this cannot be answered from the log (compacted, or a rolled-back transaction) */
  private instanceFloor = 0;
  private logInstance(service: string, id: string, reorders: boolean): void {
    this.instanceLog.push({ seq: ++this.instanceSeq, service, id, reorders });
    // Compacted by half when it outgrows the fleets it describes (a reader more than one
    // fleet's worth of changes behind re-reads everything).
    if (this.instanceLog.length > 4 * this.liveCount() + 4096) {
      const drop = this.instanceLog.length >> 1;
      this.instanceFloor = this.instanceLog[drop - 1]!.seq;
      this.instanceLog = this.instanceLog.slice(drop);
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
    let lo = 0, hi = this.instanceLog.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.instanceLog[mid]!.seq <= cursor.seq) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.instanceLog.length; i++) {
      const e = this.instanceLog[i]!;
      if (e.service !== service) continue;
      ids.add(e.id);
      if (e.reorders) reordered = true;
    }
    return { cursor: next, full: false, reordered, ids: [...ids] };
  }
  private readonly liveCache = new Map<string, { dataVersion: number; byId: Map<string, InstanceRecord>; list?: InstanceRecord[]; at?: Map<string, number> }>();
  private dataVersionStmt?: Database.Statement;
  private dataVersion(): number {
    this.dataVersionStmt ??= this.db.prepare("PRAGMA data_version").pluck();
    return this.dataVersionStmt.get() as number;
  }

  close(): void {
    this.db.close();
  }

  // --- meta ---
  getMeta(key: string): string | undefined {
    const r = this.stmt("SELECT value FROM meta WHERE key = ?").get(key) as Row | undefined;
    return r ? (r.value as string) : undefined;
  }
  setMeta(key: string, value: string | undefined): void {
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
      this.db
        .prepare(
          `INSERT INTO releases (id, seq, service, ref, version, digest, config_hash, env, spec, strategy, status, reason, created_at, live_at, finished_at, previous)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(id, seq, r.service, r.ref, r.version, r.digest, r.configHash, JSON.stringify(r.env), JSON.stringify(r.spec), r.strategy, r.status, r.reason ?? null, r.createdAt, r.liveAt ?? null, r.finishedAt ?? null, r.previous ?? null);
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
  insertInstance(i: InstanceRecord): void {
    this.stmt(
      `INSERT INTO instances (id, service, release, digest, address, pid, state, routing, launched_at, healthy_since, draining_since, terminated_at, reason)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(i.id, i.service, i.release, i.digest, i.address ?? null, i.pid ?? null, i.state, i.routing, i.launchedAt, i.healthySince ?? null, i.drainingSince ?? null, i.terminatedAt ?? null, i.reason ?? null);
    this.instanceWrites++;
    this.logInstance(i.service, i.id, true);
    const c = this.liveCache.get(i.service);
    if (c) {
      if (LIVE_STATES.has(i.state)) c.byId.set(i.id, canonInstance(i));
      c.list = undefined;
    }
  }
  private readonly instanceUpdates = new Map<string, Database.Statement>();
  updateInstance(id: string, patch: Partial<Omit<InstanceRecord, "id">>): void {
    // One prepared statement per set of patched fields (a handful), bound positionally.
    const keys = Object.keys(patch);
    if (keys.length === 0) return;
    const sig = keys.join(",");
    let st = this.instanceUpdates.get(sig);
    if (!st) {
      st = this.stmt(`UPDATE instances SET ${setClause(patch, instanceColumns).sql} WHERE id = ?`);
      this.instanceUpdates.set(sig, st);
    }
    const values: unknown[] = new Array(keys.length + 1);
    for (let k = 0; k < keys.length; k++) values[k] = (patch as Record<string, unknown>)[keys[k]!] ?? null;
    values[keys.length] = id;
    st.run(values);
    if (patch.state !== undefined || patch.routing !== undefined || patch.address !== undefined || patch.release !== undefined || "drainingSince" in patch) this.instanceWrites++;
    const reorders = patch.state !== undefined || patch.launchedAt !== undefined || patch.service !== undefined;
    let logged = false;
    for (const [service, c] of this.liveCache) {
      const rec = c.byId.get(id);
      if (rec || patch.service === service) {
        this.logInstance(service, id, reorders);
        logged = true;
      }
      if (!rec) {
        // An instance coming back to a live state (never done by kiln) or moving service: reload.
        if ((patch.state && LIVE_STATES.has(patch.state)) || patch.service === service) this.liveCache.delete(service);
        continue;
      }
      const next = patchInstance(rec, patch);
      if (!LIVE_STATES.has(next.state) || next.service !== service) c.byId.delete(id);
      else c.byId.set(id, next);
      if (reorders || !c.list || !c.at) c.list = undefined;
      else c.list[c.at.get(id)!] = next;
    }
    // Not cached: no reader follows it from this connection's cache; a reader with a cursor
    // must still hear of it (the cache is rebuilt on a full read).
    if (!logged) this.instanceFloor = this.instanceSeq;
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
    if (!c.list) {
      c.list = [...c.byId.values()].map((r, i) => ({ r, i })).sort((a, b) => a.r.launchedAt - b.r.launchedAt || a.i - b.i).map((x) => x.r);
      c.at = new Map(c.list.map((r, i) => [r.id, i]));
    }
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
    const info = this.db
      .prepare(
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
  }

  // --- events ---
  addEvent(e: Omit<EventRecord, "id">): EventRecord {
    const info = this.stmt("INSERT INTO events (at, level, service, release, instance, rollout, message) VALUES (?, ?, ?, ?, ?, ?, ?)")
      .run(e.at, e.level, e.service, e.release ?? null, e.instance ?? null, e.rollout ?? null, e.message);
    return { ...e, id: Number(info.lastInsertRowid) };
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
  /** user_version of the file and the newest schema this kiln knows (a newer file was written by a newer kiln). */
  schemaVersion(): { version: number; latest: number } {
    return { version: this.db.pragma("user_version", { simple: true }) as number, latest: MIGRATIONS.length };
  }
  /** PRAGMA integrity_check: ["ok"] when the file is sound, else one line per problem. */
  integrityCheck(): string[] {
    return (this.db.pragma("integrity_check") as Row[]).map((r) => String(Object.values(r)[0]));
  }
  /** Every service state knows of: releases, instances, rollouts, leases. */
  services(): string[] {
    const rows = this.stmt(
      `SELECT service FROM releases UNION SELECT service FROM instances UNION SELECT service FROM rollouts
       UNION SELECT substr(key, 7) AS service FROM meta WHERE key LIKE 'lease:%' ORDER BY service`,
    ).all() as Row[];
    return rows.map((r) => r.service as string);
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

// HAProxy as kiln's Router: the controller's side of a running HAProxy.
//
// setTable plans each backend's servers (plan.ts), applies the steps over the
// runtime API and counts the table as applied only once `show servers state`
// reads it back. Servers dropped from the table are drained, then put in
// maintenance, then deleted by a sweeper once HAProxy shows nothing attached
// to them for several reads in a row (or their drain deadline passed: then
// their sessions are shut down first).
//
// What lives where:
//   HAProxy   servers, weights, admin state, health, per-server counters (show stat)
//   stateFile table version, the applied table, drainingSince, servers being
//             retired, counters of deleted servers (per release), so a new
//             HaproxyRouter attached to a running HAProxy carries on
//   memory    per-release latency histograms from the request log: HAProxy
//             writes one line per request into an in-memory ring and kiln
//             streams it (`show events <ring> -w -n`); HAProxy has no
//             histogram. A restarted controller's histograms start empty;
//             its counters do not.
//
// Deviation from RoutingTable.releaseWeights (documented in docs): HAProxy has
// one weighted round robin per backend, so the release split is folded into
// server weights (planProduction). When some targets of a release go down,
// HAProxy spreads their share over every remaining server until kiln reweighs
// from the observed health (each stats() call and each sweep); fallback to an
// unlisted release when every listed one is down also waits for that reweigh.

import net from "node:net";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { KilnError } from "../../errors.js";
import {
  LATENCY_HISTOGRAM_SIZE,
  MAINTENANCE_DEFAULTS,
  type MaintenanceMode,
  latencyBucket,
  type Counters,
  type Router,
  type RouterStats,
  type HealthCheckConfig,
  type RoutingTable,
  type TargetStatus,
} from "../router.js";
import { LOG_RING, renderConfig, type ConfigInput, type ConfigServer, parseLogLine, parseServersState, parseStat, type StatRow } from "./config.js";
import {
  PREVIEW_BACKEND,
  PROD_BACKEND,
  commandsOf,
  isServerName,
  mismatches,
  planPreview,
  planProduction,
  planRetire,
  planSteps,
  type DesiredServer,
  type ObservedServer,
  type Retiring,
} from "./plan.js";
import { masterReload, runtimeCommand, workerPid } from "./runtime.js";
import { atomicWrite } from "./atomic-write.js";
import type { SharedEdge } from "./shared.js";
import { maintenanceResponse } from "../proxy/pages.js";

export interface HaproxyRouterOptions {
  adminSocket: string;
  stateFile: string;
  listen: string;
  previewListen?: string;
  /** HAProxy's master process id */
  pid: number;
  /** HAProxy logs each request to LOG_RING (config.ts); false = no latency histograms */
  requestLog: boolean;
  now?: () => number;
  log?: (line: string) => void;
  /** sweeper period (retirement, reweigh on health change); default 500 ms */
  sweepMs?: number;
  /**
   * One service of several on this listener (edge.hosts): the router drives only
   * its own backend; config writes and reloads go through the shared edge (under
   * its lock), counters carried over reloads come from the edge's offsets file.
   * `config` is unused then.
   */
  shared?: SharedEdge;
  /**
   * The config file and what it is rendered from (servers and health come
   * from the tables). With it, each applied table is also written to the file,
   * and a table whose health path or timeout changes reloads HAProxy through
   * the master CLI (seamless: old workers finish their connections).
   */
  config?: {
    file: string;
    base: Omit<ConfigInput, "servers" | "serverOptions" | "health">;
    /** the health check the file was just written with (fresh HAProxy); absent when attaching: the state file knows */
    health?: HealthCheckConfig;
    masterSocket: string;
  };
}

interface PersistedState {
  version: number;
  table?: RoutingTable;
  drainingSince: Record<string, number>;
  retiring: Retiring[];
  /** production counters of deleted servers, per release */
  retained: Record<string, Counters>;
  retainedPreview: Record<string, Counters>;
  /** counters of live servers from HAProxy workers replaced by a reload (a new worker counts from 0), by backend/server */
  offsets: Record<string, Counters>;
  /** the health check the config file was last written with */
  configHealth?: HealthCheckConfig;
}

const emptyState = (): PersistedState => ({ version: 0, drainingSince: {}, retiring: [], retained: {}, retainedPreview: {}, offsets: {} });
const zero = (): Counters => ({ requests: 0, errors5xx: 0, connectFailures: 0 });
const key = (backend: string, name: string) => `${backend}/${name}`;

const countersOf = (row: StatRow): Counters => ({ requests: row.stot, errors5xx: row.hrsp5xx, connectFailures: row.econ + row.eresp });

function addInto(into: Record<string, Counters>, release: string, c: Counters): void {
  const to = (into[release] ??= zero());
  to.requests += c.requests;
  to.errors5xx += c.errors5xx;
  to.connectFailures += c.connectFailures;
}

function sum(a: Counters, b: Counters | undefined): Counters {
  return { requests: a.requests + (b?.requests ?? 0), errors5xx: a.errors5xx + (b?.errors5xx ?? 0), connectFailures: a.connectFailures + (b?.connectFailures ?? 0) };
}

/** A health change the config file must carry (path and timeout live there; interval and thresholds are per server). */
const configHealthDiffers = (a: HealthCheckConfig | undefined, b: HealthCheckConfig) => a !== undefined && (a.path !== b.path || a.timeoutMs !== b.timeoutMs);

interface Observed {
  servers: Map<string, ObservedServer[]>;
  stat: Map<string, StatRow>;
}

export class HaproxyRouter implements Router {
  private state: PersistedState = emptyState();
  /** the maintenance mode HAProxy applies, as read back (stats().maintenance) */
  private maintenance?: MaintenanceMode;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly hist = new Map<string, number[]>();
  private readonly previewHist = new Map<string, number[]>();
  /** request log lines seen per backend/server since this router started */
  private readonly logged = new Map<string, number>();
  /** stot - scur of each server when this router first saw it (requests logged to an earlier router) */
  private readonly baseline = new Map<string, number>();
  private logStream?: net.Socket;
  private timer?: NodeJS.Timeout;
  private closed = false;
  private readonly now: () => number;
  private readonly logLine: (l: string) => void;
  private readonly backends: string[];
  /** this router's production backend: "kiln", or its service's backend on a shared listener */
  private readonly prod: string;
  /** its preview backend: "kiln_preview", or the service's preview backend on a shared listener */
  private readonly previewBe: string;
  /** shared listener: the worker last seen (a reload by another service's controller shows as a new pid) */
  private worker?: number;
  /** shared listener: counters of servers from workers replaced by reloads (the edge's offsets file) */
  private sharedOffsets: Record<string, Counters> = {};

  private constructor(private readonly o: HaproxyRouterOptions) {
    this.now = o.now ?? Date.now;
    this.logLine = o.log ?? (() => undefined);
    this.prod = o.shared?.backend ?? PROD_BACKEND;
    this.previewBe = o.shared?.previewBackend ?? PREVIEW_BACKEND;
    this.backends = o.previewListen !== undefined ? [this.prod, this.previewBe] : [this.prod];
  }

  private offset(k: string): Counters | undefined {
    return this.o.shared ? this.sharedOffsets[k] : this.state.offsets[k];
  }

  private get maintenanceMap(): string | undefined {
    return this.o.shared ? this.o.shared.maintenanceMap : this.o.config?.base.maintenanceMap;
  }

  /**
   * Attach to a running HAProxy: load the state file, start reading the
   * request log, and re-apply the saved table if HAProxy does not hold it
   * (a freshly started HAProxy has no servers).
   */
  static async open(o: HaproxyRouterOptions): Promise<HaproxyRouter> {
    const r = new HaproxyRouter(o);
    r.state = await loadState(o.stateFile);
    if (o.shared) {
      // A new state file: the backend's check is what its entry was rendered with.
      r.state.configHealth ??= await o.shared.entryHealth();
      r.sharedOffsets = await o.shared.readOffsets();
      r.worker = workerPid(await r.cmd("show info"));
    }
    if (o.config?.health) r.state.configHealth = o.config.health;
    if (o.requestLog) await r.streamLog();
    const obs = await r.observe();
    for (const row of obs.stat.values()) r.baseline.set(key(row.backend, row.name), row.stot - row.scur);
    if (r.state.table) {
      const t = r.state.table;
      const healthy = r.healthOf(obs);
      const off = mismatches(obs.servers.get(r.prod) ?? [], planProduction(t, healthy));
      if (off.length > 0 || (r.o.previewListen !== undefined && mismatches(obs.servers.get(r.previewBe) ?? [], planPreview(t)).length > 0)) {
        r.logLine(`haproxy router: re-applying routing table v${t.version} (${off.join("; ") || "preview"})`);
        await r.apply(t);
      }
    }
    r.timer = setInterval(() => void r.serial(() => r.sweep()).catch((e) => r.logLine(`haproxy router: sweep failed: ${(e as Error).message}`)), o.sweepMs ?? 500);
    r.timer.unref();
    return r;
  }

  /** Stop the sweeper and the log reader; HAProxy keeps serving. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.logStream?.destroy();
    this.logStream = undefined;
    await this.queue.catch(() => undefined);
    // an operation still queued at close may have reopened it (TypeScript cannot see that it ran)
    (this.logStream as net.Socket | undefined)?.destroy();
    this.logStream = undefined;
  }

  setTable(table: RoutingTable): Promise<void> {
    return this.serial(async () => {
      if (table.version < this.state.version) {
        throw new KilnError("KILN_E_CONTROLLER", `haproxy router refused routing table v${table.version}: older than the current version ${this.state.version}`, {
          hint: "the router holds a newer table; the controller's table version must only grow (was state restored from an old backup?)",
        });
      }
      const bad = table.targets.filter((t) => !isServerName(t.id)).map((t) => t.id);
      if (bad.length > 0) {
        throw new KilnError("KILN_E_CONTROLLER", `haproxy router cannot name servers after target ids ${bad.map((b) => JSON.stringify(b)).join(", ")}`, {
          hint: "instance ids must be 1–100 characters of letters, digits, '_', '.', ':' or '-'; this is a kiln bug",
        });
      }
      await this.apply(table);
    });
  }

  stats(): Promise<RouterStats> {
    return this.serial(async () => {
      let obs = await this.observe();
      if (await this.reweigh(obs)) obs = await this.observe();
      await this.awaitLog(obs);
      return this.render(obs);
    });
  }

  /** Seamless reload from the config file (see the private reload), then the table re-applied and read back. */
  reloadNow(): Promise<void> {
    return this.serial(async () => {
      if (this.o.shared) {
        await this.afterReload(await this.o.shared.reload());
        if (this.state.table) await this.apply(this.state.table);
        return;
      }
      if (!this.o.config) throw new KilnError("KILN_E_INTERNAL", "haproxy router: reload needs the config file option");
      await this.reload();
      if (this.state.table) await this.apply(this.state.table);
    });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async cmd(line: string): Promise<string> {
    return runtimeCommand(this.o.adminSocket, line);
  }

  private async observe(): Promise<Observed> {
    if (this.o.shared) {
      // Another service's controller may have reloaded HAProxy: the new worker counts from 0
      // (that controller moved the old counts into the offsets file) and has its own log ring.
      const pid = workerPid(await this.cmd("show info"));
      if (pid !== undefined && pid !== this.worker) await this.afterReload(pid);
    }
    const servers = new Map<string, ObservedServer[]>();
    const stat = new Map<string, StatRow>();
    for (const be of this.backends) {
      const rows = parseStat(await this.cmd(`show stat ${be} 4 -1`));
      for (const r of rows) stat.set(key(r.backend, r.name), r);
      const st = parseServersState(await this.cmd(`show servers state ${be}`));
      servers.set(
        be,
        st.map((s) => ({ ...s, scur: stat.get(key(be, s.name))?.scur ?? 0 })),
      );
    }
    return { servers, stat };
  }

  /** HAProxy's view of a production server's health: starting or running (an unknown server counts as healthy: it is about to be added). */
  private healthOf(obs: Observed): (id: string) => boolean {
    const m = new Map((obs.servers.get(this.prod) ?? []).map((s) => [s.name, s.opState === 1 || s.opState === 2]));
    return (id) => m.get(id) ?? true;
  }

  private desired(table: RoutingTable, obs: Observed): Map<string, DesiredServer[]> {
    const out = new Map<string, DesiredServer[]>([[this.prod, planProduction(table, this.healthOf(obs))]]);
    if (this.o.previewListen !== undefined) out.set(this.previewBe, planPreview(table));
    return out;
  }

  private async run(lines: string[]): Promise<string[]> {
    const problems: string[] = [];
    for (const l of lines) {
      const out = (await this.cmd(l)).trim();
      const ok = l.startsWith("add server") ? /New server registered/.test(out) : out === "";
      if (!ok) problems.push(`"${l}": ${out.split("\n")[0]}`);
    }
    return problems;
  }

  /**
   * Switch maintenance mode through the map the production frontend consults (see
   * config.ts): `on` is added last and removed first, so the page and Retry-After are
   * always there when it answers. Read back with `show map`; the file is rewritten too,
   * so a reload keeps the mode.
   */
  private async applyMaintenance(file: string, m: MaintenanceMode | undefined): Promise<string[]> {
    const want = new Map<string, string>();
    if (m !== undefined) {
      want.set("page", Buffer.from(maintenanceResponse(m).body).toString("base64"));
      want.set("retry", String(m.retryAfterS ?? MAINTENANCE_DEFAULTS.retryAfterS));
      want.set("on", "1");
    }
    const read = async () => {
      const cur = new Map<string, string>();
      for (const l of (await this.cmd(`show map ${file}`)).split("\n")) {
        const [, k, v] = l.trim().split(/\s+/);
        if (k !== undefined && v !== undefined) cur.set(k, v);
      }
      return cur;
    };
    const cur = await read();
    const lines: string[] = [];
    if (!want.has("on") && cur.has("on")) lines.push(`del map ${file} on`);
    for (const k of cur.keys()) if (k !== "on" && !want.has(k)) lines.push(`del map ${file} ${k}`);
    for (const [k, v] of want) if (cur.get(k) !== v) lines.push(cur.has(k) ? `set map ${file} ${k} ${v}` : `add map ${file} ${k} ${v}`);
    const problems = await this.run(lines);
    const back = await read();
    if (back.size !== want.size || [...want].some(([k, v]) => back.get(k) !== v)) problems.push(`maintenance map ${file} reads back ${JSON.stringify([...back.keys()])}`);
    else this.maintenance = m === undefined ? undefined : { ...m };
    await writeFile(file, [...want].map(([k, v]) => `${k} ${v}\n`).join(""));
    return problems;
  }

  private async apply(table: RoutingTable, attempt = 0): Promise<void> {
    // Shared listener: the worker this apply starts on (another service's reload may replace it meanwhile).
    const startWorker = this.worker;
    const opts = { intervalMs: Math.max(10, table.health.intervalMs), rise: Math.max(1, table.health.healthyThreshold), fall: Math.max(1, table.health.unhealthyThreshold) };
    const releaseOf = new Map<string, string>();
    for (const t of this.state.table?.targets ?? []) releaseOf.set(t.id, t.release);
    for (const t of table.targets) releaseOf.set(t.id, t.release);
    let problems: string[] = [];
    // Two passes: a second one repairs what a concurrent health change or a refused command left behind.
    for (let pass = 0; pass < 2; pass++) {
      const obs = await this.observe();
      const want = this.desired(table, obs);
      problems = [];
      for (const [be, desired] of want) {
        const retiring = new Set(this.state.retiring.filter((r) => r.backend === be).map((r) => r.name));
        const steps = planSteps(be, obs.servers.get(be) ?? [], desired).filter((s) => !(s.kind === "retire" && retiring.has(s.name)));
        for (const s of steps) {
          problems.push(...(await this.run(commandsOf(s, opts))));
          if (s.kind === "retire") {
            this.state.retiring.push({ backend: be, name: s.name, release: releaseOf.get(s.name) ?? "unknown", deadline: this.now() + table.drainTimeoutMs, phase: "drain", zeroReads: 0 });
          }
        }
        // A target back in the table is no longer being retired.
        const wanted = new Set(desired.map((d) => d.name));
        this.state.retiring = this.state.retiring.filter((r) => r.backend !== be || !wanted.has(r.name));
      }
      const back = await this.observe();
      const wantBack = this.desired(table, back);
      problems.push(...[...wantBack].flatMap(([be, d]) => mismatches(back.servers.get(be) ?? [], d).map((m) => `${be}/${m}`)));
      if (problems.length === 0) break;
    }
    const mfile = this.maintenanceMap;
    if (mfile !== undefined) problems.push(...(await this.applyMaintenance(mfile, table.maintenance)));
    if (problems.length > 0) {
      await saveState(this.o.stateFile, this.state);
      throw new KilnError("KILN_E_CONTROLLER", `HAProxy did not apply routing table v${table.version}: ${problems.slice(0, 5).join("; ")}`, {
        hint: "see haproxy.log in the router's run directory; the controller retries on its next tick",
      });
    }
    const now = this.now();
    const draining: Record<string, number> = {};
    for (const t of table.targets) if (t.state === "draining") draining[t.id] = this.state.drainingSince[t.id] ?? now;
    this.state = { ...this.state, version: table.version, table, drainingSince: draining };
    if (this.o.shared) {
      const reload = configHealthDiffers(this.state.configHealth, table.health);
      const all = await this.configServers(table);
      const servers = all[this.prod] ?? [];
      const previewServers = all[this.previewBe];
      const r = await this.o.shared.publish({ health: table.health, serverOptions: opts, servers, ...(previewServers !== undefined ? { previewServers } : {}) }, reload);
      this.state.configHealth = table.health;
      if (r.problems.length > 0) this.logLine(`haproxy router: shared listener: ${r.problems.slice(0, 3).join("; ")}`);
      if (r.reloaded !== undefined) {
        await this.afterReload(r.reloaded);
        await this.apply(table, attempt + 1);
        return;
      }
      // Another service reloaded HAProxy while this table was applied: the new worker started from
      // the config as it was before this publish, so apply again on it (any later reload already
      // renders this service's servers from the entry just published).
      const obs = await this.observe();
      if (this.worker !== startWorker || [...this.desired(table, obs)].some(([be, d]) => mismatches(obs.servers.get(be) ?? [], d).length > 0)) {
        if (attempt >= 3) throw new KilnError("KILN_E_CONTROLLER", `HAProxy was reloaded under routing table v${table.version} ${attempt} times in a row`, { hint: "the controller retries on its next tick" });
        this.logLine(`haproxy router: HAProxy was reloaded while table v${table.version} was applied: applying it again`);
        await this.apply(table, attempt + 1);
        return;
      }
    } else if (this.o.config) {
      const reload = configHealthDiffers(this.state.configHealth, table.health);
      await this.writeConfig(table, opts);
      if (reload) {
        await this.reload();
        await this.apply(table); // the new worker starts from the file: put drains back and read everything back
        return;
      }
    }
    await saveState(this.o.stateFile, this.state);
  }

  /** Write the config file as of `table` (servers as planned, retiring ones with weight 0, in maint when disabled). */
  private async writeConfig(table: RoutingTable, opts: { intervalMs: number; rise: number; fall: number }): Promise<void> {
    const c = this.o.config!;
    const servers = await this.configServers(table);
    const text = renderConfig({ ...c.base, health: table.health, servers, serverOptions: opts });
    await atomicWrite(c.file, text);
    this.state.configHealth = table.health;
  }

  /** Servers per backend as the config file should hold them after `table` (retiring ones with weight 0, disabled once in maint). */
  private async configServers(table: RoutingTable): Promise<Record<string, ConfigServer[]>> {
    const obs = await this.observe();
    const servers: Record<string, ConfigServer[]> = {};
    for (const [be, desired] of this.desired(table, obs)) {
      const list: ConfigServer[] = desired.map((d) => ({ name: d.name, address: d.address, weight: d.admin === "drain" ? 0 : d.weight, disabled: false }));
      for (const r of this.state.retiring.filter((x) => x.backend === be)) {
        const o = (obs.servers.get(be) ?? []).find((x) => x.name === r.name);
        if (o) list.push({ name: r.name, address: o.address, weight: 0, disabled: r.phase === "maint" });
      }
      servers[be] = list;
    }
    return servers;
  }

  /**
   * Seamless reload through the master CLI: the master re-executes with the
   * config file, the new worker takes over the listeners, old workers finish
   * their connections (bounded by hard-stop-after). A new worker counts from
   * 0, so live counters move into offsets first; the request log stream is
   * reopened on the new worker.
   */
  private async reload(): Promise<void> {
    const c = this.o.config!;
    const obs = await this.observe();
    for (const row of obs.stat.values()) {
      const k = key(row.backend, row.name);
      this.state.offsets[k] = sum(countersOf(row), this.state.offsets[k]);
    }
    await saveState(this.o.stateFile, this.state);
    const { oldPid, newPid } = await masterReload(this.o.adminSocket, c.masterSocket);
    this.logLine(`haproxy router: reloaded HAProxy (worker ${oldPid} → ${newPid})`);
    this.logged.clear();
    this.baseline.clear();
    await this.reopenLog();
  }

  /**
   * Shared listener: a new worker (this router's reload or another service's). Its counters
   * start from 0 (the old ones are in the offsets file now) and its log ring is its own.
   */
  private async afterReload(pid: number): Promise<void> {
    this.worker = pid;
    this.sharedOffsets = (await this.o.shared?.readOffsets()) ?? {};
    this.logged.clear();
    this.baseline.clear();
    await this.reopenLog();
  }

  private async reopenLog(): Promise<void> {
    if (this.o.requestLog) {
      const old = this.logStream;
      this.logStream = undefined;
      old?.destroy();
      await this.streamLog();
    }
  }

  /** Re-plan production weights from observed health; true when something was changed. */
  private async reweigh(obs: Observed): Promise<boolean> {
    const t = this.state.table;
    if (!t) return false;
    const desired = planProduction(t, this.healthOf(obs));
    const cur = new Map((obs.servers.get(this.prod) ?? []).map((s) => [s.name, s]));
    const changes = desired.filter((d) => cur.has(d.name) && cur.get(d.name)!.weight !== d.weight);
    for (const d of changes) await this.run([`set server ${this.prod}/${d.name} weight ${d.weight}`]);
    return changes.length > 0;
  }

  /** One sweeper pass: reweigh on health change, shut down sessions past a drain deadline, move retiring servers towards deletion. */
  private async sweep(): Promise<void> {
    if (this.closed || !this.state.table) return;
    const obs = await this.observe();
    await this.reweigh(obs);
    const now = this.now();
    for (const t of this.state.table.targets) {
      const since = this.state.drainingSince[t.id];
      const row = obs.stat.get(key(this.prod, t.id));
      if (since !== undefined && row && row.scur > 0 && now >= since + this.state.table.drainTimeoutMs) {
        await this.run([`shutdown sessions server ${this.prod}/${t.id}`]);
      }
    }
    if (this.state.retiring.length === 0) return;
    let changed = false;
    const keep: Retiring[] = [];
    for (const r of this.state.retiring) {
      const row = obs.stat.get(key(r.backend, r.name));
      if (!row) {
        changed = true; // gone already (deleted by an earlier router, or HAProxy restarted)
        continue;
      }
      const next = planRetire(r, { scur: row.scur, conns: row.conns }, now);
      r.zeroReads = next.zeroReads;
      if (next.action === "maint" || next.action === "maint-and-shutdown") {
        const lines = [`set server ${r.backend}/${r.name} state maint`];
        if (next.action === "maint-and-shutdown") lines.push(`shutdown sessions server ${r.backend}/${r.name}`);
        await this.run(lines);
        r.phase = "maint";
        changed = true;
      } else if (next.action === "delete") {
        const out = (await this.cmd(`del server ${r.backend}/${r.name}`)).trim();
        if (/deleted/i.test(out)) {
          const k = key(r.backend, r.name);
          addInto(r.backend === this.prod ? this.state.retained : this.state.retainedPreview, r.release, sum(countersOf(row), this.offset(k)));
          delete this.state.offsets[k];
          this.logged.delete(key(r.backend, r.name));
          this.baseline.delete(key(r.backend, r.name));
          changed = true;
          continue;
        }
        this.logLine(`haproxy router: del server ${r.backend}/${r.name} refused, will retry: ${out.split("\n")[0]}`);
        r.zeroReads = 0;
      }
      keep.push(r);
    }
    this.state.retiring = keep;
    if (changed) await saveState(this.o.stateFile, this.state);
  }

  /**
   * Stream the request log ring; resolves once the stream is open. Lines
   * written while no stream is open (controller down, reconnecting) are not
   * replayed (-n): the histograms count what this router saw.
   */
  private streamLog(): Promise<void> {
    // A reconnect timer may fire after close(): a stream opened then would never be closed.
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const sock = net.connect(this.o.adminSocket);
      // the stream follows the router's life, it does not keep a process alive on its own
      sock.unref();
      let buf = "";
      sock.setEncoding("utf8");
      sock.on("connect", () => {
        sock.write(`show events ${LOG_RING} -w -n\n`, () => resolve());
      });
      sock.on("data", (d: string) => {
        buf += d;
        let i: number;
        while ((i = buf.indexOf("\n")) >= 0) {
          this.onLog(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      });
      sock.on("error", (e) => {
        this.logLine(`haproxy router: request log stream: ${e.message}`);
        resolve();
      });
      sock.on("close", () => {
        if (this.logStream !== sock || this.closed) return;
        const t = setTimeout(() => void this.streamLog(), 200);
        t.unref();
      });
      this.logStream = sock;
    });
  }

  private onLog(text: string): void {
    const l = parseLogLine(text);
    if (!l || l.server.startsWith("<")) return;
    // Lines name the backend; another service's lines on a shared listener are not ours.
    const be = l.proxy;
    if (!this.backends.includes(be)) return;
    const k = key(be, l.server);
    this.logged.set(k, (this.logged.get(k) ?? 0) + 1);
    const release = this.releaseOfServer(be, l.server);
    if (release === undefined) return;
    const hists = be === this.previewBe ? this.previewHist : this.hist;
    let h = hists.get(release);
    if (!h) hists.set(release, (h = new Array<number>(LATENCY_HISTOGRAM_SIZE).fill(0)));
    h[latencyBucket(l.activeMs)]!++;
  }

  private releaseOfServer(backend: string, name: string): string | undefined {
    return this.state.table?.targets.find((t) => t.id === name)?.release ?? this.state.retiring.find((r) => r.backend === backend && r.name === name)?.release;
  }

  /**
   * Log lines arrive after the response, through the ring: wait (bounded) until every
   * completed request HAProxy counted has been logged, so a release's histogram
   * and its request count agree.
   */
  private async awaitLog(obs: Observed): Promise<void> {
    if (!this.o.requestLog) return;
    const behind = () =>
      [...obs.stat.values()].some((r) => {
        const k = key(r.backend, r.name);
        return (this.logged.get(k) ?? 0) < r.stot - r.scur - (this.baseline.get(k) ?? 0);
      });
    const until = Date.now() + 500;
    while (behind() && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    // Lines lost for good (stream reconnected, ring overrun) must not stall every later call: forgive them.
    for (const r of obs.stat.values()) {
      const k = key(r.backend, r.name);
      const missing = r.stot - r.scur - (this.baseline.get(k) ?? 0) - (this.logged.get(k) ?? 0);
      if (missing > 0) this.baseline.set(k, (this.baseline.get(k) ?? 0) + missing);
    }
  }

  private render(obs: Observed): RouterStats {
    const table = this.state.table;
    const prod = new Map((obs.servers.get(this.prod) ?? []).map((s) => [s.name, s]));
    const targets: TargetStatus[] = (table?.targets ?? []).map((t) => {
      const s = prod.get(t.id);
      const row = obs.stat.get(key(this.prod, t.id));
      const c = sum(row ? countersOf(row) : zero(), this.offset(key(this.prod, t.id)));
      const healthy = s !== undefined && (s.opState === 1 || s.opState === 2);
      const out: TargetStatus = {
        id: t.id,
        release: t.release,
        address: t.address,
        state: t.state,
        weight: t.weight,
        healthy,
        inRotation: t.state === "active" && healthy && t.weight > 0,
        inflight: row?.scur ?? 0,
        requests: c.requests,
        errors5xx: c.errors5xx,
        connectFailures: c.connectFailures,
      };
      const since = this.state.drainingSince[t.id];
      if (since !== undefined) out.drainingSince = since;
      return out;
    });
    const count = (backend: string, retained: Record<string, Counters>, hists: Map<string, number[]>, base: string[]) => {
      const out: Record<string, Counters> = {};
      for (const r of base) out[r] = zero();
      for (const [r, c] of Object.entries(retained)) out[r] = { ...c };
      for (const row of obs.stat.values()) {
        if (row.backend !== backend) continue;
        const release = this.releaseOfServer(backend, row.name);
        if (release !== undefined) addInto(out, release, sum(countersOf(row), this.offset(key(backend, row.name))));
      }
      for (const r of hists.keys()) out[r] ??= zero();
      if (this.o.requestLog) for (const [r, c] of Object.entries(out)) c.latency = [...(hists.get(r) ?? new Array<number>(LATENCY_HISTOGRAM_SIZE).fill(0))];
      return out;
    };
    const stats: RouterStats = {
      tableVersion: this.state.version,
      targets,
      releases: count(this.prod, this.state.retained, this.hist, (table?.targets ?? []).map((t) => t.release)),
      pid: this.o.pid,
      listen: this.o.listen,
      ...(this.maintenance !== undefined ? { maintenance: { ...this.maintenance } } : {}),
    };
    if (this.o.previewListen !== undefined) {
      stats.preview = { listen: this.o.previewListen };
      if (table?.preview !== undefined) stats.preview.release = table.preview;
      stats.previewCounters = count(this.previewBe, this.state.retainedPreview, this.previewHist, []);
    }
    return stats;
  }
}

async function loadState(file: string): Promise<PersistedState> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return emptyState();
    throw e;
  }
  try {
    return { ...emptyState(), ...(JSON.parse(text) as Partial<PersistedState>) };
  } catch (e) {
    throw new KilnError("KILN_E_STATE", `haproxy router state ${file} is not JSON: ${(e as Error).message}`, {
      hint: "move the file away; the controller re-sends its routing table on its next tick",
    });
  }
}

/** Atomic (see atomic-write.ts): a crash leaves the old state or the new one. */
async function saveState(file: string, state: PersistedState): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await atomicWrite(file, `${JSON.stringify(state)}\n`);
}

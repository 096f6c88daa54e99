// Several services on one HAProxy listener (edge.hosts): the files they share
// and the one lock that orders their writers. Each service's controller owns
// its backend; what every controller may change is the shared config file,
// the host map and the counters carried over a reload, always under the lock.
//
// The run directory (per user, named after the listen address, beside the
// built-in proxy's shared files) holds, besides process.ts's files:
//
//   services/NAME.json       one service: its route, backend, health check and the
//                            servers it last applied (the config is rendered from all)
//   hosts.map                host+path prefix → backend (edge-map.ts); HAProxy loads it
//                            at start, kiln changes it at runtime (add/set/del map)
//   maintenance.BACKEND.map  a service's maintenance mode (its backend's 503 rule)
//   state.NAME.json          a service's router state (router.ts)
//   offsets.json             counters of every server from workers replaced by reloads
//   edge.lock                held while one of the above is written or HAProxy reloads
//
// A backend cannot be added at runtime in HAProxy 2.6, so a service joining
// rewrites the config and reloads (seamless: the new worker takes the listeners,
// the old one finishes its connections); routes change at runtime through the
// map, so a service leaving needs no reload (its backend stays declared, unused,
// until the next one).

import { open, readFile, readdir, rm, unlink, writeFile, mkdir } from "node:fs/promises";
import { existsSync } from "node:fs";
import path from "node:path";
import { KilnError } from "../../errors.js";
import { pidAlive } from "../../home.js";
import type { Counters, HealthCheckConfig, ServiceRoute } from "../router.js";
import { NO_SERVICE_BACKEND, parseStat, renderConfig, type ConfigInput, type ConfigServer } from "./config.js";
import { PREVIEW_SUFFIX, backendOfService, parseShowMap, planHostMap, planMapSync, renderHostMap } from "./edge-map.js";
import type { ServerOptions } from "./plan.js";
import { masterReload, runtimeAlive, runtimeCommand } from "./runtime.js";
import { atomicWrite } from "./atomic-write.js";

export interface SharedEdgeFiles {
  runDir: string;
  config: string;
  admin: string;
  master: string;
  hostMap: string;
  offsets: string;
  lock: string;
  services: string;
}

export function sharedEdgeFiles(runDir: string): SharedEdgeFiles {
  return {
    runDir,
    config: path.join(runDir, "haproxy.cfg"),
    admin: path.join(runDir, "admin.sock"),
    master: path.join(runDir, "master.sock"),
    hostMap: path.join(runDir, "hosts.map"),
    offsets: path.join(runDir, "offsets.json"),
    lock: path.join(runDir, "edge.lock"),
    services: path.join(runDir, "services"),
  };
}

/** One service on the shared listener, as services/NAME.json holds it. */
export interface ServiceEntry {
  service: string;
  backend: string;
  route: ServiceRoute;
  health: HealthCheckConfig;
  serverOptions: ServerOptions;
  /** the servers its controller last applied, so a reload or a restarted HAProxy starts with them */
  servers: ConfigServer[];
  /** the same for its preview backend (a listener with a preview listener) */
  previewServers?: ConfigServer[];
}

/** The config keys every service shares (the first service's edge settings). */
export type SharedBase = Omit<ConfigInput, "servers" | "serverOptions" | "health" | "shared" | "maintenanceMap">;

const LOCK_WAIT_MS = 30_000;

/**
 * Run `fn` holding the run directory's lock: a file created exclusively (O_EXCL)
 * holding the owner's pid. A lock whose owner is gone (a controller killed
 * while holding it) is taken over at once; the pid test is exact for processes
 * of this machine, which is where a shared listener lives.
 */
export async function withEdgeLock<T>(files: SharedEdgeFiles, fn: () => Promise<T>): Promise<T> {
  await mkdir(files.runDir, { recursive: true, mode: 0o700 });
  const until = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      const fh = await open(files.lock, "wx", 0o600);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const owner = Number((await readFile(files.lock, "utf8").catch(() => "")).trim());
      // An empty file is a lock being written right now: only a named dead owner is taken over.
      if (Number.isInteger(owner) && owner > 0 && !pidAlive(owner)) {
        await unlink(files.lock).catch(() => undefined);
        continue;
      }
      if (Date.now() > until) {
        throw new KilnError("KILN_E_CONTROLLER", `the shared HAProxy listener's lock ${files.lock} is held by pid ${owner || "?"} for over ${LOCK_WAIT_MS / 1000} s`, {
          hint: "another kiln (up, down or a controller) is changing the shared listener; if that process is stuck, stop it",
        });
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  try {
    return await fn();
  } finally {
    await unlink(files.lock).catch(() => undefined);
  }
}

export async function readServices(files: SharedEdgeFiles): Promise<ServiceEntry[]> {
  const names = await readdir(files.services).catch(() => [] as string[]);
  const out: ServiceEntry[] = [];
  for (const n of names.filter((x) => x.endsWith(".json")).sort()) {
    const text = await readFile(path.join(files.services, n), "utf8").catch(() => undefined);
    if (text === undefined) continue;
    try {
      out.push(JSON.parse(text) as ServiceEntry);
    } catch {
      // a torn file cannot happen (atomic writes); anything else is not ours to route
    }
  }
  return out;
}

export function maintenanceMapOf(files: SharedEdgeFiles, backend: string): string {
  return path.join(files.runDir, `maintenance.${backend}.map`);
}

/** The generated config and host map from every service's entry; maintenance maps are created empty when missing (HAProxy must find them at start). */
export async function renderSharedFiles(files: SharedEdgeFiles, base: SharedBase, services: readonly ServiceEntry[], fallbackHealth: HealthCheckConfig): Promise<void> {
  for (const s of services) {
    const m = maintenanceMapOf(files, s.backend);
    if (!existsSync(m)) await writeFile(m, "", { mode: 0o600 });
  }
  const config = renderConfig({
    ...base,
    health: services[0]?.health ?? fallbackHealth,
    shared: {
      hostMap: files.hostMap,
      backends: services.map((s) => ({
        backend: s.backend,
        health: s.health,
        serverOptions: s.serverOptions,
        servers: s.servers,
        previewServers: s.previewServers ?? [],
        maintenanceMap: maintenanceMapOf(files, s.backend),
      })),
    },
  });
  await atomicWrite(files.hostMap, renderHostMap(hostMapOf(services)));
  await atomicWrite(files.config, config);
}

const hostMapOf = (services: readonly ServiceEntry[]) => planHostMap(services.map((s) => ({ backend: s.backend, ...s.route })));

/** Bring HAProxy's live host map to what the entries say, and read it back; returns problems (empty = applied). */
export async function syncHostMap(files: SharedEdgeFiles, services: readonly ServiceEntry[]): Promise<string[]> {
  const want = hostMapOf(services);
  const cur = parseShowMap(await runtimeCommand(files.admin, `show map ${files.hostMap}`));
  const problems: string[] = [];
  for (const line of planMapSync(files.hostMap, cur, want)) {
    const out = (await runtimeCommand(files.admin, line)).trim();
    if (out !== "") problems.push(`"${line}": ${out.split("\n")[0]}`);
  }
  const back = parseShowMap(await runtimeCommand(files.admin, `show map ${files.hostMap}`));
  if (back.size !== want.size || [...want].some(([k, v]) => back.get(k) !== v)) problems.push(`host map reads back ${JSON.stringify(Object.fromEntries(back))}`);
  return problems;
}

/** Backends the running worker declares (`show backend`). */
async function declaredBackends(files: SharedEdgeFiles): Promise<Set<string>> {
  const text = await runtimeCommand(files.admin, "show backend");
  return new Set(text.split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#")));
}

export async function readOffsets(files: SharedEdgeFiles): Promise<Record<string, Counters>> {
  return readFile(files.offsets, "utf8").then((t) => JSON.parse(t) as Record<string, Counters>, () => ({}));
}

/**
 * Reload (under the lock): every server's live counters move into offsets.json
 * first, since a new worker counts from 0 and every service's router reads its
 * totals as live + offset.
 */
async function reloadLocked(files: SharedEdgeFiles): Promise<number> {
  const offsets = await readOffsets(files);
  for (const row of parseStat(await runtimeCommand(files.admin, "show stat -1 4 -1"))) {
    if (row.backend === NO_SERVICE_BACKEND) continue;
    const k = `${row.backend}/${row.name}`;
    const o = offsets[k] ?? { requests: 0, errors5xx: 0, connectFailures: 0 };
    offsets[k] = { requests: o.requests + row.stot, errors5xx: o.errors5xx + row.hrsp5xx, connectFailures: o.connectFailures + row.econ + row.eresp };
  }
  await atomicWrite(files.offsets, `${JSON.stringify(offsets)}\n`);
  return (await masterReload(files.admin, files.master)).newPid;
}

/** One service's handle on the shared listener (its controller's router and `kiln up` use it). */
export class SharedEdge {
  readonly files: SharedEdgeFiles;
  readonly backend: string;

  constructor(
    runDir: string,
    readonly service: string,
    readonly route: ServiceRoute,
    private readonly base: SharedBase,
    private readonly fallbackHealth: HealthCheckConfig,
  ) {
    this.files = sharedEdgeFiles(runDir);
    this.backend = backendOfService(service);
  }

  /** the preview backend (declared when the listener has a preview listener) */
  get previewBackend(): string {
    return `${this.backend}${PREVIEW_SUFFIX}`;
  }

  get maintenanceMap(): string {
    return maintenanceMapOf(this.files, this.backend);
  }

  get stateFile(): string {
    return path.join(this.files.runDir, `state.${this.service}.json`);
  }

  /** The health check this service's entry (and so its backend in the config) was last written with. */
  async entryHealth(): Promise<HealthCheckConfig | undefined> {
    const file = path.join(this.files.services, `${this.service}.json`);
    return readFile(file, "utf8").then((t) => (JSON.parse(t) as ServiceEntry).health, () => undefined);
  }

  /** Render the shared files from every entry (for a fresh HAProxy; the caller holds the lock). */
  async renderAll(): Promise<void> {
    await this.writeOwnEntryIfMissing();
    await renderSharedFiles(this.files, this.base, await readServices(this.files), this.fallbackHealth);
  }

  private async writeOwnEntryIfMissing(): Promise<void> {
    const file = path.join(this.files.services, `${this.service}.json`);
    const cur = await readFile(file, "utf8").then((t) => JSON.parse(t) as ServiceEntry, () => undefined);
    const h = cur?.health ?? this.fallbackHealth;
    await this.writeEntry({
      health: h,
      serverOptions: cur?.serverOptions ?? { intervalMs: h.intervalMs, rise: h.healthyThreshold, fall: h.unhealthyThreshold },
      servers: cur?.servers ?? [],
      ...(cur?.previewServers !== undefined ? { previewServers: cur.previewServers } : {}),
    });
  }

  private async writeEntry(e: Pick<ServiceEntry, "health" | "serverOptions" | "servers" | "previewServers">): Promise<void> {
    await mkdir(this.files.services, { recursive: true, mode: 0o700 });
    const entry: ServiceEntry = { service: this.service, backend: this.backend, route: this.route, ...e };
    await atomicWrite(path.join(this.files.services, `${this.service}.json`), `${JSON.stringify(entry)}\n`);
  }

  /**
   * Join a running HAProxy: this service's entry (servers kept if it has one),
   * the files rendered, a reload when the worker lacks a backend an entry
   * names, then the host map synced at runtime. Returns the new worker's pid
   * when it reloaded.
   */
  async join(): Promise<{ reloaded?: number; problems: string[] }> {
    return withEdgeLock(this.files, async () => {
      await this.writeOwnEntryIfMissing();
      return this.publishLocked(false);
    });
  }

  /** After a table was applied: this service's servers and health into its entry and the config; reload when asked (health path/timeout changed). */
  async publish(e: Pick<ServiceEntry, "health" | "serverOptions" | "servers" | "previewServers">, reload: boolean): Promise<{ reloaded?: number; problems: string[] }> {
    return withEdgeLock(this.files, async () => {
      await this.writeEntry(e);
      return this.publishLocked(reload);
    });
  }

  private async publishLocked(reload: boolean): Promise<{ reloaded?: number; problems: string[] }> {
    const services = await readServices(this.files);
    await renderSharedFiles(this.files, this.base, services, this.fallbackHealth);
    if (!(await runtimeAlive(this.files.admin))) return { problems: [] }; // not running: the next start reads the files
    const declared = await declaredBackends(this.files);
    let reloaded: number | undefined;
    const preview = this.base.previewListen !== undefined;
    if (reload || services.some((s) => !declared.has(s.backend) || (preview && !declared.has(`${s.backend}${PREVIEW_SUFFIX}`)))) reloaded = await reloadLocked(this.files);
    return { ...(reloaded !== undefined ? { reloaded } : {}), problems: await syncHostMap(this.files, services) };
  }

  /** Reload now (the router's reloadNow): the new worker's pid. */
  async reload(): Promise<number> {
    return withEdgeLock(this.files, () => reloadLocked(this.files));
  }

  readOffsets(): Promise<Record<string, Counters>> {
    return readOffsets(this.files);
  }
}

/**
 * `kiln down` of one service: its entry, state and maintenance map go, its host
 * map keys are removed at runtime (its hosts get 404 at once, established
 * connections of the others are untouched, no reload). Returns how many
 * services remain: 0 means the caller stops HAProxy.
 */
export async function leaveSharedEdge(runDir: string, service: string, base: SharedBase): Promise<number> {
  const files = sharedEdgeFiles(runDir);
  if (!existsSync(files.services)) return 0;
  return withEdgeLock(files, async () => {
    const backend = backendOfService(service);
    await rm(path.join(files.services, `${service}.json`), { force: true });
    await rm(path.join(runDir, `state.${service}.json`), { force: true });
    const services = await readServices(files);
    if (services.length === 0) return 0;
    // The files for the next reload or start; the running worker keeps the backend, unused.
    await renderSharedFiles(files, base, services, services[0]!.health);
    await rm(maintenanceMapOf(files, backend), { force: true });
    if (await runtimeAlive(files.admin)) {
      const problems = await syncHostMap(files, services);
      if (problems.length > 0) throw new KilnError("KILN_E_CONTROLLER", `HAProxy did not drop ${service}'s routes: ${problems.slice(0, 3).join("; ")}`, { hint: `see ${path.join(runDir, "haproxy.log")}` });
    }
    return services.length;
  });
}

// Gather the facts about a home: state, leases, daemon pid files and sockets, what the
// provider runs, the proxy's routing table, the images the keep window needs, rootfs
// caches. Read-only (except that opening the state database applies pending migrations,
// as every kiln verb does).

import { existsSync, lstatSync, readdirSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { hostname } from "node:os";
import { join } from "node:path";
import { isKilnError } from "../errors.js";
import { homePaths, parsePidFile, pidAlive, readPidFile, type HomePaths } from "../home.js";
import { openStore, type Store } from "../image/index.js";
import type { Provider } from "../providers/provider.js";
import { createProvider, probeLocalNetwork, probeLocalSandbox } from "../providers/registry.js";
import { computeLimits, type StrategySettings } from "../rollout/capacity.js";
import { isPostgresLocation } from "../state/driver.js";
import { redactUrl } from "../state/pg-dialect.js";
import { StateDb, type RolloutRecord } from "../state/db.js";
import { ProxyClient } from "../traffic/proxy/client.js";
import { loadTableFile } from "../traffic/proxy/state-file.js";
import { keepWindow } from "./pins.js";
import type { DaemonFacts, Facts, LeaseFacts, ReleaseImageFacts, RootfsFacts, RoutesFacts, ServiceFacts, StateFacts } from "./types.js";

export interface InspectOptions {
  home: string;
  /** kiln.yaml environment whose state and daemons to examine (its own under env/NAME/) */
  environment?: string;
  /** releases per service whose images must be whole (default 5) */
  keep: number;
  /** services to check besides those state knows (the one kiln.yaml names) */
  services?: string[];
  /** provider name (default "local") */
  provider?: string;
  now?: number;
  /** for tests: a provider object instead of createProvider(name) */
  providerObject?: Provider;
  /** the state's location (see state/state-location.ts); default the SQLite file in the home */
  state?: string;
}

/** Something accepts connections on the unix socket (1 s at most). */
export function socketAnswers(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ path });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
}

async function daemonFacts(name: "controller" | "proxy", pidFile: string, socket: string): Promise<DaemonFacts> {
  const pidFileExists = existsSync(pidFile);
  let pid: number | undefined;
  if (pidFileExists) pid = parsePidFile(readFileSync(pidFile, "utf8"))?.pid;
  const socketExists = lstatSync(socket, { throwIfNoEntry: false }) !== undefined;
  return {
    name,
    pidFile,
    pidFileExists,
    pid,
    // alive only while the process's start time still matches the file's: a recycled pid is not the daemon
    pidAlive: pid !== undefined && readPidFile(pidFile) === pid,
    socket,
    socketExists,
    socketAnswers: socketExists && (await socketAnswers(socket)),
  };
}

function openState(location: string): { facts: StateFacts; db?: StateDb } {
  const shared = isPostgresLocation(location);
  const file = shared ? redactUrl(location) : location;
  const backend = shared ? ("postgres" as const) : ("sqlite" as const);
  if (!shared && !existsSync(location)) return { facts: { kind: "missing", backend, file } };
  let db: StateDb | undefined;
  try {
    db = new StateDb(location);
    return { facts: { kind: "ok", backend, file, integrity: db.integrityCheck(), schema: db.schemaVersion() }, db };
  } catch (e) {
    try {
      db?.close();
    } catch {
      // already unusable
    }
    const msg = isKilnError(e) && e.cause instanceof Error ? `${e.message}: ${e.cause.message}` : (e as Error).message;
    return { facts: { kind: "unreadable", backend, file, error: msg } };
  }
}

function leaseFacts(db: StateDb): LeaseFacts[] {
  const here = hostname();
  return db.leases().map((l) => {
    const at = l.owner.lastIndexOf("@");
    const pid = Number(l.owner.slice(0, at));
    const host = l.owner.slice(at + 1);
    return { ...l, ownerAlive: at > 0 && host === here ? pidAlive(pid) : undefined };
  });
}

/** The manifest and every blob it names are in the store; what is missing otherwise. */
export async function imageCompleteness(store: Store, digest: string): Promise<string[]> {
  if (!(await store.hasBlob(digest))) return [`manifest ${digest.slice(0, 19)}`];
  let m: { config?: { digest?: string }; layers?: { digest?: string }[] };
  try {
    m = await store.readJsonBlob(digest);
  } catch (e) {
    return [`manifest ${digest.slice(0, 19)} (${isKilnError(e) && e.code === "KILN_E_UNSAFE" ? "corrupt" : "unreadable"})`];
  }
  const missing: string[] = [];
  const refs = [m.config?.digest, ...(Array.isArray(m.layers) ? m.layers.map((l) => l?.digest) : [])];
  for (const d of refs) {
    if (typeof d !== "string" || !/^sha256:[0-9a-f]{64}$/.test(d)) continue;
    if (!(await store.hasBlob(d))) missing.push(`${d === m.config?.digest ? "config" : "layer"} ${d.slice(0, 19)}`);
  }
  return missing;
}

function deadlineOf(db: StateDb, r: RolloutRecord): number | undefined {
  // A release records kiln.yaml's strategy section; an older one may lack a strategy's part
  // (its fields then read as undefined and the deadline is unknown).
  const s = ((db.getRelease(r.target)?.spec as { strategy?: Partial<StrategySettings> } | undefined)?.strategy ?? {}) as Partial<StrategySettings>;
  const type = r.strategy === "blue-green" || r.strategy === "canary" ? r.strategy : "rolling";
  const d = computeLimits({ type, rolling: s.rolling ?? UNKNOWN, blueGreen: s.blueGreen ?? UNKNOWN, canary: s.canary ?? UNKNOWN } as StrategySettings).deadline;
  return typeof d === "number" && d > 0 ? d : undefined;
}
const UNKNOWN = {};

async function routesFacts(paths: HomePaths, proxyUp: boolean): Promise<RoutesFacts> {
  if (proxyUp) {
    try {
      const stats = await new ProxyClient(paths.proxyAdminSocket, { timeoutMs: 2000 }).stats();
      return { source: "proxy", file: paths.routesFile, targets: stats.targets.map((t) => ({ id: t.id, release: t.release, address: t.address, weight: t.weight, state: t.state })) };
    } catch {
      // fall back to the saved table
    }
  }
  const loaded = await loadTableFile(paths.routesFile).catch((e: Error) => ({ kind: "invalid" as const, problems: [e.message] }));
  if (loaded.kind === "missing") return { source: "none", file: paths.routesFile, targets: [] };
  if (loaded.kind === "invalid") return { source: "file", file: paths.routesFile, targets: [], problems: loaded.problems };
  return { source: "file", file: paths.routesFile, targets: loaded.table.targets };
}

export async function inspect(opts: InspectOptions): Promise<Facts> {
  const now = opts.now ?? Date.now();
  const paths = homePaths(opts.home, opts.environment);
  const store = openStore(opts.home);
  const { facts: state, db } = openState(opts.state ?? paths.stateDb);
  try {
    const leases = db && state.kind === "ok" ? leaseFacts(db) : [];
    const controller = await daemonFacts("controller", paths.controllerPid, paths.controllerSocket);
    const proxy = await daemonFacts("proxy", paths.proxyPid, paths.proxyAdminSocket);

    const names = [...new Set([...(db ? db.services() : []), ...(opts.services ?? [])])].sort();
    let provider: Provider | undefined = opts.providerObject;
    let providerError: string | undefined;
    let providerSkipped = false;
    if (!provider) {
      try {
        provider = createProvider(opts.provider ?? "local", { home: opts.home });
      } catch (e) {
        providerError = (e as Error).message;
        providerSkipped = isKilnError(e) && e.code === "KILN_E_USAGE";
      }
    }
    const services: ServiceFacts[] = [];
    for (const service of names) {
      const s: ServiceFacts = { service, recorded: db ? db.liveInstances(service) : [], releases: [], rollouts: [] };
      if (provider) {
        try {
          s.observed = await provider.list(service);
        } catch (e) {
          s.providerError = (e as Error).message;
        }
      } else {
        s.providerError = providerError;
        s.providerSkipped = providerSkipped;
      }
      if (db) {
        for (const w of keepWindow(db, service, opts.keep)) {
          const missing = await imageCompleteness(store, w.release.digest);
          const r: ReleaseImageFacts = { release: w.release, why: w.why, live: w.live, complete: missing.length === 0, missing };
          s.releases.push(r);
        }
        const active = db.activeRollout(service);
        if (active) s.rollouts.push({ rollout: active, deadlineMs: deadlineOf(db, active) });
      }
      services.push(s);
    }

    const routes = await routesFacts(paths, proxy.socketAnswers);

    const running = services.flatMap((s) => (s.observed ?? []).filter((o) => o.state === "running"));
    const rootfs: RootfsFacts[] = [];
    let entries: string[] = [];
    try {
      entries = readdirSync(store.rootfsRoot()).sort();
    } catch {
      // no rootfs cache yet
    }
    for (const name of entries) {
      if (!/^[0-9a-f]{64}$/.test(name)) continue;
      const digest = `sha256:${name}`;
      rootfs.push({
        digest,
        path: join(store.rootfsRoot(), name),
        inStore: await store.hasBlob(digest),
        usedBy: running.filter((o) => o.digest === digest).map((o) => o.id),
      });
    }
    const sandbox = (opts.provider ?? "local") === "local" ? { bwrap: probeLocalSandbox() ?? null, pasta: probeLocalNetwork() ?? null } : undefined;
    return { now, home: opts.home, keep: opts.keep, state, leases, controller, proxy, services, routes, rootfs, ...(sandbox ? { sandbox } : {}) };
  } finally {
    db?.close();
  }
}

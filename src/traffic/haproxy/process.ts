// Starting (or attaching to) HAProxy as kiln's data-plane process.
//
// HAProxy runs in master-worker mode (-W) with a master CLI socket (-S), in its
// own process group with its output in a file, so a controller crash leaves it
// serving. Everything lives in runDir:
//
//   haproxy.cfg   generated config (config.ts)      admin.sock   runtime API (level admin)
//   master.sock   master CLI (reload, show proc)    haproxy.pid  master pid
//   haproxy.log   HAProxy's own output              boot.json    addresses and options of this HAProxy
//   state.json    the router's state (router.ts)
//
// A second start with the same runDir while HAProxy lives attaches to it
// instead of starting another: the router reads the table version and the
// servers back from state.json and HAProxy.

import { spawn } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { KilnError } from "../../errors.js";
import { pidAlive } from "../../home.js";
import { freeLoopbackPort } from "../../net.js";
import type { HealthCheckConfig, ServiceRoute } from "../router.js";
import { loadCertificates, type CertificateFiles } from "../proxy/tls.js";
import { renderConfig, renderCrtList } from "./config.js";
import { HaproxyRouter } from "./router.js";
import { runtimeAlive } from "./runtime.js";
import { leaveSharedEdge, SharedEdge, withEdgeLock, sharedEdgeFiles, type SharedBase } from "./shared.js";

export const HAPROXY_BIN = "/usr/sbin/haproxy";

export interface StartHaproxyOptions {
  /** "127.0.0.1:PORT"; port 0 picks a free one */
  listen: string;
  previewListen?: string;
  runDir: string;
  /** health check path and timeout go into the config; interval/rise/fall are per server (from each table) */
  health?: HealthCheckConfig;
  /** upper bound on how long an old worker keeps connections after a reload; default 60 s */
  hardStopAfterMs?: number;
  /** default 4000 (10000 fails with "Cannot raise FD limit" on this kind of machine) */
  maxconn?: number;
  /** add x-kiln-instance to responses; default true (the built-in proxy does the same) */
  instanceHeader?: boolean;
  /** per-request log to kiln for latency histograms; default true */
  requestLog?: boolean;
  haproxyBin?: string;
  log?: (line: string) => void;
  /** the router's sweeper period (retirement, reweigh); default 500 ms */
  sweepMs?: number;
  /** TLS termination (absolute certificate and key paths; the first certificate is the default) */
  tls?: { listen: string; certificates: CertificateFiles[]; redirectHttp?: boolean };
  /** "host:port" serving HAProxy's Prometheus exporter at /metrics; default none */
  metricsListen?: string;
  /**
   * One of several services on this listener (kiln.yaml edge.hosts): runDir is the
   * listener's shared directory, this service gets its own backend routed by its
   * hosts (shared.ts); the first service's edge settings (TLS, metrics, instance
   * header) win; no preview listener.
   */
  shared?: { service: string; route: ServiceRoute };
}

export interface RunningHaproxyRouter {
  router: HaproxyRouter;
  /** HAProxy master pid */
  pid: number;
  listen: string;
  previewListen?: string;
  /** the TLS bind's "host:port", when TLS is on */
  tlsListen?: string;
  /** the Prometheus exporter's "host:port", when asked for */
  metricsListen?: string;
  /** true when an HAProxy already serving this runDir was adopted */
  attached: boolean;
  files: { config: string; admin: string; master: string; pid: string; log: string; state: string };
  /** seamless reload through the master CLI: new workers take the listeners, old ones finish their connections */
  reload(): Promise<void>;
  /** soft-stop HAProxy (established connections finish, bounded by hard-stop-after), then close the router */
  stop(timeoutMs?: number): Promise<void>;
  /** close the router only; HAProxy keeps serving (controller shutdown) */
  detach(): Promise<void>;
}

interface Boot {
  listen: string;
  previewListen?: string;
  requestLog: boolean;
  tls?: { listen: string; redirectHttp: boolean };
  metricsListen?: string;
  /** shared listener: the first service's setting, which every later one keeps */
  instanceHeader?: boolean;
}

export const DEFAULT_HEALTH: HealthCheckConfig = { path: "/healthz", intervalMs: 2000, timeoutMs: 1000, healthyThreshold: 2, unhealthyThreshold: 2 };

async function resolveListen(addr: string): Promise<string> {
  const i = addr.lastIndexOf(":");
  const host = addr.slice(0, i);
  const port = Number(addr.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535 || host === "") {
    throw new KilnError("KILN_E_USAGE", `haproxy router: listen address ${JSON.stringify(addr)} is not host:port`, { hint: "use e.g. 127.0.0.1:8080" });
  }
  return port === 0 ? `${host}:${await freeLoopbackPort()}` : addr;
}

function readPid(file: string): number | undefined {
  try {
    const n = Number(readFileSync(file, "utf8").trim().split("\n")[0]);
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

export async function startHaproxyRouter(o: StartHaproxyOptions): Promise<RunningHaproxyRouter> {
  await mkdir(o.runDir, { recursive: true });
  const files = {
    config: path.join(o.runDir, "haproxy.cfg"),
    admin: path.join(o.runDir, "admin.sock"),
    master: path.join(o.runDir, "master.sock"),
    pid: path.join(o.runDir, "haproxy.pid"),
    log: path.join(o.runDir, "haproxy.log"),
    // on a shared listener each service has its own router state
    state: path.join(o.runDir, o.shared !== undefined ? `state.${o.shared.service}.json` : "state.json"),
    boot: path.join(o.runDir, "boot.json"),
    maintenance: path.join(o.runDir, "maintenance.map"),
    crtList: path.join(o.runDir, "crt-list"),
  };
  const log = o.log ?? (() => undefined);

  const configBase = (b: Boot) => ({
    listen: b.listen,
    ...(b.previewListen !== undefined ? { previewListen: b.previewListen } : {}),
    adminSocket: files.admin,
    requestLog: b.requestLog,
    hardStopAfterMs: o.hardStopAfterMs ?? 60_000,
    maxconn: o.maxconn ?? 4000,
    instanceHeader: b.instanceHeader ?? o.instanceHeader ?? true,
    maintenanceMap: files.maintenance,
    ...(b.tls !== undefined ? { tls: { ...b.tls, crtList: files.crtList } } : {}),
    ...(b.metricsListen !== undefined ? { metricsListen: b.metricsListen } : {}),
  });
  // A fresh HAProxy starts with the saved table's health check, so re-applying that table needs no reload.
  const saved = await readFile(files.state, "utf8").then((t) => JSON.parse(t) as { table?: { health?: HealthCheckConfig } }, () => undefined);
  const startHealth = saved?.table?.health ?? o.health ?? DEFAULT_HEALTH;

  const shared = o.shared;
  const sharedBase = (b: Boot): SharedBase => {
    const { maintenanceMap: _m, ...rest } = configBase(b);
    return rest;
  };
  let edge: SharedEdge | undefined;

  let pid: number | undefined;
  let boot: Boot | undefined;
  let attached = false;
  // On a shared listener every controller and `kiln up` may start HAProxy: the lock makes one start it, the others attach.
  const unlock = shared !== undefined ? await holdLock(sharedEdgeFiles(o.runDir)) : () => undefined;
  try {
    pid = readPid(files.pid);
    if (pid !== undefined && pidAlive(pid) && (await runtimeAlive(files.admin))) {
      boot = JSON.parse(await readFile(files.boot, "utf8")) as Boot;
      const wanted = o.listen.endsWith(":0") ? boot.listen : o.listen;
      if (wanted !== boot.listen) {
        throw new KilnError("KILN_E_CONTROLLER", `HAProxy (pid ${pid}) in ${o.runDir} serves ${boot.listen}, not ${o.listen}`, {
          hint: `stop it first (kill -USR1 ${pid} finishes its connections), or keep listen at ${boot.listen}`,
        });
      }
      attached = true;
      log(`haproxy router: attached to HAProxy pid ${pid} on ${boot.listen}`);
    } else {
      boot = {
        listen: await resolveListen(o.listen),
        ...(o.previewListen !== undefined ? { previewListen: await resolveListen(o.previewListen) } : {}),
        ...(shared !== undefined ? { instanceHeader: o.instanceHeader ?? true } : {}),
        requestLog: o.requestLog !== false,
        ...(o.tls !== undefined ? { tls: { listen: await resolveListen(o.tls.listen), redirectHttp: o.tls.redirectHttp === true } } : {}),
        ...(o.metricsListen !== undefined ? { metricsListen: await resolveListen(o.metricsListen) } : {}),
      };
      if (o.tls !== undefined) await writeCertificates(o.runDir, files.crtList, o.tls.certificates);
      if (shared !== undefined) {
        edge = new SharedEdge(o.runDir, shared.service, shared.route, sharedBase(boot), startHealth);
        await edge.renderAll();
      } else {
        await writeFile(files.config, renderConfig({ ...configBase(boot), health: startHealth }));
        // HAProxy loads the map at start; the saved table's maintenance is re-applied through the runtime API.
        await writeFile(files.maintenance, "");
      }
      await writeFile(files.boot, `${JSON.stringify(boot)}\n`);
      pid = await spawnHaproxy(o.haproxyBin ?? HAPROXY_BIN, files, boot);
      log(`haproxy router: started HAProxy pid ${pid} on ${boot.listen}`);
    }
  } finally {
    unlock();
  }
  if (shared !== undefined) {
    // Attached or started: this service's backend declared (a reload when it was not) and its hosts in the map.
    edge ??= new SharedEdge(o.runDir, shared.service, shared.route, sharedBase(boot), startHealth);
    const j = await edge.join();
    if (j.problems.length > 0) {
      throw new KilnError("KILN_E_CONTROLLER", `HAProxy on ${boot.listen} did not take ${shared.service}'s routes: ${j.problems.slice(0, 3).join("; ")}`, { hint: `see ${files.log}` });
    }
    if (j.reloaded !== undefined) log(`haproxy router: reloaded HAProxy to add ${shared.service}'s backend ${edge.backend}`);
  }

  const router = await HaproxyRouter.open({
    adminSocket: files.admin,
    stateFile: files.state,
    listen: boot.listen,
    ...(boot.previewListen !== undefined ? { previewListen: boot.previewListen } : {}),
    requestLog: boot.requestLog,
    pid: pid!,
    log,
    ...(o.sweepMs !== undefined ? { sweepMs: o.sweepMs } : {}),
    ...(edge !== undefined
      ? { shared: edge }
      : { config: { file: files.config, base: configBase(boot), masterSocket: files.master, ...(attached ? {} : { health: startHealth }) } }),
  });
  const masterPid = pid;
  return {
    router,
    pid: masterPid,
    listen: boot.listen,
    ...(boot.previewListen !== undefined ? { previewListen: boot.previewListen } : {}),
    ...(boot.tls !== undefined ? { tlsListen: boot.tls.listen } : {}),
    ...(boot.metricsListen !== undefined ? { metricsListen: boot.metricsListen } : {}),
    attached,
    files,
    reload: () => router.reloadNow(),
    detach: () => router.close(),
    stop: async (timeoutMs = 10_000) => {
      await router.close();
      // Shared: this service leaves; HAProxy stops with the last one.
      if (shared !== undefined && (await leaveSharedEdge(o.runDir, shared.service, sharedBase(boot!))) > 0) return;
      // SIGUSR1: soft stop, the workers finish what they serve.
      try {
        process.kill(masterPid, "SIGUSR1");
      } catch {
        return;
      }
      const until = Date.now() + timeoutMs;
      while (pidAlive(masterPid) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      if (pidAlive(masterPid)) process.kill(masterPid, "SIGTERM");
    },
  };
}

/** Take the shared listener's lock and return its release (withEdgeLock for a region that spans a spawn). */
async function holdLock(files: ReturnType<typeof sharedEdgeFiles>): Promise<() => void> {
  let release!: () => void;
  let taken!: () => void;
  const held = new Promise<void>((r) => (taken = r));
  const done = new Promise<void>((r) => (release = r));
  const whole = withEdgeLock(files, async () => {
    taken();
    await done;
  });
  await Promise.race([held, whole]);
  return () => {
    release();
    void whole.catch(() => undefined);
  };
}

/**
 * `kiln down` of one service on a shared listener: its routes leave HAProxy
 * (shared.ts leaveSharedEdge); returns how many services remain (0: stop HAProxy).
 */
export async function leaveSharedHaproxy(runDir: string, service: string, o: { hardStopAfterMs?: number; maxconn?: number } = {}): Promise<number> {
  const boot = await readFile(path.join(runDir, "boot.json"), "utf8").then((t) => JSON.parse(t) as Boot, () => undefined);
  if (boot === undefined) return 0;
  const base: SharedBase = {
    listen: boot.listen,
    ...(boot.previewListen !== undefined ? { previewListen: boot.previewListen } : {}),
    adminSocket: path.join(runDir, "admin.sock"),
    requestLog: boot.requestLog,
    hardStopAfterMs: o.hardStopAfterMs ?? 60_000,
    maxconn: o.maxconn ?? 4000,
    instanceHeader: boot.instanceHeader ?? true,
    ...(boot.tls !== undefined ? { tls: { ...boot.tls, crtList: path.join(runDir, "crt-list") } } : {}),
    ...(boot.metricsListen !== undefined ? { metricsListen: boot.metricsListen } : {}),
  };
  return leaveSharedEdge(runDir, service, base);
}

/**
 * HAProxy reads a certificate and its key from one PEM file: kiln checks each
 * pair (loadCertificates names the file at fault) and writes the combined
 * files, readable by this user only, and the crt-list naming them in order.
 */
async function writeCertificates(runDir: string, crtList: string, certificates: readonly CertificateFiles[]): Promise<void> {
  const loaded = loadCertificates(certificates);
  const dir = path.join(runDir, "certs");
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const pems: string[] = [];
  for (const [i, c] of loaded.entries()) {
    const file = path.join(dir, `${i}.pem`);
    const cert = c.certPem.toString("utf8");
    await writeFile(file, `${cert}${cert.endsWith("\n") ? "" : "\n"}${c.keyPem.toString("utf8")}`, { mode: 0o600 });
    pems.push(file);
  }
  await writeFile(crtList, renderCrtList(pems));
}

async function spawnHaproxy(bin: string, files: { config: string; admin: string; master: string; pid: string; log: string }, boot: Boot): Promise<number> {
  const out = openSync(files.log, "a");
  const child = spawn(bin, ["-W", "-S", `${files.master},mode,600`, "-f", files.config, "-p", files.pid], {
    detached: true,
    stdio: ["ignore", out, out],
  });
  closeSync(out);
  let exited: number | null | undefined;
  let spawnError: NodeJS.ErrnoException | undefined;
  child.once("exit", (code) => (exited = code));
  child.once("error", (e: NodeJS.ErrnoException) => {
    spawnError = e;
    exited = -1;
  });
  child.unref();
  const until = Date.now() + 10_000;
  while (Date.now() < until) {
    if (exited !== undefined) break;
    if (await runtimeAlive(files.admin)) return child.pid!;
    await new Promise((r) => setTimeout(r, 25));
  }
  if (spawnError) {
    throw new KilnError("KILN_E_CONTROLLER", `cannot run ${bin}: ${spawnError.code ?? spawnError.message}`, {
      hint: spawnError.code === "ENOENT" ? "install HAProxy 2.6 (apt-get install haproxy) or use `router: builtin`" : `check that ${bin} is executable`,
    });
  }
  if (exited === undefined) child.kill("SIGKILL");
  const tail = (await readFile(files.log, "utf8").catch(() => "")).split("\n").filter((l) => /ALERT|error/i.test(l)).slice(-3).join(" | ");
  if (/cannot bind socket|Address already in use/i.test(tail)) {
    // A user error (the address kiln.yaml gives is taken); the details name the address and its
    // key, for `kiln up` to name the port's holder. With a preview address too, either may be it.
    throw new KilnError("KILN_E_USAGE", `HAProxy cannot listen on ${boot.listen}${boot.previewListen ? ` or ${boot.previewListen}` : ""}: address already in use`, {
      hint: "change `listen` in kiln.yaml, or stop what holds the port",
      details: boot.previewListen ? [] : [{ where: boot.listen, path: "listen", message: "EADDRINUSE" }],
    });
  }
  throw new KilnError("KILN_E_CONTROLLER", `HAProxy did not start${exited !== undefined ? ` (exit ${exited})` : " within 10 s"}: ${tail || "no error in haproxy.log"}`, {
    hint: `see ${files.log}`,
  });
}

// Starting and stopping the two long-lived processes: the proxy (data plane) and the
// controller (control plane). Each runs detached in its own process group, so a crash or
// restart of one never takes the other down.

import { spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tailLines } from "../file-tail.js";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { closest } from "../config/suggest.js";
import { KilnError, type ErrorCode, type ErrorDetail } from "../errors.js";
import { findPortHolder, type PortHolder } from "./port-holder.js";
import { pidAlive, readPidFile, writePidFile, type HomePaths } from "../home.js";
import { connectDocker, pingDocker } from "../providers/docker/engine.js";
import { checkProviderName, checkSwarmManager, createProvider, isProviderName, refuseNativeSwarm, type ProviderName } from "../providers/registry.js";
import { ControllerClient } from "../server/client.js";
import type { EdgeSpec, HealthSpec, RouterKind, SwarmSpec } from "../config/types.js";
import { leaveSharedHaproxy, startHaproxyRouter, type StartHaproxyOptions } from "../traffic/haproxy/process.js";
import { ProxyClient } from "../traffic/proxy/client.js";
import { haproxyOptions, haproxyRunDir } from "../server/haproxy-options.js";
import { PROXY_NODE_FLAGS } from "../traffic/proxy/node-flags.js";

const proxyMain = fileURLToPath(new URL("../traffic/proxy/main.js", import.meta.url));
const controllerMain = fileURLToPath(new URL("../server/main.js", import.meta.url));
const supervisorMain = fileURLToPath(new URL("./supervisor-main.js", import.meta.url));

import { daemonRouter, routerFile, supervisorFile } from "./daemon-files.js";

export { daemonRouter, supervisorFile };

async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs: number, stepMs = 50): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return false;
}

/** What a file gained after `offset` (the proxy's log is appended to across starts). */
function readFrom(file: string, offset: number): string {
  if (!existsSync(file)) return "";
  const fd = openSync(file, "r");
  try {
    const size = Math.max(0, statSync(file).size - offset);
    const buf = Buffer.alloc(Math.min(size, 1 << 20));
    const n = readSync(fd, buf, 0, buf.length, offset);
    return buf.subarray(0, n).toString("utf8");
  } finally {
    closeSync(fd);
  }
}

export interface ProxyStartError {
  code: ErrorCode;
  message: string;
  hint?: string;
  details: ErrorDetail[];
}

/** The error of the proxy's `{"ready":false,…}` line in what it wrote, if it wrote one. */
export function proxyStartError(output: string): ProxyStartError | undefined {
  for (const line of output.split("\n")) {
    if (!line.startsWith("{")) continue;
    let j: { ready?: unknown; error?: { code?: unknown; message?: unknown; hint?: unknown; details?: unknown } };
    try {
      j = JSON.parse(line) as typeof j;
    } catch {
      continue;
    }
    const e = j.error;
    if (j.ready !== false || !e || typeof e.code !== "string" || !/^KILN_E_[A-Z_]+$/.test(e.code) || typeof e.message !== "string") continue;
    return {
      code: e.code as ErrorCode,
      message: e.message,
      ...(typeof e.hint === "string" ? { hint: e.hint } : {}),
      details: Array.isArray(e.details) ? (e.details as ErrorDetail[]).filter((d) => d && typeof d.message === "string") : [],
    };
  }
  return undefined;
}

/**
 * The proxy's start error as the user should read it. An address already in use names the
 * port, its holder when /proc tells, and the kiln.yaml key to change, e.g.
 * - 127.0.0.1:8080 held by pid 42 "python3 -m http.server 8080", key listen →
 *   "port 8080 (127.0.0.1:8080) is already in use by pid 42 (python3 -m http.server 8080): the proxy cannot listen there",
 *   hint "stop pid 42, or set `listen` in /w/kiln.yaml to a free host:port"
 * - holder unknown → "… is already in use by another process: …", hint "stop what listens there, or set …"
 * - any other error → the proxy's own code, message and hint.
 * `who` names the data plane: "the proxy" (built-in) or "HAProxy".
 */
export function proxyErrorToKiln(e: ProxyStartError, specFile: string, holderOf: (port: number) => PortHolder | undefined = findPortHolder, who = "the proxy"): KilnError {
  const busy = e.details.find((d) => d.message === "EADDRINUSE" && d.where !== undefined && d.path !== undefined);
  if (!busy) return new KilnError(e.code, e.message, { ...(e.hint !== undefined ? { hint: e.hint } : {}) });
  const port = Number(/:(\d+)$/.exec(busy.where!)?.[1]);
  const holder = Number.isInteger(port) && port > 0 ? holderOf(port) : undefined;
  const holderName = holder ? `pid ${holder.pid}${holder.command ? ` (${holder.command})` : ""}` : "another process";
  return new KilnError("KILN_E_USAGE", `port ${port} (${busy.where}) is already in use by ${holderName}: ${who} cannot listen there`, {
    hint: `${holder ? `stop pid ${holder.pid}` : "stop what listens there"}, or set \`${busy.path}\` in ${specFile} to a free host:port`,
  });
}

function startDetached(script: string, args: string[], logFile: string, nodeFlags: readonly string[] = []): number {
  const fd = openSync(logFile, "a");
  try {
    const child = spawn(process.execPath, [...nodeFlags, script, ...args], { detached: true, stdio: ["ignore", fd, fd] });
    child.unref();
    if (!child.pid) throw new KilnError("KILN_E_INTERNAL", `could not start ${script}`);
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

/** Which provider the running daemons were started with, kept in the home so `kiln down` cleans that one. */
function providerFile(paths: HomePaths): string {
  return join(paths.run, "provider");
}

export function daemonProvider(paths: HomePaths): ProviderName | undefined {
  if (!existsSync(providerFile(paths))) return undefined;
  const name = readFileSync(providerFile(paths), "utf8").trim();
  return isProviderName(name) ? name : undefined;
}

/** The provider a verb acts on: `--provider`, else the running daemons', else kiln.yaml's. */
export function chooseProvider(opts: { flag?: string; paths: HomePaths; spec: string }): ProviderName {
  return checkProviderName(opts.flag ?? daemonProvider(opts.paths) ?? opts.spec);
}


/** The router `kiln up` starts: `--router`, else the running daemons', else kiln.yaml's. */
export function chooseRouter(opts: { flag?: string; paths: HomePaths; spec: RouterKind }): RouterKind {
  const r = opts.flag ?? daemonRouter(opts.paths) ?? opts.spec;
  if (r !== "builtin" && r !== "haproxy") {
    const near = closest(r, ["builtin", "haproxy"]);
    throw new KilnError("KILN_E_USAGE", `--router: expected builtin or haproxy, got "${r}"`, { hint: near ? `did you mean "${near}"?` : "e.g. kiln up --router haproxy" });
  }
  return r;
}

/**
 * The built-in proxy's flags for kiln.yaml's `edge` (see src/traffic/proxy/main.ts USAGE);
 * certificate paths are resolved against `specDir` (kiln.yaml's directory).
 */
export function edgeArgs(e: EdgeSpec, specDir = ".", service?: string): string[] {
  const tls = e.tls;
  return [
    ...(e.instanceHeaders ? ["--instance-headers"] : []),
    ...(tls ? ["--tls-listen", tls.listen, ...tls.certificates.flatMap((c) => ["--tls-cert", `${resolve(specDir, c.cert)}:${resolve(specDir, c.key)}`])] : []),
    ...(tls?.redirectHttp ? ["--redirect-http"] : []),
    ...(e.metricsListen !== undefined ? ["--metrics-listen", e.metricsListen] : []),
    ...(service !== undefined ? ["--service", service] : []),
    ...(["maxBodyBytes", "headerTimeout", "requestTimeout", "keepAliveTimeout", "connectTimeout", "upstreamTimeout", "tunnelIdleTimeout"] as const).flatMap((k) => [
      `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}${k === "maxBodyBytes" ? "" : "-ms"}`,
      String(e[k]),
    ]),
  ];
}

/** The two daemons' scripts, for whoever runs them other than `kiln up` (`kiln generate systemd`). */
export const DAEMON_SCRIPTS = { proxy: proxyMain, controller: controllerMain } as const;

/** The built-in proxy's arguments (after its script) for kiln.yaml's addresses and edge: what `kiln up` and a systemd unit run. */
export function proxyArgs(o: { paths: HomePaths; specFile: string; listen: string; previewListen?: string; edge?: EdgeSpec; service?: string }): string[] {
  const previewArgs = o.previewListen ? ["--preview-listen", o.previewListen] : [];
  const edge = o.edge ? edgeArgs(o.edge, dirname(o.specFile), o.service) : [];
  return ["--listen", o.listen, ...previewArgs, ...edge, "--admin", o.paths.proxyAdminSocket, "--state", o.paths.routesFile];
}

/** The controller's arguments (after its script): what the supervisor of `kiln up` and a systemd unit run. */
export function controllerArgs(o: { specFile: string; home: string; provider: ProviderName; router: RouterKind; sandbox?: string; environment?: string }): string[] {
  const args = ["--spec", o.specFile, "--home", o.home, "--provider", o.provider, "--router", o.router];
  if (o.sandbox) args.push("--sandbox", o.sandbox);
  if (o.environment !== undefined) args.push("--env", o.environment);
  return args;
}

/** HAProxy's master pid when it runs for this home (its pid file may hold more than one line). */
export function haproxyPid(paths: HomePaths): number | undefined {
  const file = join(haproxyRunDir(paths), "haproxy.pid");
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, "utf8").trim().split("\n")[0]);
  return Number.isInteger(pid) && pid > 0 && pidAlive(pid) ? pid : undefined;
}

export interface UpResult {
  proxyPid: number;
  controllerPid: number;
  /** the process that restarts the controller after a crash */
  supervisorPid: number;
  alreadyUp: boolean;
}

export async function startDaemons(opts: {
  paths: HomePaths;
  specFile: string;
  /** kiln.yaml environment the controller acts on (its own state, sockets and fleet) */
  environment?: string;
  listen: string;
  home: string;
  provider?: ProviderName;
  sandbox?: string;
  /** blue-green preview address of the proxy (kiln.yaml strategy.blueGreen.previewListen) */
  previewListen?: string;
  /** the data plane; default builtin */
  router?: RouterKind;
  /** kiln.yaml edge (built-in proxy flags; HAProxy takes instanceHeaders) */
  edge?: EdgeSpec;
  /** kiln.yaml health: HAProxy starts with the service's check, so the first table needs no reload */
  health?: HealthSpec;
  /** kiln.yaml swarm (provider swarm): the manager is checked before anything starts */
  swarm?: SwarmSpec;
  /** kiln.yaml name: the `service` label of the built-in proxy's metrics */
  service?: string;
}): Promise<UpResult> {
  const { paths } = opts;
  const provider = checkProviderName(opts.provider ?? "local");
  const running = daemonProvider(paths);
  // The file goes with `kiln down`: while it is there, the other provider's instances may still serve.
  if (running !== undefined && running !== provider) {
    throw new KilnError("KILN_E_USAGE", `the fleet is running on provider "${running}", not "${provider}"`, {
      hint: `stop it first with \`kiln down\`, then \`kiln up --provider ${provider}\``,
    });
  }
  if (provider === "docker") await pingDocker(connectDocker()); // a clear error here, not in the controller's log
  if (provider === "swarm") {
    refuseNativeSwarm(provider, opts.swarm);
    await checkSwarmManager(opts.swarm);
  }
  const router = opts.router ?? "builtin";
  const runningRouter = daemonRouter(paths);
  if (runningRouter !== undefined && runningRouter !== router) {
    throw new KilnError("KILN_E_USAGE", `the fleet is served by router "${runningRouter}", not "${router}"`, {
      hint: `stop it first with \`kiln down\`, then \`kiln up --router ${router}\``,
    });
  }
  const proxy = new ProxyClient(paths.proxyAdminSocket);
  const controller = new ControllerClient(paths.controllerSocket);
  let proxyPid = readPidFile(paths.proxyPid);
  let controllerPid = readPidFile(paths.controllerPid);
  const hapPid = haproxyPid(paths);
  const alreadyUp = (router === "haproxy" ? hapPid : proxyPid) !== undefined && controllerPid !== undefined;

  if (router === "haproxy") {
    // Started (or attached to) here, then left running: the controller attaches to the same runDir.
    const h = await startHaproxyRouter(haproxyOptions(paths, { ...opts, specDir: dirname(opts.specFile), ...(opts.service !== undefined ? { service: opts.service } : {}) })).catch((e: unknown) => {
      throw e instanceof KilnError && e.details.some((d) => d.message === "EADDRINUSE") ? proxyErrorToKiln({ code: e.code, message: e.message, ...(e.hint !== undefined ? { hint: e.hint } : {}), details: e.details }, opts.specFile, findPortHolder, "HAProxy") : e;
    });
    await h.detach();
    writeFileSync(routerFile(paths), "haproxy\n");
    proxyPid = h.pid;
  } else if (proxyPid === undefined || !(await proxy.ping())) {
    if (proxyPid !== undefined) process.kill(proxyPid, "SIGKILL");
    const logFrom = existsSync(paths.proxyLog) ? statSync(paths.proxyLog).size : 0;
    const pid = startDetached(proxyMain, proxyArgs(opts), paths.proxyLog, PROXY_NODE_FLAGS);
    const ok = await waitFor(async () => !pidAlive(pid) || (await proxy.ping()), 15_000);
    if (!ok || !pidAlive(pid)) {
      // The proxy says why in its one JSON line (see proxy/main.ts): its own error, made
      // clearer, rather than the raw line under a controller error.
      const said = proxyStartError(readFrom(paths.proxyLog, logFrom));
      if (said) throw proxyErrorToKiln(said, opts.specFile);
      throw new KilnError("KILN_E_CONTROLLER", `the proxy did not start on ${opts.listen}`, { hint: `its log says:\n${tailLines(paths.proxyLog, 5).join("\n")}` });
    }
    writePidFile(paths.proxyPid, pid);
    writeFileSync(routerFile(paths), "builtin\n");
    proxyPid = pid;
  }
  // The supervisor is the only launcher of the controller while it runs (see supervisor.ts):
  // with one alive, a missing controller is one it is restarting, so this only waits for it.
  let supervisorPid = readPidFile(supervisorFile(paths));
  const answering = controllerPid !== undefined && (await controller.ping());
  if (supervisorPid === undefined) {
    if (!answering && controllerPid !== undefined) process.kill(controllerPid, "SIGKILL"); // alive but deaf
    writeFileSync(providerFile(paths), `${provider}\n`); // before the controller launches anything
    const args = controllerArgs({ ...opts, provider, router });
    // An answering controller (from before supervision, or whose supervisor was killed) is adopted.
    supervisorPid = startDetached(supervisorMain, [paths.controllerSocket, paths.controllerPid, paths.controllerLog, "--", controllerMain, ...args], paths.controllerLog);
    writePidFile(supervisorFile(paths), supervisorPid);
  }
  if (!answering) {
    const sup = supervisorPid;
    const ok = await waitFor(async () => !pidAlive(sup) || (await controller.ping()), 30_000);
    if (!ok || !pidAlive(sup)) {
      throw new KilnError("KILN_E_CONTROLLER", "the controller did not start", { hint: `its log says:\n${tailLines(paths.controllerLog, 8).join("\n")}` });
    }
    controllerPid = readPidFile(paths.controllerPid) ?? -1;
  }
  return { proxyPid, controllerPid: controllerPid!, supervisorPid, alreadyUp };
}

async function stopPid(pid: number | undefined, graceMs: number): Promise<void> {
  if (pid === undefined || !pidAlive(pid)) return;
  process.kill(pid, "SIGTERM");
  if (!(await waitFor(() => !pidAlive(pid), graceMs))) {
    process.kill(pid, "SIGKILL");
    await waitFor(() => !pidAlive(pid), 5000);
  }
}

/**
 * Stop everything: instances (through the controller when it answers), controller, proxy.
 * `provider` (default local) is the one to clean when the home does not say which one the daemons used.
 */
export async function stopDaemons(opts: {
  paths: HomePaths;
  home: string;
  service: string;
  provider?: ProviderName;
  swarm?: SwarmSpec;
  /** kiln.yaml edge.hosts is set: the proxy is shared (withSharedEdge) and stops only with its last service */
  sharedEdge?: boolean;
  /**
   * "skip": a provider that fails (its engine is down) is reported in `skipped` and everything
   * else is still stopped and forgotten, for cleanups that must go on (the demo's previous run);
   * default "throw", so `kiln down` never claims a fleet gone that it could not see.
   */
  onProviderFailure?: "throw" | "skip";
}): Promise<{ stopped: string[]; skipped?: { provider: ProviderName; reason: string }; controllerShutdownFailed?: string }> {
  const { paths } = opts;
  const stopped: string[] = [];
  // First the supervisor, or it would start again the controller stopped below.
  const supervisorPid = readPidFile(supervisorFile(paths));
  await stopPid(supervisorPid, 5000);
  if (supervisorPid) stopped.push("supervisor");
  const controller = new ControllerClient(paths.controllerSocket);
  const controllerPid = readPidFile(paths.controllerPid);
  let shutdownFailed: string | undefined;
  if (await controller.ping()) {
    // A controller that cannot finish its shutdown (on a full disk its state write fails) is
    // stopped below all the same, and its instances directly, as when it is down.
    try {
      await controller.shutdown(true);
      stopped.push("instances");
    } catch (e) {
      shutdownFailed = (e as Error).message;
    }
  }
  await stopPid(controllerPid, 10_000);
  if (controllerPid) stopped.push("controller");
  // Whatever the controller could not stop (it was down, or crashed) is stopped directly,
  // and exited instances are released too (a container is removed).
  let failure: unknown;
  const providerName = daemonProvider(paths) ?? opts.provider ?? "local";
  try {
    const provider = createProvider(providerName, { home: opts.home, swarm: opts.swarm && { ...opts.swarm, rollouts: "kiln" } });
    // Each instance is stopped even when another's stop fails (on a full disk its final record
    // cannot be written): the first failure is reported after.
    for (const inst of await provider.list(opts.service)) {
      try {
        await provider.terminate(inst.id, { graceMs: 5000 });
      } catch (e) {
        failure ??= e;
      }
      if (inst.state === "running" && !stopped.includes("instances")) stopped.push("instances");
    }
  } catch (e) {
    failure = e; // the proxy is still stopped; the error is reported after
  }
  // A shared proxy forgets this service; it stops only when no other service is left on it.
  let othersOnProxy = 0;
  if (opts.sharedEdge) {
    othersOnProxy = await new ProxyClient(paths.proxyAdminSocket, { shared: { service: opts.service, route: { hosts: [] } } }).leave().catch(() => 0);
  }
  const proxyPid = othersOnProxy > 0 ? undefined : readPidFile(paths.proxyPid);
  await stopPid(proxyPid, 10_000);
  if (proxyPid) stopped.push("proxy");
  // A shared HAProxy drops this service's routes; it stops only when no other service is left on it.
  let othersOnHaproxy = 0;
  if (opts.sharedEdge && paths.edgeDir !== undefined) othersOnHaproxy = await leaveSharedHaproxy(haproxyRunDir(paths), opts.service);
  // HAProxy: a soft stop (SIGUSR1) lets its workers finish what they serve, then SIGTERM.
  const hapPid = othersOnHaproxy > 0 ? undefined : haproxyPid(paths);
  if (hapPid !== undefined) {
    process.kill(hapPid, "SIGUSR1");
    if (!(await waitFor(() => !pidAlive(hapPid), 10_000))) await stopPid(hapPid, 5000);
    stopped.push("haproxy");
  }
  let skipped: { provider: ProviderName; reason: string } | undefined;
  if (failure && opts.onProviderFailure === "skip" && failure instanceof KilnError) skipped = { provider: providerName, reason: failure.message };
  else if (failure) throw failure;
  // Every instance is gone, so the persisted routes would only point at dead addresses.
  const proxyFiles = othersOnProxy > 0 ? [] : [paths.proxyPid, paths.routesFile, paths.proxyAdminSocket];
  for (const f of [...proxyFiles, paths.controllerPid, paths.controllerSocket, providerFile(paths), routerFile(paths), supervisorFile(paths)]) rmSync(f, { force: true });
  if (othersOnHaproxy === 0) rmSync(haproxyRunDir(paths), { recursive: true, force: true });
  return { stopped, ...(skipped ? { skipped } : {}), ...(shutdownFailed !== undefined ? { controllerShutdownFailed: shutdownFailed } : {}) };
}

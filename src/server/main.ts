// The controller process: `node dist/src/server/main.js --spec kiln.yaml [--home DIR] [--provider local|docker]`
// (default: kiln.yaml's `provider`).
// Composition root of the control plane: it wires the controller to state, the provider,
// the proxy and the probes, serves the API on a unix socket and runs the reconcile loop.

import { getRequestListener } from "@hono/node-server";
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { availableParallelism, hostname } from "node:os";
import { parseArgs } from "node:util";
import { Controller } from "../controller/controller.js";
import { toReleaseSettings } from "../controller/release-settings.js";
import { planLaunchConcurrency, planLoopTurn, planNextPass, Wakeup } from "../controller/wake.js";
import { KilnError, isKilnError } from "../errors.js";
import { logToFile } from "../log-line.js";
import { probeHttp } from "../health/probe.js";
import { homeFor, homePaths, pidAlive, withSharedEdge, writePidFile } from "../home.js";
import { assertPolicy, evaluatePolicy, gatherPolicyFacts, keyringDir, openStore, policyIsEmpty } from "../image/index.js";
import { checkProviderName, createProvider } from "../providers/registry.js";
import { loadSpec } from "../config/index.js";
import { WebhookNotifier } from "../notify/webhooks.js";
import { StateDb } from "../state/db.js";
import { resolveStateLocation } from "../state/state-location.js";
import { haproxyOptions } from "./haproxy-options.js";
import { startHaproxyRouter, type RunningHaproxyRouter } from "../traffic/haproxy/process.js";
import { ProxyClient } from "../traffic/proxy/client.js";
import type { Router } from "../traffic/router.js";
import { createApp } from "./app.js";
import { DashboardListener } from "./dashboard.js";
import { createControllerMetrics, createMetricsListener } from "./metrics.js";
import { homeSecretKey, SecretKeeper } from "../secrets/index.js";

// The fallback interval: passes run at once on a wake-up or when something falls due (wake.ts).
const TICK_MS = 100;
/** wake-driven passes allowed per TICK_MS before wake-ups wait for the timer (a loop that keeps waking itself cannot spin) */
const MAX_PASSES_PER_TICK = 10;
/** the quick poll of a new instance's port starts at this delay (planProbeDelay) */
const START_POLL_MS = 5;
/**
 * …doubling up to this delay: a port that opens is seen within 25 ms (12 on average), not a
 * doubled delay of up to half the health interval late. A poll is a turn of the loop that only
 * starts the probe (planLoopTurn), at most 40 a second and only while an instance is starting.
 */
const START_POLL_MAX_MS = 25;

/** A service with `edge.hosts` registers its table on the shared proxy under its name. */
function sharedRoute(spec: { name: string; edge: { hosts: string[]; pathPrefix?: string } }) {
  if (spec.edge.hosts.length === 0) return {};
  return { shared: { service: spec.name, route: { hosts: spec.edge.hosts, ...(spec.edge.pathPrefix !== undefined ? { pathPrefix: spec.edge.pathPrefix } : {}) } } };
}


/**
 * The launch bound: providers that start instances on this machine share its CPUs with the
 * serving fleet (planLaunchConcurrency). KILN_LAUNCH_CONCURRENCY overrides it (0: no bound).
 */
function launchBound(providerName: string): { launchConcurrency?: number } {
  const env = process.env.KILN_LAUNCH_CONCURRENCY;
  if (env !== undefined && env !== "") {
    const n = Number(env);
    if (!Number.isInteger(n) || n < 0) throw new KilnError("KILN_E_USAGE", `KILN_LAUNCH_CONCURRENCY: expected a whole number ≥ 0, got "${env}"`, { hint: "unset it for the default from the CPU count, or 0 for no bound" });
    return n === 0 ? {} : { launchConcurrency: n };
  }
  return providerName === "local" || providerName === "docker" ? { launchConcurrency: planLaunchConcurrency(availableParallelism()) } : {};
}

async function main(): Promise<void> {
  // stdout and stderr are the log file (daemons.ts startDetached): a write there that fails (a
  // full disk) must not end the controller either; its lines are lost, as log-line.ts drops them.
  for (const s of [process.stdout, process.stderr]) s.on("error", () => undefined);
  const { values } = parseArgs({ options: { spec: { type: "string" }, home: { type: "string" }, provider: { type: "string" }, router: { type: "string" }, sandbox: { type: "string", default: "auto" }, env: { type: "string" } } });
  if (!values.spec) throw new Error("--spec is required");
  const loaded = loadSpec(values.spec, values.env);
  const home = values.home ?? homeFor(loaded.file);
  const providerName = checkProviderName(values.provider ?? loaded.spec.provider);
  const paths = withSharedEdge(homePaths(home, loaded.environment), { hosts: loaded.spec.edge.hosts, listen: loaded.spec.listen });
  // Never throws: a full disk drops log lines, it does not end the controller (log-line.ts).
  const log = logToFile(paths.controllerLog);

  const routerKind = values.router ?? loaded.spec.router;
  if (routerKind !== "builtin" && routerKind !== "haproxy") throw new KilnError("KILN_E_USAGE", `--router: expected builtin or haproxy, got "${routerKind}"`);
  // router haproxy: attach to the HAProxy `kiln up` started (or start it again if it died);
  // the controller's router delegates to whichever one is current (see the supervision below).
  const hapOpts = haproxyOptions(paths, {
    listen: loaded.spec.listen,
    ...(loaded.spec.strategy.blueGreen.previewListen ? { previewListen: loaded.spec.strategy.blueGreen.previewListen } : {}),
    edge: loaded.spec.edge,
    health: loaded.spec.health,
    log,
    specDir: loaded.dir,
    service: loaded.service,
  });
  let hap: RunningHaproxyRouter | undefined = routerKind === "haproxy" ? await startHaproxyRouter(hapOpts) : undefined;
  const router: Router = hap
    ? { setTable: (t) => hap!.router.setTable(t), stats: () => hap!.router.stats() }
    : new ProxyClient(paths.proxyAdminSocket, sharedRoute({ name: loaded.service, edge: loaded.spec.edge }));

  const state = resolveStateLocation({ stateDb: paths.stateDb, specState: loaded.spec.state, environment: loaded.environment });
  const db = new StateDb(state.location);
  // A shared state (PostgreSQL) may be acted on from other hosts: a controller that finds the
  // lease held waits on standby instead of exiting, and takes over when the lease runs out.
  const shared = state.backend === "postgres";
  const store = openStore(home);
  // Webhooks are delivered in the background from an in-memory queue: the loop only enqueues.
  const notifier = loaded.spec.notify.webhooks.length
    ? new WebhookNotifier({
        webhooks: loaded.spec.notify.webhooks,
        queueSize: loaded.spec.notify.queueSize,
        ...(loaded.environment ? { env: loaded.environment } : {}),
        onError: (message) => {
          try {
            db.addEvent({ at: Date.now(), level: "error", service: loaded.service, message });
          } catch {
            // the database is closing
          }
          log(`[error] ${message}`);
        },
        onDelivered: (url, type, attempts) => log(`webhook ${type} delivered${attempts > 1 ? ` after ${attempts} attempts` : ""}`),
      })
    : undefined;
  const waker = new Wakeup();
  const controller = new Controller({
    service: loaded.service,
    defaultSpec: toReleaseSettings(loaded.spec),
    listen: loaded.spec.listen,
    db,
    provider: createProvider(providerName, { home, sandbox: values.sandbox as "auto", log, swarm: loaded.spec.swarm, drainTimeout: loaded.spec.drainTimeout }),
    router,
    probe: async (address, path, timeout) => {
      const r = await probeHttp(address, path, timeout);
      return r.ok ? { ok: true, answered: true, status: r.status } : { ok: false, answered: r.status !== undefined, reason: r.reason, status: r.status };
    },
    clock: { now: () => Date.now() },
    log,
    owner: `${process.pid}@${hostname()}`,
    imageExists: (digest) => store.hasBlob(digest),
    notify: notifier && ((e) => notifier.send(e)),
    // Secret values live in this process's memory only; the key is read when first needed.
    secrets: new SecretKeeper({ key: () => homeSecretKey(home) }),
    wake: () => waker.signal(),
    startPollMs: START_POLL_MS,
    startPollMaxMs: START_POLL_MAX_MS,
    // Providers that start instances on this machine share its CPUs with the serving fleet.
    ...launchBound(providerName),
  });
  // A holder whose process is gone on this host (a crashed controller) is taken over at once.
  // Not on a shared state: there a host name does not prove the same machine (containers,
  // CI runners), so only the lease running out does.
  const holder = controller.leaseHolder();
  const [holderPid, holderHost] = (holder ?? "").split("@");
  const holderDead = !shared && holder !== undefined && holderHost === hostname() && !pidAlive(Number(holderPid));
  let acting = controller.takeLease(holderDead ? holder : undefined);
  if (!acting && !shared) {
    throw new KilnError("KILN_E_CONTROLLER", `another controller is acting on ${loaded.service}`, { hint: "stop it with `kiln down`, or wait: its lease expires 5 s after it stops" });
  }
  if (acting) await controller.adopt();
  else log(`standby: controller ${controller.leaseHolder() ?? holder} acts on ${loaded.service} (state ${state.shown}); taking over when its lease runs out`);

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    server.close();
    notifier?.stop();
    metricsServer?.close();
    dashboard?.close();
    void controller.settle().finally(async () => {
      await hap?.detach().catch(() => undefined); // HAProxy keeps serving
      controller.releaseLease();
      db.close();
      rmSync(paths.controllerPid, { force: true });
      process.exit(0);
    });
  };
  const metrics = createControllerMetrics(controller, loaded.service);
  const policy = loaded.spec.policy;
  let dashboard: DashboardListener | undefined;
  const app = createApp({
    dashboard: (r) => dashboard!.login(r.readOnly, r.actor),
    controller,
    db,
    service: loaded.service,
    onShutdown: stop,
    metrics,
    standbyFor: () => (acting ? undefined : controller.leaseHolder() ?? "another controller"),
    // The policy of the kiln.yaml the controller started with; the CLI checks it first (and, for a
    // pulled image, that signatures are for its repository), this holds any other client to it.
    ...(policyIsEmpty(policy) ? {} : { checkPolicy: async (digest: string) => assertPolicy(evaluatePolicy(policy, await gatherPolicyFacts(store, digest, policy, keyringDir(home)), new Date()), digest) }),
  });
  // The dashboard reads and acts through the API app itself, so it shows and does what the CLI does.
  dashboard = new DashboardListener({
    api: app,
    service: loaded.service,
    ...(loaded.environment ? { environment: loaded.environment } : {}),
    readOnly: loaded.spec.controller.dashboardReadOnly ?? false,
    requestCounts: () => {
      const releases = controller.routerStats()?.releases;
      return releases && Object.fromEntries(Object.entries(releases).map(([r, c]) => [r, c.requests]));
    },
    now: () => Date.now(),
    log,
    ...(loaded.spec.controller.dashboardListen !== undefined ? { listen: loaded.spec.controller.dashboardListen } : {}),
  });
  if (loaded.spec.controller.dashboardListen !== undefined) await dashboard.open();
  const metricsListen = loaded.spec.controller.metricsListen;
  let metricsServer: ReturnType<typeof createMetricsListener> | undefined;
  if (metricsListen !== undefined) {
    metricsServer = createMetricsListener(metrics, log);
    const i = metricsListen.lastIndexOf(":");
    await new Promise<void>((resolve, reject) => {
      metricsServer!.once("error", (e: NodeJS.ErrnoException) =>
        reject(new KilnError("KILN_E_USAGE", `the controller cannot serve metrics on ${metricsListen}: ${e.code ?? e.message}`, { hint: "change controller.metricsListen in kiln.yaml" })),
      );
      metricsServer!.listen({ host: metricsListen.slice(0, i).replace(/^\[|\]$/g, ""), port: Number(metricsListen.slice(i + 1)) }, () => resolve());
    });
  }
  if (existsSync(paths.controllerSocket)) rmSync(paths.controllerSocket);
  const server = createServer(getRequestListener(app.fetch));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(paths.controllerSocket, () => resolve());
  });
  writePidFile(paths.controllerPid);
  log(`controller ${process.pid} up for ${loaded.service} (provider ${providerName}, router ${routerKind}, state ${state.backend} ${state.shown})`);
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);

  let lastCheck = 0;
  let lastPassAt = 0;
  /** a wake-up signalled while the last turn ran: the next turn is a pass */
  let wokenDuringTurn = false;
  const passStarts: number[] = [];
  while (!stopping) {
    if (!acting) {
      // Standby: each pass tries for the lease; it is granted once the holder's has run out.
      try {
        if (controller.takeLease(undefined)) {
          acting = true;
          log(`took over ${loaded.service}: the lease is ours`);
          await controller.adopt();
        }
      } catch (e) {
        log(`standby: ${why(e)}`);
      }
      await new Promise((r) => setTimeout(r, TICK_MS));
      continue;
    }
    // HAProxy died (killed, crashed): start it again; the saved table is re-applied before it returns.
    if (hap && Date.now() - lastCheck >= 1000) {
      lastCheck = Date.now();
      if (!pidAlive(hap.pid)) {
        log(`HAProxy pid ${hap.pid} is gone: starting it again`);
        try {
          await hap.detach().catch(() => undefined);
          hap = await startHaproxyRouter(hapOpts);
        } catch (e) {
          log(`HAProxy restart failed: ${why(e)}`);
        }
      }
    }
    // Wake-ups until now are this turn's to handle. A turn for a probe falling due only starts
    // the probes (planLoopTurn): a starting instance's port is polled every 5–25 ms.
    const turnAt = Date.now();
    const woken = waker.take() || wokenDuringTurn;
    if (planLoopTurn({ now: turnAt, tickMs: TICK_MS, woken, lastPassAt, passDueAt: controller.nextPassDueAt() }) === "probes") {
      try {
        controller.probeDue();
      } catch (e) {
        log(`probes failed: ${why(e)}`);
      }
    } else {
      lastPassAt = turnAt;
      passStarts.push(turnAt);
      try {
        await controller.tick();
      } catch (e) {
        log(`tick failed: ${why(e)}`);
      }
    }
    const now = Date.now();
    while (passStarts.length && passStarts[0]! <= now - TICK_MS) passStarts.shift();
    wokenDuringTurn = waker.take();
    const delay = planNextPass({ now, tickMs: TICK_MS, woken: wokenDuringTurn, dueAt: controller.nextDueAt(), recentPasses: passStarts.length, maxPassesPerTick: MAX_PASSES_PER_TICK });
    await waker.sleep(delay, passStarts.length < MAX_PASSES_PER_TICK);
  }
}

/** What a loop error says in the log: a kiln error's message, anything else's stack. */
function why(e: unknown): string {
  return isKilnError(e) ? e.message : String((e as Error).stack ?? e);
}

main().catch((e) => {
  process.stderr.write(`kiln controller: ${isKilnError(e) ? `${e.message}${e.hint ? `\n  hint: ${e.hint}` : ""}` : (e as Error).stack}\n`);
  process.exit(isKilnError(e) ? e.exitCode : 1);
});

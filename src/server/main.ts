// The controller process: `node dist/src/server/main.js --spec kiln.yaml [--home DIR] [--provider local|docker]`
// (default: kiln.yaml's `provider`).
// Composition root of the control plane: it wires the controller to state, the provider,
// the proxy and the probes, serves the API on a unix socket and runs the reconcile loop.

import { getRequestListener } from "@hono/node-server";
import { appendFileSync, existsSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { hostname } from "node:os";
import { parseArgs } from "node:util";
import { Controller } from "../controller/controller.js";
import { toReleaseSettings } from "../controller/release-settings.js";
import { KilnError, isKilnError } from "../errors.js";
import { probeHttp } from "../health/probe.js";
import { homeFor, homePaths, pidAlive, writePidFile } from "../home.js";
import { assertPolicy, evaluatePolicy, gatherPolicyFacts, keyringDir, openStore, policyIsEmpty } from "../image/index.js";
import { checkProviderName, createProvider } from "../providers/registry.js";
import { loadSpec } from "../config/index.js";
import { StateDb } from "../state/db.js";
import { haproxyOptions } from "./haproxy-options.js";
import { startHaproxyRouter, type RunningHaproxyRouter } from "../traffic/haproxy/process.js";
import { ProxyClient } from "../traffic/proxy/client.js";
import type { Router } from "../traffic/router.js";
import { createApp } from "./app.js";

const TICK_MS = 100;


async function main(): Promise<void> {
  const { values } = parseArgs({ options: { spec: { type: "string" }, home: { type: "string" }, provider: { type: "string" }, router: { type: "string" }, sandbox: { type: "string", default: "auto" } } });
  if (!values.spec) throw new Error("--spec is required");
  const loaded = loadSpec(values.spec);
  const home = values.home ?? homeFor(loaded.file);
  const providerName = checkProviderName(values.provider ?? loaded.spec.provider);
  const paths = homePaths(home);
  const log = (line: string) => appendFileSync(paths.controllerLog, `${new Date().toISOString()} ${line}\n`);

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
  });
  let hap: RunningHaproxyRouter | undefined = routerKind === "haproxy" ? await startHaproxyRouter(hapOpts) : undefined;
  const router: Router = hap
    ? { setTable: (t) => hap!.router.setTable(t), stats: () => hap!.router.stats() }
    : new ProxyClient(paths.proxyAdminSocket);

  const db = new StateDb(paths.stateDb);
  const store = openStore(home);
  const controller = new Controller({
    service: loaded.spec.name,
    defaultSpec: toReleaseSettings(loaded.spec),
    listen: loaded.spec.listen,
    db,
    provider: createProvider(providerName, { home, sandbox: values.sandbox as "auto", log }),
    router,
    probe: async (address, path, timeout) => {
      const r = await probeHttp(address, path, timeout);
      return r.ok ? { ok: true, answered: true, status: r.status } : { ok: false, answered: r.status !== undefined, reason: r.reason, status: r.status };
    },
    clock: { now: () => Date.now() },
    log,
    owner: `${process.pid}@${hostname()}`,
    imageExists: (digest) => store.hasBlob(digest),
  });
  // A holder whose process is gone on this host (a crashed controller) is taken over at once.
  const holder = controller.leaseHolder();
  const [holderPid, holderHost] = (holder ?? "").split("@");
  const holderDead = holder !== undefined && holderHost === hostname() && !pidAlive(Number(holderPid));
  if (!controller.takeLease(holderDead ? holder : undefined)) {
    throw new KilnError("KILN_E_CONTROLLER", `another controller is acting on ${loaded.spec.name}`, { hint: "stop it with `kiln down`, or wait: its lease expires 5 s after it stops" });
  }
  await controller.adopt();

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    server.close();
    void controller.settle().finally(async () => {
      await hap?.detach().catch(() => undefined); // HAProxy keeps serving
      controller.releaseLease();
      db.close();
      rmSync(paths.controllerPid, { force: true });
      process.exit(0);
    });
  };
  const policy = loaded.spec.policy;
  const app = createApp({
    controller,
    db,
    service: loaded.spec.name,
    onShutdown: stop,
    // The policy of the kiln.yaml the controller started with; the CLI checks it first (and, for a
    // pulled image, that signatures are for its repository), this holds any other client to it.
    ...(policyIsEmpty(policy) ? {} : { checkPolicy: async (digest: string) => assertPolicy(evaluatePolicy(policy, await gatherPolicyFacts(store, digest, policy, keyringDir(home)), new Date()), digest) }),
  });
  if (existsSync(paths.controllerSocket)) rmSync(paths.controllerSocket);
  const server = createServer(getRequestListener(app.fetch));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(paths.controllerSocket, () => resolve());
  });
  writePidFile(paths.controllerPid);
  log(`controller ${process.pid} up for ${loaded.spec.name} (provider ${providerName}, router ${routerKind})`);
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);

  let lastCheck = 0;
  while (!stopping) {
    // HAProxy died (killed, crashed): start it again; the saved table is re-applied before it returns.
    if (hap && Date.now() - lastCheck >= 1000) {
      lastCheck = Date.now();
      if (!pidAlive(hap.pid)) {
        log(`HAProxy pid ${hap.pid} is gone: starting it again`);
        try {
          await hap.detach().catch(() => undefined);
          hap = await startHaproxyRouter(hapOpts);
        } catch (e) {
          log(`HAProxy restart failed: ${isKilnError(e) ? e.message : (e as Error).stack}`);
        }
      }
    }
    try {
      await controller.tick();
    } catch (e) {
      log(`tick failed: ${isKilnError(e) ? e.message : (e as Error).stack}`);
    }
    await new Promise((r) => setTimeout(r, TICK_MS));
  }
}

main().catch((e) => {
  process.stderr.write(`kiln controller: ${isKilnError(e) ? `${e.message}${e.hint ? `\n  hint: ${e.hint}` : ""}` : (e as Error).stack}\n`);
  process.exit(isKilnError(e) ? e.exitCode : 1);
});

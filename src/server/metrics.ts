// The controller's Prometheus metrics (issue 10), built with prom-client and read at each
// scrape from what the controller already knows: its status (rollout phase, instances),
// the state's history (rollouts, their durations, rollbacks), its heal count, and the
// router's per-release counters as last observed (so a canary's split shows here whichever
// router serves it). Served at GET /metrics on the controller's API socket and, when
// kiln.yaml sets controller.metricsListen, on that TCP address.

import http from "node:http";
import type net from "node:net";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Controller } from "../controller/controller.js";

/** Rollout durations, seconds: a fast rolling replacement to a canary held for hours. */
const DURATION_BUCKETS = [5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600];
const PHASES = ["progressing", "paused", "healthy", "aborted"] as const;

export function createControllerMetrics(controller: Controller, service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  // One status read per scrape, shared by the collectors below (prom-client runs them in turn).
  let status: Awaited<ReturnType<Controller["status"]>> | undefined;
  let statusAt = 0;
  const fresh = async () => {
    if (status === undefined || Date.now() - statusAt > 200) {
      status = await controller.status();
      statusAt = Date.now();
    }
    return status;
  };

  new Gauge({
    name: "kiln_controller_rollout_phase",
    help: "1 for the phase of the current (or last) rollout, 0 for the others; no series before the first rollout.",
    labelNames: ["phase", "kind", "strategy"],
    registers: [registry],
    async collect() {
      this.reset();
      const r = (await fresh()).rollout;
      if (r?.phase) for (const p of PHASES) this.set({ phase: p, kind: r.kind, strategy: r.strategy }, r.phase === p ? 1 : 0);
    },
  });
  new Gauge({
    name: "kiln_controller_rollout_running",
    help: "1 while a rollout (deploy or rollback) is in progress.",
    registers: [registry],
    async collect() {
      this.set((await fresh()).rollout?.state === "running" ? 1 : 0);
    },
  });
  new Gauge({
    name: "kiln_controller_instances",
    help: "Instances by release, health and whether they are in rotation.",
    labelNames: ["release", "version", "health", "in_rotation"],
    registers: [registry],
    async collect() {
      this.reset();
      for (const i of (await fresh()).instances) {
        this.inc({ release: i.release, version: i.version ?? "", health: i.health, in_rotation: i.inRotation ? "true" : "false" });
      }
    },
  });
  new Gauge({
    name: "kiln_controller_desired_instances",
    help: "Instances the fleet should have.",
    registers: [registry],
    async collect() {
      this.set((await fresh()).desiredInstances);
    },
  });
  new Histogram({
    name: "kiln_controller_rollout_duration_seconds",
    help: "Duration of finished rollouts, from start to done, failed or aborted (all kept in state).",
    labelNames: ["kind", "strategy", "outcome"],
    buckets: DURATION_BUCKETS,
    registers: [registry],
    collect() {
      this.reset();
      for (const r of controller.history().rollouts) {
        if (r.finishedAt === undefined) continue;
        this.observe({ kind: r.kind, strategy: r.strategy, outcome: r.state }, Math.max(0, (Date.parse(r.finishedAt) - Date.parse(r.startedAt)) / 1000));
      }
    },
  });
  new Counter({
    name: "kiln_controller_rollbacks_total",
    help: "Rollbacks started (by `kiln rollback` or automatically after a failed release), all kept in state.",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(controller.history().rollouts.filter((r) => r.kind === "rollback").length);
    },
  });
  new Counter({
    name: "kiln_controller_heals_total",
    help: "Instances launched to replace failed ones outside a rollout, since this controller started.",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(controller.healed);
    },
  });
  const perRelease = (name: string, help: string, pick: (c: { requests: number; errors5xx: number; connectFailures: number }) => number) =>
    new Counter({
      name,
      help,
      labelNames: ["release"],
      registers: [registry],
      collect() {
        this.reset();
        for (const [release, c] of Object.entries(controller.routerStats()?.releases ?? {})) this.inc({ release }, pick(c));
      },
    });
  perRelease("kiln_router_release_requests_total", "Requests the router answered per release, as the controller last read them (either router).", (c) => c.requests);
  perRelease("kiln_router_release_5xx_total", "Responses >= 500 per release, as the controller last read them.", (c) => c.errors5xx);
  perRelease("kiln_router_release_connect_failures_total", "Failed attempts to reach an instance per release, as the controller last read them.", (c) => c.connectFailures);
  return registry;
}

/** A TCP listener answering GET /metrics only (kiln.yaml controller.metricsListen). */
export function createMetricsListener(registry: Registry, log: (line: string) => void): http.Server {
  const server = http.createServer((req, res) => {
    if ((req.url ?? "/").split("?")[0] !== "/metrics" || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("kiln controller metrics: GET /metrics\n");
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { "content-type": registry.contentType }).end(req.method === "HEAD" ? undefined : text),
      (e: unknown) => {
        log(`metrics scrape failed: ${(e as Error).message}`);
        res.writeHead(500).end();
      },
    );
  });
  server.on("clientError", (_e, socket: net.Socket) => socket.destroy());
  return server;
}

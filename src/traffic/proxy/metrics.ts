// Prometheus metrics of the proxy, served on an opt-in address
// (--metrics-listen): GET /metrics in the text exposition format.
//
// Every value is read from the proxy's own counters when scraped (prom-client
// collectors registered in a private Registry), so the request path pays
// nothing for metrics. Labels: service (--service), release, target (the
// instance id). Targets removed from the table but still draining are
// included; once gone, their series disappear (Prometheus treats that as a
// counter reset, which rate() handles).
//
//   kiln_proxy_requests_total{service,release,target}            answered requests (any status)
//   kiln_proxy_responses_5xx_total{service,release,target}       of which status >= 500 (incl. the proxy's 502/504)
//   kiln_proxy_connect_failures_total{service,release,target}    attempts that could not connect or got no answer
//   kiln_proxy_request_duration_seconds{service,release,target}  histogram, arrival → end of response
//   kiln_proxy_inflight_requests{service,release,target}         requests (and open WebSockets) in flight
//   kiln_proxy_open_connections{service,release,target}          connections to the instance: pooled + WebSockets
//   kiln_proxy_target_up{service,release,target}                 1 when in rotation (active, healthy, weight > 0)
//   kiln_proxy_release_requests_total{service,release,lane}      per release, production and preview, incl. removed targets
//   kiln_proxy_maintenance{service}                              1 while maintenance mode is on
//   kiln_proxy_table_version{service}                            routing table version held

import http from "node:http";
import type net from "node:net";
import { Registry } from "prom-client";
import { LATENCY_BUCKETS_MS } from "../router.js";
import { isEligible, type TargetPool, type Upstream } from "./targets.js";

type Labels = Record<string, string | number>;
interface Value {
  value: number;
  labels: Labels;
  metricName?: string;
}

/** A metric whose values are computed at scrape time, in the shape prom-client's Registry formats. */
function collector(name: string, help: string, type: "counter" | "gauge" | "histogram", values: () => Value[]) {
  return {
    name,
    help,
    type,
    aggregator: "sum" as const,
    get: async () => ({ name, help, type, aggregator: "sum" as const, values: values() }),
  };
}

/** The `le` bounds of the histogram, in seconds, as Prometheus writes them. */
const LE = LATENCY_BUCKETS_MS.map((ms) => String(ms / 1000));

function openConnections(u: Upstream): number {
  let n = u.tunnels;
  for (const list of [u.agent.sockets, u.agent.freeSockets]) for (const k in list) n += list[k]?.length ?? 0;
  return n;
}

/** `pools`: every service the proxy serves (several when they share the listener), read at each scrape. */
export function createMetricsRegistry(pools: () => Array<{ service: string; pool: TargetPool }>): Registry {
  const registry = new Registry();
  const perTarget = (f: (u: Upstream) => number) => (): Value[] =>
    pools().flatMap(({ service, pool }) => pool.allUpstreams().map((u) => ({ labels: { service, release: u.release, target: u.id }, value: f(u) })));
  const metrics = [
    collector("kiln_proxy_requests_total", "Requests answered to clients, by the target that answered.", "counter", perTarget((u) => u.counters.requests)),
    collector("kiln_proxy_responses_5xx_total", "Responses with status >= 500, including the proxy's own 502 and 504.", "counter", perTarget((u) => u.counters.errors5xx)),
    collector("kiln_proxy_connect_failures_total", "Attempts that could not connect to the target or got no response from it.", "counter", perTarget((u) => u.counters.connectFailures)),
    collector("kiln_proxy_request_duration_seconds", "Time from a request's arrival to the end of its response.", "histogram", () => {
      const out: Value[] = [];
      for (const { service, pool } of pools()) for (const u of pool.allUpstreams()) {
        const labels = { service, release: u.release, target: u.id };
        let cumulative = 0;
        for (let i = 0; i < LE.length; i++) {
          cumulative += u.latency[i]!;
          out.push({ metricName: "kiln_proxy_request_duration_seconds_bucket", labels: { ...labels, le: LE[i]! }, value: cumulative });
        }
        cumulative += u.latency[LE.length]!;
        out.push({ metricName: "kiln_proxy_request_duration_seconds_bucket", labels: { ...labels, le: "+Inf" }, value: cumulative });
        out.push({ metricName: "kiln_proxy_request_duration_seconds_sum", labels, value: u.latencySumMs / 1000 });
        out.push({ metricName: "kiln_proxy_request_duration_seconds_count", labels, value: cumulative });
      }
      return out;
    }),
    collector("kiln_proxy_inflight_requests", "Requests in flight on the target (an open WebSocket counts as one).", "gauge", perTarget((u) => u.inflight)),
    collector("kiln_proxy_open_connections", "Open connections from the proxy to the target: keep-alive pool (busy and idle) plus WebSockets.", "gauge", perTarget(openConnections)),
    collector("kiln_proxy_target_up", "1 when the target is in rotation (active, healthy, weight > 0).", "gauge", perTarget((u) => (isEligible(u) ? 1 : 0))),
    collector("kiln_proxy_release_requests_total", "Requests answered per release and listener (production or preview), including targets since removed.", "counter", () => {
      const out: Value[] = [];
      for (const { service, pool } of pools()) {
        for (const lane of ["production", "preview"] as const) {
          for (const [release, c] of Object.entries(pool.releaseStats(lane))) out.push({ labels: { service, release, lane }, value: c.requests });
        }
      }
      return out;
    }),
    collector("kiln_proxy_maintenance", "1 while maintenance mode is on (every production request answered 503).", "gauge", () =>
      pools().map(({ service, pool }) => ({ labels: { service }, value: pool.maintenance ? 1 : 0 })),
    ),
    collector("kiln_proxy_table_version", "Version of the routing table the proxy holds.", "gauge", () => pools().map(({ service, pool }) => ({ labels: { service }, value: pool.version }))),
  ];
  // The collectors have the shape the Registry formats (name, help, type, get); its typings want a class instance.
  for (const m of metrics) registry.registerMetric(m as unknown as Parameters<Registry["registerMetric"]>[0]);
  return registry;
}

/** The metrics listener: GET /metrics, nothing else. */
export function createMetricsServer(registry: Registry, log: (line: string) => void): http.Server {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path !== "/metrics" || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("kiln proxy metrics: GET /metrics\n");
      return;
    }
    registry.metrics().then(
      (text) => {
        res.writeHead(200, { "content-type": registry.contentType, "content-length": String(Buffer.byteLength(text)) });
        res.end(req.method === "HEAD" ? undefined : text);
      },
      (e: unknown) => {
        log(`metrics scrape failed: ${(e as Error).message}`);
        res.writeHead(500).end();
      },
    );
  });
  server.on("clientError", (_e, socket: net.Socket) => socket.destroy());
  return server;
}

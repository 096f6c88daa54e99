// The one seam between the controller and the data plane.

export type TargetState = "active" | "draining";

export interface Target {
  id: string;
  release: string;
  /** "127.0.0.1:PORT" */
  address: string;
  /** relative share of new requests among active healthy targets; 0 = none */
  weight: number;
  /** draining: no new requests; in-flight ones finish until drainTimeoutMs */
  state: TargetState;
}

export interface HealthCheckConfig {
  path: string;
  intervalMs: number;
  timeoutMs: number;
  healthyThreshold: number;
  unhealthyThreshold: number;
}

export interface RoutingTable {
  /** monotonically increasing; the proxy ignores an older table than the one it holds */
  version: number;
  targets: Target[];
  health: HealthCheckConfig;
  drainTimeoutMs: number;
  /**
   * Per-release traffic split (canary), as relative weights by release id.
   * Absent: every new request picks among all eligible targets by target weight.
   * Present: each new request first picks a release by smooth weighted round
   * robin among the listed releases with weight > 0 that have at least one
   * eligible target (active, healthy, weight > 0), then a target of that
   * release by target weight. Unlisted releases get no new requests, unless no
   * listed release has an eligible target: then the request falls back to
   * target weights over every eligible target (a request that can be served
   * is never refused). Retries of a failed attempt pick again by the same rule
   * among targets not tried yet.
   *
   *   {stable: 90, canary: 10}, both with healthy targets   → 900 / 100 of 1,000 requests, exactly
   *   {stable: 90, canary: 10}, canary's targets all down   → all to stable
   *   {stable: 100}, a "canary" release with weight-1 targets → canary gets nothing
   *   {stable: 1, canary: 1}, stable 3 targets, canary 1    → canary's one target gets half
   *   {blue: 100}, blue's targets all unhealthy, green healthy → all to green (fallback)
   *   {stable: 0, canary: 0}                                → fallback: plain target weights
   */
  releaseWeights?: Record<string, number>;
  /**
   * Release id served on the proxy's preview listener (blue-green preview).
   * Preview requests go only to this release's targets that are healthy and
   * active, whatever their weight, so a green fleet at weight 0 ("standby") is
   * reachable there before promotion and gets no production traffic.
   * Absent, or no such target: the preview listener answers 503.
   */
  preview?: string;
  /**
   * Maintenance mode (added for issue 10; optional, so older tables and
   * routers are unaffected). Present: every production request — plain,
   * Upgrade or HTTP/2 — is answered by the router itself with 503, a
   * `Retry-After: retryAfterS` header and a small HTML page showing
   * `message`; no request reaches an instance and instances, health checks
   * and connections already upgraded (WebSockets) are left as they are. The
   * preview listener keeps serving, so an operator can still look at a
   * release. Absent: normal routing.
   *
   *   {maintenance: {}}                                   → 503, Retry-After: 60, the default message
   *   {maintenance: {message: "Back at 14:00", retryAfterS: 600}} → 503, Retry-After: 600, "Back at 14:00"
   *   {maintenance: {message: "<b>"}}                     → the page shows "&lt;b&gt;" (text, never markup)
   */
  maintenance?: MaintenanceMode;
  /**
   * Several services on one listener (issue 10; optional): the host names and
   * path prefix this table's service answers (see ServiceRoute). A router that
   * holds one service per listener ignores it.
   */
  route?: ServiceRoute;
}

/**
 * Where a service's requests come from when several services share one
 * listener (issue 10): its host names (exact, or `*.domain` for one label)
 * and an optional path prefix. No hosts: the listener's catch-all.
 */
export interface ServiceRoute {
  hosts: string[];
  /** e.g. "/api": only paths under it (passed on unchanged) */
  pathPrefix?: string;
}

/** See RoutingTable.maintenance. */
export interface MaintenanceMode {
  /** plain text shown on the 503 page; default "This service is down for maintenance." */
  message?: string;
  /** seconds for the Retry-After header; default 60 */
  retryAfterS?: number;
}

export const MAINTENANCE_DEFAULTS = Object.freeze({ message: "This service is down for maintenance.", retryAfterS: 60 });

/**
 * Upper bounds (inclusive, ms) of the latency histogram buckets. A histogram
 * has LATENCY_BUCKETS_MS.length + 1 counts: the last one is the overflow
 * (> 10,000 ms).
 *
 *   0.4 ms → bucket 0 (≤ 1)   1 ms → bucket 0   1.2 ms → bucket 1 (≤ 2)   250 ms → bucket 8 (≤ 500)
 *   10,000 ms → bucket 12     10,001 ms → bucket 13 (overflow)
 */
export const LATENCY_BUCKETS_MS: readonly number[] = Object.freeze([1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]);

/** Number of counts in a latency histogram (the buckets plus the overflow). */
export const LATENCY_HISTOGRAM_SIZE = LATENCY_BUCKETS_MS.length + 1;

/** Index of the histogram bucket holding a latency of `ms`. */
export function latencyBucket(ms: number): number {
  let i = 0;
  while (i < LATENCY_BUCKETS_MS.length && ms > LATENCY_BUCKETS_MS[i]!) i++;
  return i;
}

export interface Counters {
  /** requests answered to clients (any status, including the proxy's own 502/504 after a failure) */
  requests: number;
  /** responses with status >= 500 returned to clients */
  errors5xx: number;
  /** attempts that could not connect / got no response from an instance (retried or not) */
  connectFailures: number;
  /**
   * Per-release counters only: cumulative latency histogram of the requests
   * counted in `requests` (LATENCY_HISTOGRAM_SIZE counts, see
   * LATENCY_BUCKETS_MS), from the request's arrival at the proxy to the end of
   * its response or failure. Cumulative since the proxy started; compare two
   * snapshots with windowOf.
   */
  latency?: number[];
}

export interface TargetStatus extends Counters {
  id: string;
  release: string;
  address: string;
  state: TargetState;
  weight: number;
  /** the proxy's own view from active + passive checks */
  healthy: boolean;
  /** active, healthy and weight > 0: eligible for new requests */
  inRotation: boolean;
  inflight: number;
  /** epoch ms when draining started */
  drainingSince?: number;
}

export interface RouterStats {
  tableVersion: number;
  /** production counters only: preview requests are in previewCounters */
  targets: TargetStatus[];
  /** production counters per release id, including releases whose targets were removed */
  releases: Record<string, Counters>;
  /** proxy process id */
  pid: number;
  /** "127.0.0.1:PORT" clients use */
  listen: string;
  /** present when the proxy has a preview listener; release = the table's preview */
  preview?: { listen: string; release?: string };
  /** counters of requests served on the preview listener, per release id (with latency) */
  previewCounters?: Record<string, Counters>;
  /**
   * The maintenance mode the router is applying right now, as given in the
   * table (read back by the controller to confirm `kiln maintenance on|off`);
   * absent when off. Optional: a router without it never reports maintenance.
   */
  maintenance?: MaintenanceMode;
}

export interface Router {
  setTable(table: RoutingTable): Promise<void>;
  stats(): Promise<RouterStats>;
  /**
   * Optional change feed: stats whose `targets` are only those whose status changed since
   * `cursor` (a value from an earlier answer), with the ids that left the table in `removed`;
   * everything else as stats() gives it. `full: true` (first call, or a cursor the router can
   * no longer answer from): `targets` is every target. Without it, stats() is used.
   */
  statsSince?(cursor: number | undefined): Promise<RouterStatsDelta>;
}

export interface RouterStatsDelta extends RouterStats {
  cursor: number;
  full: boolean;
  removed: string[];
}

/** What one release did between two snapshots of its counters. */
export interface CountersWindow {
  /** requests answered to clients */
  requests: number;
  /** errors5xx + connectFailures */
  errors: number;
  /**
   * errors / (requests + connectFailures): errors per attempt. Connect failures
   * are in the denominator too because a failed attempt that was retried on
   * another release's instance is not in this release's `requests`; a release
   * whose instances refuse every connection thus has rate 1, not 0. 0 when
   * there was no traffic at all.
   */
  errorRate: number;
  /** upper bound of the bucket holding the median request; undefined with no latency data */
  p50Ms?: number;
  /** upper bound of the bucket holding the 99th percentile; Infinity in the overflow bucket */
  p99Ms?: number;
}

/**
 * Compare two snapshots of one release's counters (before = undefined: since
 * the proxy started). Pure. A percentile is the upper bound of the bucket
 * holding the ceil(q × n)-th fastest request.
 *
 *   before {requests 100, errors5xx 1}, after {requests 300, errors5xx 3}   → requests 200, errors 2, errorRate 0.01
 *   after {requests 10, connectFailures 10} (each first attempt failed, its retry worked) → errors 10, errorRate 0.5
 *   after {requests 0, connectFailures 4} (all retried on other releases) → errors 4, errorRate 1
 *   no change                                                            → requests 0, errorRate 0, p50/p99 undefined
 *   latency Δ: 98 in ≤5 ms, 2 in ≤500 ms                                 → p50Ms 5, p99Ms 500
 *   latency Δ: 99 in ≤5 ms, 1 in ≤500 ms                                 → p50Ms 5, p99Ms 5
 *   latency Δ: 100 in the overflow bucket                                → p99Ms Infinity
 */
export function windowOf(before: Counters | undefined, after: Counters): CountersWindow {
  const d = (k: "requests" | "errors5xx" | "connectFailures") => Math.max(0, after[k] - (before?.[k] ?? 0));
  const requests = d("requests");
  const connectFailures = d("connectFailures");
  const errors = d("errors5xx") + connectFailures;
  const attempts = requests + connectFailures;
  const out: CountersWindow = { requests, errors, errorRate: attempts > 0 ? Math.min(1, errors / attempts) : 0 };
  if (after.latency) {
    const hist = after.latency.map((n, i) => Math.max(0, n - (before?.latency?.[i] ?? 0)));
    const total = hist.reduce((a, b) => a + b, 0);
    if (total > 0) {
      const quantile = (q: number): number => {
        const rank = Math.max(1, Math.ceil(q * total));
        let seen = 0;
        for (let i = 0; i < hist.length; i++) {
          seen += hist[i]!;
          if (seen >= rank) return LATENCY_BUCKETS_MS[i] ?? Infinity;
        }
        return Infinity;
      };
      out.p50Ms = quantile(0.5);
      out.p99Ms = quantile(0.99);
    }
  }
  return out;
}

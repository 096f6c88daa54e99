// How `kiln up` (src/ops/daemons.ts) and the controller process (main.ts) start or attach to
// HAProxy: both must ask for the same thing, so both read it here.

import { join, resolve } from "node:path";
import type { EdgeSpec, HealthSpec } from "../config/types.js";
import type { HomePaths } from "../home.js";
import type { StartHaproxyOptions } from "../traffic/haproxy/process.js";

/** A service's own HAProxy lives in its home; services sharing a listener (edge.hosts) share one in the listener's directory. */
export function haproxyRunDir(paths: HomePaths): string {
  return paths.edgeDir !== undefined ? join(paths.edgeDir, "haproxy") : join(paths.run, "haproxy");
}

/** How `kiln up` and the controller start (or attach to) HAProxy: both must ask for the same thing. */
export function haproxyOptions(
  paths: HomePaths,
  o: { listen: string; previewListen?: string; edge?: EdgeSpec; health?: HealthSpec; log?: (line: string) => void; specDir?: string; service?: string },
): StartHaproxyOptions {
  const h = o.health;
  const tls = o.edge?.tls;
  return {
    listen: o.listen,
    ...(o.previewListen ? { previewListen: o.previewListen } : {}),
    runDir: haproxyRunDir(paths),
    ...(h ? { health: { path: h.path, intervalMs: h.interval, timeoutMs: h.timeout, healthyThreshold: h.healthyThreshold, unhealthyThreshold: h.unhealthyThreshold } } : {}),
    ...(o.edge ? { instanceHeader: o.edge.instanceHeaders } : {}),
    ...(tls
      ? { tls: { listen: tls.listen, redirectHttp: tls.redirectHttp, certificates: tls.certificates.map((c) => ({ cert: resolve(o.specDir ?? ".", c.cert), key: resolve(o.specDir ?? ".", c.key) })) } }
      : {}),
    ...(o.edge?.metricsListen !== undefined ? { metricsListen: o.edge.metricsListen } : {}),
    ...(o.log ? { log: o.log } : {}),
    ...(o.edge && o.edge.hosts.length > 0 && o.service !== undefined && paths.edgeDir !== undefined
      ? { shared: { service: o.service, route: { hosts: o.edge.hosts, ...(o.edge.pathPrefix !== undefined ? { pathPrefix: o.edge.pathPrefix } : {}) } } }
      : {}),
  };
}

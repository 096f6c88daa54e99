// Several services on one listener: which service's fleet a request goes to,
// by its Host (and an optional path prefix). Pure: data in, data out.

import type { ServiceRoute } from "../router.js";

export interface NamedRoute extends ServiceRoute {
  /** the service the table was sent for ("" = the listener's own service, routed when nothing else matches) */
  service: string;
}

/** "Example.COM:8080" → "example.com"; "[::1]:80" → "[::1]"; undefined → "". */
export function hostName(host: string | undefined): string {
  if (host === undefined) return "";
  const h = host.trim().toLowerCase();
  if (h.startsWith("[")) return h.slice(0, h.indexOf("]") + 1);
  const colon = h.indexOf(":");
  return colon >= 0 ? h.slice(0, colon) : h;
}

/** Does `path` fall under `prefix` ("/api" covers "/api", "/api/x", "/api?q", not "/apix")? */
function underPrefix(path: string, prefix: string): boolean {
  if (prefix === "/" || prefix === "") return true;
  const p = prefix.endsWith("/") ? prefix.slice(0, -1) : prefix;
  if (!path.startsWith(p)) return false;
  const next = path.charAt(p.length);
  return next === "" || next === "/" || next === "?";
}

/**
 * The service serving a request: among routes listing the request's host name
 * (exactly, or by a `*.domain` wildcard covering one label), the one with the
 * longest matching path prefix (no prefix = "/"), exact names before
 * wildcards; when none matches, the route with no hosts (the catch-all, at most
 * one is used: the first); else undefined (the proxy answers 404).
 *
 *   [a {hosts [a.test]}, b {hosts [b.test]}]; "B.test:8080" "/"      → b
 *   [a {hosts [a.test]}, api {hosts [a.test], pathPrefix /api}]; "a.test" "/api/v1" → api
 *   same; "a.test" "/apix"                                             → a (a prefix ends at "/")
 *   [w {hosts [*.c.test]}, x {hosts [x.c.test]}]; "x.c.test" "/"        → x (exact beats wildcard)
 *   [a {hosts [a.test]}, d {hosts []}]; "other.test" "/"              → d (catch-all)
 *   [a {hosts [a.test]}]; "other.test" "/"                            → undefined
 */
export function pickService(routes: readonly NamedRoute[], host: string | undefined, path: string): string | undefined {
  const name = hostName(host);
  const dot = name.indexOf(".");
  const wildcard = dot > 0 ? `*${name.slice(dot)}` : undefined;
  let best: { service: string; rank: number } | undefined;
  let catchAll: string | undefined;
  for (const r of routes) {
    if (r.hosts.length === 0) {
      if (catchAll === undefined && underPrefix(path, r.pathPrefix ?? "/")) catchAll = r.service;
      continue;
    }
    const exact = r.hosts.includes(name);
    if (!exact && (wildcard === undefined || !r.hosts.includes(wildcard))) continue;
    if (!underPrefix(path, r.pathPrefix ?? "/")) continue;
    // Longer prefix first, then exact over wildcard.
    const rank = (r.pathPrefix ?? "/").length * 2 + (exact ? 1 : 0);
    if (best === undefined || rank > best.rank) best = { service: r.service, rank };
  }
  return best?.service ?? catchAll;
}

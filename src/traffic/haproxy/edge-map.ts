// Several services on one HAProxy listener: which backend a request goes to,
// as the entries of one map file HAProxy looks up with `map_beg` (longest
// prefix wins: HAProxy indexes `beg` patterns in a prefix tree). Pure.
//
// A lookup key is the request's host name, its path and a "/" appended:
// "a.test" + "/api/v1" + "/" → "a.test/api/v1/". A route's key is its host and
// its prefix ending in "/", so "a.test/api/" covers /api, /api/x, /api?q but not
// /apix (the same rule as the built-in proxy's routes.ts). The frontend looks up
// the exact host first, then the host with its first label replaced by "*".

import type { ServiceRoute } from "../router.js";

export interface BackendRoute extends ServiceRoute {
  /** the HAProxy backend serving the route */
  backend: string;
}

/** The HAProxy backend of a service on a shared listener; names HAProxy accepts unquoted. */
export function backendOfService(service: string): string {
  return `kiln_svc_${service.replace(/[^A-Za-z0-9_.-]/g, "_")}`;
}

/** A shared service's preview backend: the frontend on the preview listener routes by the same map and appends this. */
export const PREVIEW_SUFFIX = "_preview";

/** "/" or absent → "/"; "/api" and "/api/" → "/api/". */
function prefixKey(prefix: string | undefined): string {
  if (prefix === undefined || prefix === "" || prefix === "/") return "/";
  return prefix.endsWith("/") ? prefix : `${prefix}/`;
}

/**
 * The host map: key → backend. Exact host names also carry the entries of the
 * wildcards covering them, so one `map_beg` lookup on the exact name picks the
 * longest prefix across exact and wildcard routes (exact wins at equal length),
 * as the built-in proxy ranks them. A wildcard's own keys serve hosts without
 * an exact route. Two routes on the same key: the first keeps it. Routes with
 * no hosts get no entry (a shared HAProxy listener has no catch-all).
 *
 *   [a {a.test}, b {b.test}]                               → a.test/ a, b.test/ b
 *   [a {a.test}, api {a.test, /api}]                       → a.test/ a, a.test/api/ api
 *   [w {*.c.test}, x {x.c.test}]                           → *.c.test/ w, x.c.test/ x
 *   [w {*.c.test, /api}, x {x.c.test}]                     → *.c.test/api/ w, x.c.test/ x, x.c.test/api/ w (longer prefix wins)
 *   [a {A.Test}]                                           → a.test/ a (names are matched lowercase)
 *   [a {a.test}, b {a.test}]                               → a.test/ a
 */
export function planHostMap(routes: readonly BackendRoute[]): Map<string, string> {
  const out = new Map<string, string>();
  const exactHosts = new Set<string>();
  for (const r of routes) for (const h of r.hosts) if (!h.startsWith("*.")) exactHosts.add(h.toLowerCase());
  // Exact routes first, so an exact route keeps a key a wildcard also reaches.
  for (const r of routes) {
    for (const h of r.hosts.map((x) => x.toLowerCase())) {
      if (h.startsWith("*.")) continue;
      const k = `${h}${prefixKey(r.pathPrefix)}`;
      if (!out.has(k)) out.set(k, r.backend);
    }
  }
  for (const r of routes) {
    for (const h of r.hosts.map((x) => x.toLowerCase())) {
      if (!h.startsWith("*.")) continue;
      const p = prefixKey(r.pathPrefix);
      if (!out.has(`${h}${p}`)) out.set(`${h}${p}`, r.backend);
      // One label only: "*.c.test" covers "x.c.test", not "y.x.c.test".
      for (const e of exactHosts) {
        const dot = e.indexOf(".");
        if (dot > 0 && `*${e.slice(dot)}` === h && !out.has(`${e}${p}`)) out.set(`${e}${p}`, r.backend);
      }
    }
  }
  return out;
}

/**
 * Runtime-API lines taking the map as HAProxy holds it (`current`) to `desired`:
 * additions first, then changes, then removals, so a key never misses while a
 * service stays.
 *
 *   cur {}, want {a.test/ a}                 → ["add map F a.test/ a"]
 *   cur {a.test/ a}, want {a.test/ b}        → ["set map F a.test/ b"]
 *   cur {a.test/ a, b.test/ b}, want {a.test/ a} → ["del map F b.test/"]
 */
export function planMapSync(file: string, current: ReadonlyMap<string, string>, desired: ReadonlyMap<string, string>): string[] {
  const add: string[] = [];
  const set: string[] = [];
  const del: string[] = [];
  for (const [k, v] of desired) {
    if (!current.has(k)) add.push(`add map ${file} ${k} ${v}`);
    else if (current.get(k) !== v) set.push(`set map ${file} ${k} ${v}`);
  }
  for (const k of current.keys()) if (!desired.has(k)) del.push(`del map ${file} ${k}`);
  return [...add, ...set, ...del];
}

/**
 * `show map FILE` → key → value. Each line is "<ref> <key> <value>".
 *
 *   "0x55d1 a.test/ kiln_svc_a\n0x55d2 b.test/ kiln_svc_b\n" → {a.test/ kiln_svc_a, b.test/ kiln_svc_b}
 */
export function parseShowMap(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const l of text.split("\n")) {
    const [, k, v] = l.trim().split(/\s+/);
    if (k !== undefined && v !== undefined) out.set(k, v);
  }
  return out;
}

/** The map file's text: one "key value" line per entry. */
export function renderHostMap(entries: ReadonlyMap<string, string>): string {
  return [...entries].map(([k, v]) => `${k} ${v}\n`).join("");
}

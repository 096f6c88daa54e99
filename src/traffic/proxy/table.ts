// Checking a routing table that arrives over the admin socket or from the
// state file. Pure: data in, data out. Every problem is reported, each with its
// path, so a controller bug is diagnosable from one 400 response.

import type { HealthCheckConfig, MaintenanceMode, RoutingTable, ServiceRoute, Target } from "../router.js";
import { parseHostPort } from "../../health/probe.js";

export type TableCheck = { ok: true; table: RoutingTable } | { ok: false; problems: string[] };

/** The table a proxy holds before any controller has spoken: routes nothing. */
export const EMPTY_TABLE: RoutingTable = {
  version: 0,
  targets: [],
  health: { path: "/", intervalMs: 2000, timeoutMs: 1000, healthyThreshold: 2, unhealthyThreshold: 2 },
  drainTimeoutMs: 30_000,
};

/** A maintenance message is a sentence or two, not a page. */
export const MAX_MAINTENANCE_MESSAGE = 2000;

/** Health checks faster than this would turn the proxy into a load generator. */
export const MIN_HEALTH_INTERVAL_MS = 10;

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function describe(x: unknown): string {
  if (x === undefined) return "nothing";
  try {
    return JSON.stringify(x)?.slice(0, 60) ?? String(x);
  } catch {
    return typeof x;
  }
}

/**
 * Check an untrusted value against RoutingTable and return a clean copy
 * (unknown keys dropped).
 *
 *   {version: 3, targets: [], health: {...}, drainTimeoutMs: 0} → ok
 *   {version: -1, ...}                     → "version: expected an integer >= 0, got -1"
 *   two targets with id "a"                → "targets[1].id: duplicate id "a""
 *   target address "localhost"             → "targets[0].address: expected "host:port", got "localhost""
 *   releaseWeights {stable: 90, canary: -1} → "releaseWeights.canary: expected a number >= 0, got -1"
 *   preview ""                             → "preview: expected a release id (non-empty string), got """
 *   maintenance {retryAfterS: -1}          → "maintenance.retryAfterS: expected an integer >= 0, got -1"
 *   maintenance {message: 7}               → "maintenance.message: expected a string of at most 2000 characters, got 7"
 * releaseWeights may name releases without targets (they get no traffic until
 * they have some) and preview may name a release without targets (503 there).
 */
export function checkTable(input: unknown): TableCheck {
  const problems: string[] = [];
  if (!isObject(input)) return { ok: false, problems: [`table: expected an object, got ${describe(input)}`] };

  const intAtLeast = (path: string, v: unknown, min: number): number => {
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) {
      problems.push(`${path}: expected an integer >= ${min}, got ${describe(v)}`);
      return min;
    }
    return v;
  };

  const version = intAtLeast("version", input.version, 0);
  const drainTimeoutMs = intAtLeast("drainTimeoutMs", input.drainTimeoutMs, 0);

  let health: HealthCheckConfig = EMPTY_TABLE.health;
  if (!isObject(input.health)) {
    problems.push(`health: expected an object, got ${describe(input.health)}`);
  } else {
    const h = input.health;
    if (typeof h.path !== "string" || !h.path.startsWith("/") || /[\s]/.test(h.path)) {
      problems.push(`health.path: expected a path starting with "/", got ${describe(h.path)}`);
    }
    health = {
      path: typeof h.path === "string" ? h.path : "/",
      intervalMs: intAtLeast("health.intervalMs", h.intervalMs, MIN_HEALTH_INTERVAL_MS),
      timeoutMs: intAtLeast("health.timeoutMs", h.timeoutMs, 1),
      healthyThreshold: intAtLeast("health.healthyThreshold", h.healthyThreshold, 1),
      unhealthyThreshold: intAtLeast("health.unhealthyThreshold", h.unhealthyThreshold, 1),
    };
  }

  const targets: Target[] = [];
  if (!Array.isArray(input.targets)) {
    problems.push(`targets: expected an array, got ${describe(input.targets)}`);
  } else {
    const seen = new Set<string>();
    input.targets.forEach((t: unknown, i: number) => {
      const at = `targets[${i}]`;
      if (!isObject(t)) {
        problems.push(`${at}: expected an object, got ${describe(t)}`);
        return;
      }
      const before = problems.length;
      if (typeof t.id !== "string" || t.id === "") problems.push(`${at}.id: expected a non-empty string, got ${describe(t.id)}`);
      else if (seen.has(t.id)) problems.push(`${at}.id: duplicate id ${describe(t.id)}`);
      else seen.add(t.id);
      if (typeof t.release !== "string" || t.release === "") {
        problems.push(`${at}.release: expected a non-empty string, got ${describe(t.release)}`);
      }
      const hp = typeof t.address === "string" ? parseHostPort(t.address) : undefined;
      if (!hp || hp.port === 0) problems.push(`${at}.address: expected "host:port", got ${describe(t.address)}`);
      if (typeof t.weight !== "number" || !Number.isFinite(t.weight) || t.weight < 0) {
        problems.push(`${at}.weight: expected a number >= 0, got ${describe(t.weight)}`);
      }
      if (t.state !== "active" && t.state !== "draining") {
        problems.push(`${at}.state: expected "active" or "draining", got ${describe(t.state)}`);
      }
      if (problems.length === before) {
        targets.push({
          id: t.id as string,
          release: t.release as string,
          address: t.address as string,
          weight: t.weight as number,
          state: t.state as Target["state"],
        });
      }
    });
  }

  let releaseWeights: Record<string, number> | undefined;
  if (input.releaseWeights !== undefined) {
    if (!isObject(input.releaseWeights)) {
      problems.push(`releaseWeights: expected an object of release id → weight, got ${describe(input.releaseWeights)}`);
    } else {
      releaseWeights = {};
      for (const [release, w] of Object.entries(input.releaseWeights)) {
        if (release === "") problems.push(`releaseWeights: expected non-empty release ids, got ""`);
        else if (typeof w !== "number" || !Number.isFinite(w) || w < 0) {
          problems.push(`releaseWeights.${release}: expected a number >= 0, got ${describe(w)}`);
        } else releaseWeights[release] = w;
      }
    }
  }
  if (input.preview !== undefined && (typeof input.preview !== "string" || input.preview === "")) {
    problems.push(`preview: expected a release id (non-empty string), got ${describe(input.preview)}`);
  }

  let maintenance: MaintenanceMode | undefined;
  if (input.maintenance !== undefined) {
    const m = input.maintenance;
    if (!isObject(m)) problems.push(`maintenance: expected an object {message?, retryAfterS?}, got ${describe(m)}`);
    else {
      maintenance = {};
      if (m.message !== undefined) {
        if (typeof m.message !== "string" || m.message.length > MAX_MAINTENANCE_MESSAGE) {
          problems.push(`maintenance.message: expected a string of at most ${MAX_MAINTENANCE_MESSAGE} characters, got ${describe(m.message)}`);
        } else maintenance.message = m.message;
      }
      if (m.retryAfterS !== undefined) maintenance.retryAfterS = intAtLeast("maintenance.retryAfterS", m.retryAfterS, 0);
    }
  }

  let route: ServiceRoute | undefined;
  if (input.route !== undefined) {
    const r = input.route;
    if (!isObject(r) || !Array.isArray(r.hosts)) problems.push(`route: expected an object {hosts: [...], pathPrefix?}, got ${describe(r)}`);
    else {
      const hosts: string[] = [];
      r.hosts.forEach((h: unknown, i: number) => {
        if (typeof h !== "string" || !/^(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/.test(h)) problems.push(`route.hosts[${i}]: expected a lowercase host name (or *.domain), got ${describe(h)}`);
        else hosts.push(h);
      });
      route = { hosts };
      if (r.pathPrefix !== undefined) {
        if (typeof r.pathPrefix !== "string" || !/^\/\S*$/.test(r.pathPrefix)) problems.push(`route.pathPrefix: expected a path starting with "/", got ${describe(r.pathPrefix)}`);
        else route.pathPrefix = r.pathPrefix;
      }
    }
  }

  if (problems.length > 0) return { ok: false, problems };
  const table: RoutingTable = { version, targets, health, drainTimeoutMs };
  if (route !== undefined) table.route = route;
  if (releaseWeights !== undefined) table.releaseWeights = releaseWeights;
  if (typeof input.preview === "string") table.preview = input.preview;
  if (maintenance !== undefined) table.maintenance = maintenance;
  return { ok: true, table };
}

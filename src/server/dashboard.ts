// The dashboard: one HTML page (dashboard.html, vanilla JS, no framework) and a small HTTP face
// on an opt-in TCP address. Its data are the controller API's own views (status, history,
// events), read through the API app in-process, so the page shows exactly what `kiln status
// --json`, `kiln history` and `kiln events` show; its actions are the API's routes too.

import { getRequestListener } from "@hono/node-server";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Hono as HonoApp } from "hono";
import { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import { KilnError } from "../errors.js";
import { DashboardSessions, checkAction, sessionCookie, setCookieHeader } from "./dashboard-auth.js";

export const DASHBOARD_ACTIONS = ["promote", "pause", "resume", "abort", "rollback"] as const;
export type DashboardAction = (typeof DASHBOARD_ACTIONS)[number];

/** The page, as the build copied it next to this module (scripts/postbuild.mjs). */
export function dashboardHtml(): string {
  return readFileSync(new URL("./dashboard.html", import.meta.url), "utf8");
}

/**
 * Each release's share of the requests the router answered between two readings of its
 * per-release counters, in whole percent; undefined when no request was answered in between.
 *
 * - {r1: 100} → {r1: 180, r2: 20}: 80 + 20 new → {r1: 80, r2: 20}
 * - {r1: 100, r2: 50} → {r1: 100, r2: 90}: only r2 served → {r1: 0, r2: 100}
 * - {r1: 100} → {r1: 100}: nothing served → undefined
 * - {r1: 500} → {r1: 30}: the router restarted (counters went down) → its new count is the delta → {r1: 100}
 * - undefined → anything: no earlier reading → undefined
 */
export function computeShares(prev: Record<string, number> | undefined, cur: Record<string, number>): Record<string, number> | undefined {
  if (!prev) return undefined;
  const delta: Record<string, number> = {};
  let total = 0;
  for (const [r, n] of Object.entries(cur)) {
    const d = n >= (prev[r] ?? 0) ? n - (prev[r] ?? 0) : n;
    delta[r] = d;
    total += d;
  }
  if (total <= 0) return undefined;
  return Object.fromEntries(Object.entries(delta).map(([r, d]) => [r, Math.round((d * 100) / total)]));
}

export interface ShareSample {
  at: number;
  shares: Record<string, number>;
}

export interface DashboardDeps {
  /** the controller's API app (src/server/app.ts): the dashboard reads and acts through it */
  api: HonoApp;
  sessions: DashboardSessions;
  service: string;
  /** the kiln.yaml environment this controller acts on, when one is named */
  environment?: string;
  /** the whole dashboard is read-only (kiln.yaml controller.dashboardReadOnly) */
  readOnly: boolean;
  /** requests the router answered so far, per release (the controller's last reading) */
  requestCounts: () => Record<string, number> | undefined;
  now: () => number;
  html: string;
  /** how often the stream sends a snapshot (ms) */
  intervalMs?: number;
}

/** Share samples kept for the chart: 10 minutes at one a second. */
const MAX_SAMPLES = 600;
/** A stream ends after this long (the page's EventSource reconnects), so no response lives forever. */
const STREAM_MAX_MS = 30 * 60_000;

const page401 = `<!doctype html><meta charset="utf-8"><title>kiln dashboard</title><p>This dashboard needs a session: open the URL that <code>kiln dashboard</code> prints (its token works once).</p>`;

export function createDashboardApp(d: DashboardDeps): Hono {
  const app = new Hono();
  const interval = d.intervalMs ?? 1000;
  const samples: ShareSample[] = [];
  let lastCounts: Record<string, number> | undefined;
  let cached: { at: number; body: string } | undefined;

  const api = async (path: string) => {
    const r = await d.api.request(path);
    return (await r.json()) as Record<string, unknown>;
  };
  /** One snapshot for every open page: built at most once per interval, whatever the number of pages. */
  const snapshot = async (): Promise<string> => {
    const now = d.now();
    if (cached && now - cached.at < interval / 2) return cached.body;
    const counts = d.requestCounts();
    if (counts) {
      const shares = computeShares(lastCounts, counts);
      lastCounts = { ...counts };
      if (shares) samples.push({ at: now, shares });
      if (samples.length > MAX_SAMPLES) samples.splice(0, samples.length - MAX_SAMPLES);
    }
    const [status, history, events] = await Promise.all([api("/v1/status"), api("/v1/history"), api("/v1/events?tail=50")]);
    const body = JSON.stringify({ at: now, service: d.service, environment: d.environment ?? null, status, history, events: events.events ?? [], shares: samples });
    cached = { at: now, body };
    return body;
  };
  const session = (c: { req: { header(n: string): string | undefined } }) => d.sessions.session(sessionCookie(c.req.header("cookie")));
  const noStore = { "cache-control": "no-store" };

  // Every answer: no framing by other sites, no referrer (the URL may still hold a token), only our own scripts.
  app.use("*", async (c, next) => {
    await next();
    c.header("x-frame-options", "DENY");
    c.header("referrer-policy", "no-referrer");
    c.header("x-content-type-options", "nosniff");
    c.header("content-security-policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'");
  });

  app.get("/", (c) => {
    const login = c.req.query("token");
    if (login !== undefined) {
      const s = d.sessions.exchange(login);
      if (!s) return c.html(page401.replace("needs a session", "link was already used or has expired"), 401, noStore);
      // The token leaves the address bar at once: the page itself is loaded with the cookie.
      return c.body(null, 303, { location: "/", "set-cookie": setCookieHeader(s, d.now()), ...noStore });
    }
    if (!session(c)) return c.html(page401, 401, noStore);
    return c.html(d.html, 200, noStore);
  });

  app.get("/api/session", (c) => {
    const s = session(c);
    if (!s) return c.json({ error: { code: "KILN_E_POLICY", message: "no dashboard session" } }, 401);
    return c.json({ service: d.service, csrf: s.csrf, readOnly: d.readOnly || s.readOnly, actor: s.actor }, 200, noStore);
  });

  app.get("/api/snapshot", async (c) => {
    if (!session(c)) return c.json({ error: { code: "KILN_E_POLICY", message: "no dashboard session" } }, 401);
    return c.body(await snapshot(), 200, { "content-type": "application/json", ...noStore });
  });

  app.get("/api/stream", (c) => {
    if (!session(c)) return c.json({ error: { code: "KILN_E_POLICY", message: "no dashboard session" } }, 401);
    return streamSSE(c, async (stream) => {
      let open = true;
      stream.onAbort(() => {
        open = false;
      });
      const end = d.now() + STREAM_MAX_MS;
      let last = "";
      while (open && d.now() < end) {
        const body = await snapshot();
        // An unchanged snapshot still goes out every 15 s or so: it keeps proxies from closing an idle stream.
        if (body !== last) await stream.writeSSE({ event: "snapshot", data: body });
        else await stream.write(": keep-alive\n\n");
        last = body;
        await stream.sleep(interval);
      }
    });
  });

  app.post("/api/actions/:verb", async (c) => {
    const verb = c.req.param("verb") as DashboardAction;
    const s = session(c);
    const check = checkAction({
      session: s,
      origin: c.req.header("origin"),
      fetchSite: c.req.header("sec-fetch-site"),
      host: c.req.header("host"),
      csrf: c.req.header("x-kiln-csrf"),
      dashboardReadOnly: d.readOnly,
    });
    if (!check.ok) return c.json({ error: { code: "KILN_E_POLICY", message: check.reason } }, check.status);
    if (!DASHBOARD_ACTIONS.includes(verb)) return c.json({ error: { code: "KILN_E_USAGE", message: `unknown action "${verb}": one of ${DASHBOARD_ACTIONS.join(", ")}` } }, 400);
    const b = ((await c.req.json().catch(() => ({}))) ?? {}) as { reason?: unknown };
    const reason = typeof b.reason === "string" && b.reason.trim() ? b.reason.trim().slice(0, 2000) : undefined;
    const note = { actor: s!.actor, command: `kiln dashboard: ${verb}`, ...(reason ? { reason } : {}) };
    const r = await d.api.request(`/v1/${verb}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ note }) });
    cached = undefined; // the next snapshot shows the change
    return c.body(await r.text(), r.status as 200, { "content-type": "application/json" });
  });
  return app;
}

/**
 * The dashboard's TCP listener, opened on demand: at start-up when kiln.yaml names an address
 * (controller.dashboardListen), else by the first `kiln dashboard`, on a free 127.0.0.1 port.
 * Either way nothing is served without a session, and a session starts only from a one-time
 * token minted over the controller's socket (which only its owner can open).
 */
export class DashboardListener {
  private server: ReturnType<typeof createServer> | undefined;
  readonly sessions: DashboardSessions;

  constructor(
    private readonly o: Omit<DashboardDeps, "sessions" | "html"> & { listen?: string; log: (line: string) => void },
  ) {
    this.sessions = new DashboardSessions({ now: o.now });
  }

  private opening: Promise<string> | undefined;

  /** The base URL, listening first if need be (two `kiln dashboard` at once share one listener). */
  open(): Promise<string> {
    this.opening ??= this.listen().catch((e: unknown) => {
      this.opening = undefined;
      throw e;
    });
    return this.opening;
  }

  private async listen(): Promise<string> {
    // Unconfigured: port 0, read back once bound (no pick-then-bind race).
    const listen = this.o.listen ?? "127.0.0.1:0";
    const i = listen.lastIndexOf(":");
    const host = listen.slice(0, i).replace(/^\[|\]$/g, "");
    const app = createDashboardApp({ ...this.o, sessions: this.sessions, html: dashboardHtml() });
    const server = createServer(getRequestListener(app.fetch));
    await new Promise<void>((resolve, reject) => {
      server.once("error", (e: NodeJS.ErrnoException) =>
        reject(new KilnError("KILN_E_USAGE", `the controller cannot serve the dashboard on ${listen}: ${e.code ?? e.message}`, { hint: "change controller.dashboardListen in kiln.yaml, or remove it to use a free 127.0.0.1 port" })),
      );
      server.listen({ host, port: Number(listen.slice(i + 1)) }, () => resolve());
    });
    this.server = server;
    const port = (server.address() as AddressInfo).port;
    // A wildcard address is reached on loopback from this machine; an IPv6 literal needs brackets.
    const shown = host === "0.0.0.0" || host === "" ? "127.0.0.1" : host === "::" ? "[::1]" : host.includes(":") ? `[${host}]` : host;
    const base = `http://${shown}:${port}`;
    this.o.log(`dashboard on ${base}${this.o.readOnly ? " (read-only)" : ""}`);
    return base;
  }

  /** A URL with a one-time token. */
  async login(readOnly: boolean, actor: string): Promise<{ url: string; readOnly: boolean }> {
    const base = await this.open();
    const ro = readOnly || this.o.readOnly;
    return { url: `${base}/?token=${this.sessions.mintLogin(ro, actor)}`, readOnly: ro };
  }

  close(): void {
    this.server?.closeAllConnections();
    this.server?.close();
  }
}

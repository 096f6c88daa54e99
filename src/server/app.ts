// The controller's HTTP API. Routes only parse, call the controller and render;
// KilnErrors are mapped to responses here and nowhere else on the server side.

import { Hono } from "hono";
import type { Registry } from "prom-client";
import type { Controller } from "../controller/controller.js";
import type { ChangeNote, DeployRequest } from "../controller/types.js";
import { KilnError, isKilnError } from "../errors.js";
import type { ChangeRecord, StateDb } from "../state/db.js";

const statusFor: Record<string, number> = {
  KILN_E_USAGE: 400,
  KILN_E_SPEC: 400,
  KILN_E_NOT_FOUND: 404,
  KILN_E_CONTROLLER: 409,
  KILN_E_POLICY: 403,
};

export interface AppDeps {
  controller: Controller;
  db: StateDb;
  service: string;
  /** called after the response to POST /v1/shutdown is sent */
  onShutdown: () => void;
  /** on a shared state: the controller that acts while this one waits on standby, else undefined */
  standbyFor?: () => string | undefined;
  /** the controller's Prometheus registry, served at GET /metrics */
  metrics?: Registry;
  /** kiln.yaml's deploy policy on an image digest: throws KILN_E_POLICY when it fails (a client other than the CLI is held to it too) */
  checkPolicy?: (digest: string) => Promise<void>;
  /** `kiln dashboard`: a dashboard URL with a one-time token (the listener opens on first use) */
  dashboard?: (r: { readOnly: boolean; actor: string }) => Promise<{ url: string; readOnly: boolean }>;
  /** the long poll's recheck period (default WAIT_RECHECK_MS; tests lengthen it) */
  waitRecheckMs?: number;
}

const text = (v: unknown, max: number): v is string => typeof v === "string" && v.length > 0 && v.length <= max;

/** The note a request carries, checked; a request without one is recorded as coming from the API. */
export function parseNote(v: unknown): ChangeNote | undefined {
  if (v === undefined || v === null) return undefined;
  const n = v as Record<string, unknown>;
  if (!text(n.actor, 500) || !text(n.command, 1000)) throw new KilnError("KILN_E_USAGE", "note: expected {actor, command} of at most 500 and 1000 characters");
  if (n.reason !== undefined && !text(n.reason, 2000)) throw new KilnError("KILN_E_USAGE", "note.reason: expected text of at most 2000 characters");
  if (n.env !== undefined && !text(n.env, 100)) throw new KilnError("KILN_E_USAGE", "note.env: expected a name of at most 100 characters");
  return { actor: n.actor, command: n.command, ...(n.reason !== undefined ? { reason: n.reason as string } : {}), ...(n.env !== undefined ? { env: n.env as string } : {}) };
}

/** A manual rollback without --reason is recorded as such, so the trail shows it was not explained. */
export const NO_REASON = "no reason given";

/**
 * A waiting watcher's rollout and events are read again when this controller writes either
 * (StateDb.nextChange), and at least this often: for what another process writes to a shared state.
 */
const WAIT_RECHECK_MS = 500;

export function createApp(d: AppDeps): Hono {
  const app = new Hono();
  const body = async (c: { req: { json(): Promise<unknown> } }) => ((await c.req.json().catch(() => ({}))) ?? {}) as Record<string, unknown>;
  const digestOf = (release: string | undefined) => (release ? d.db.getRelease(release)?.digest : undefined);
  /** One audit row for a change the controller accepted. */
  const audit = (note: ChangeNote | undefined, action: string, f: Partial<Pick<ChangeRecord, "release" | "digest" | "previousDigest" | "result" | "detail" | "reason">> = {}) =>
    d.db.addChange({
      at: Date.now(), service: d.service, env: note?.env, actor: note?.actor ?? "unknown (API)", command: note?.command ?? `POST /v1/${action}`,
      action, reason: note?.reason ?? f.reason, release: f.release, digest: f.digest, previousDigest: f.previousDigest, result: f.result ?? "accepted", detail: f.detail,
    });

  app.onError((err, c) => {
    if (isKilnError(err)) return c.json({ error: err.toJSON() }, (statusFor[err.code] ?? 500) as 400);
    return c.json({ error: { code: "KILN_E_INTERNAL", message: err.message } }, 500);
  });

  // A standby controller answers reads; a change goes to the one that acts (it holds the lease).
  app.use("/v1/*", async (c, next) => {
    const holder = d.standbyFor?.();
    if (holder !== undefined && c.req.method === "POST" && c.req.path !== "/v1/shutdown" && c.req.path !== "/v1/dashboard") {
      throw new KilnError("KILN_E_CONTROLLER", `this controller is on standby: ${holder} acts on ${d.service}`, {
        hint: "run the command where that controller runs; this one takes over if that one stops renewing its lease",
      });
    }
    await next();
  });
  app.get("/v1/ping", (c) => c.json({ ok: true, pid: process.pid, ...(d.standbyFor?.() !== undefined ? { standby: true } : {}) }));
  if (d.metrics) {
    const registry = d.metrics;
    app.get("/metrics", async (c) => c.body(await registry.metrics(), 200, { "content-type": registry.contentType }));
  }
  app.get("/v1/status", async (c) => {
    const s = await d.controller.status();
    const holder = d.standbyFor?.();
    return c.json(holder === undefined ? s : { ...s, controller: { ...s.controller, standbyFor: holder } });
  });
  app.get("/v1/history", (c) => c.json({ ...d.controller.history(), changes: d.db.changes(d.service) }));
  app.get("/v1/events", (c) => {
    const tail = Number(c.req.query("tail") ?? "NaN");
    if (Number.isInteger(tail) && tail > 0) return c.json({ events: d.db.recentEvents(d.service, Math.min(tail, 5000)) });
    const after = Number(c.req.query("after") ?? "0");
    return c.json({ events: d.db.events(d.service, Number.isFinite(after) ? after : 0) });
  });
  app.get("/v1/rollouts/:id", (c) => {
    const r = d.controller.rolloutById(Number(c.req.param("id")));
    if (!r) throw new KilnError("KILN_E_NOT_FOUND", `rollout ${c.req.param("id")} not found`);
    return c.json(r);
  });
  // A watcher's long poll: answers once the rollout is no longer running or an event newer than
  // `after` exists (with those events), at the latest after `timeoutMs` (≤ 10 s). Woken by the
  // controller's own writes, it costs nothing while nothing happens, and the rollout's end
  // reaches `kiln deploy` at once instead of after a polling period.
  app.get("/v1/rollouts/:id/wait", async (c) => {
    const id = Number(c.req.param("id"));
    const after = Number(c.req.query("after") ?? "0");
    const waitMs = Math.min(Math.max(Number(c.req.query("timeoutMs") ?? "1000") || 0, 0), 10_000);
    const end = Date.now() + waitMs;
    for (;;) {
      const rollout = d.controller.rolloutById(id);
      if (!rollout) throw new KilnError("KILN_E_NOT_FOUND", `rollout ${c.req.param("id")} not found`);
      const events = d.db.events(d.service, Number.isFinite(after) ? after : 0);
      if (rollout.state !== "running" || events.length > 0 || Date.now() >= end) return c.json({ rollout, events });
      await d.db.nextChange(Math.min(d.waitRecheckMs ?? WAIT_RECHECK_MS, end - Date.now()));
    }
  });
  app.post("/v1/deploy", async (c) => {
    const body = (await c.req.json().catch(() => undefined)) as DeployRequest | undefined;
    if (!body || typeof body.digest !== "string" || !body.spec) throw new KilnError("KILN_E_USAGE", "deploy needs a JSON body with ref, digest and spec");
    await d.checkPolicy?.(body.digest);
    const note = parseNote(body.note);
    await d.controller.checkDeployable(body);
    const r = d.controller.deploy(body);
    audit(note, "deploy", { release: r.release.id, digest: r.release.digest, previousDigest: digestOf(r.release.previous), detail: `${r.release.ref} with ${r.rollout.strategy}` });
    return c.json(r, 202);
  });
  app.post("/v1/rollback", async (c) => {
    const note = parseNote((await body(c)).note);
    const r = d.controller.rollback();
    audit(note, "rollback", { reason: NO_REASON, release: r.release.id, digest: r.release.digest, previousDigest: digestOf(r.rollout.previous), detail: `back to ${r.release.ref}` });
    return c.json(r, 202);
  });
  // The rollout commands: the rollout they act on is the change's target.
  for (const verb of ["promote", "pause", "resume", "abort"] as const) {
    app.post(`/v1/${verb}`, async (c) => {
      const note = parseNote((await body(c)).note);
      const r = d.controller[verb]();
      audit(note, verb, { release: r.target, digest: digestOf(r.target), detail: `${r.kind} rollout ${r.id} (${r.state})` });
      return c.json(r);
    });
  }
  app.post("/v1/record", async (c) => {
    const b = await body(c);
    const changes = Array.isArray(b.changes) ? (b.changes as Record<string, unknown>[]) : [];
    const events = Array.isArray(b.events) ? (b.events as Record<string, unknown>[]) : [];
    if (changes.length > 100 || events.length > 1000) throw new KilnError("KILN_E_USAGE", "record: at most 100 changes and 1000 events per request");
    const rows = changes.map((ch) => {
      const note = parseNote(ch)!;
      if (!text(ch.action, 50) || !text(ch.result, 50)) throw new KilnError("KILN_E_USAGE", "record: each change needs an action and a result");
      const opt = (k: string) => (typeof ch[k] === "string" ? (ch[k] as string).slice(0, 4000) : undefined);
      return { note, action: ch.action as string, f: { release: opt("release"), digest: opt("digest"), previousDigest: opt("previousDigest"), result: ch.result as string, detail: opt("detail") } };
    });
    for (const e of events) {
      if (!text(e.message, 4000) || !["info", "warn", "error"].includes(e.level as string)) throw new KilnError("KILN_E_USAGE", "record: each event needs a level (info, warn, error) and a message");
    }
    d.db.tx(() => {
      for (const r of rows) audit(r.note, r.action, r.f);
      for (const e of events) d.db.addEvent({ at: Date.now(), level: e.level as "info", service: d.service, message: e.message as string, release: typeof e.release === "string" ? e.release : undefined });
    });
    return c.json({ ok: true });
  });
  app.post("/v1/maintenance", async (c) => {
    const body = (await c.req.json().catch(() => undefined)) as { on?: unknown; message?: unknown; retryAfterS?: unknown; note?: unknown } | undefined;
    if (!body || typeof body.on !== "boolean") throw new KilnError("KILN_E_USAGE", 'maintenance needs a JSON body {"on": true|false, "message"?, "retryAfterS"?}');
    if (body.message !== undefined && (typeof body.message !== "string" || body.message.length > 2000)) throw new KilnError("KILN_E_USAGE", "maintenance message: expected text of at most 2000 characters");
    if (body.retryAfterS !== undefined && !(Number.isSafeInteger(body.retryAfterS) && (body.retryAfterS as number) >= 0)) throw new KilnError("KILN_E_USAGE", "maintenance retryAfterS: expected a whole number of seconds >= 0");
    const mode = body.on ? { ...(body.message !== undefined ? { message: body.message as string } : {}), ...(body.retryAfterS !== undefined ? { retryAfterS: body.retryAfterS as number } : {}) } : undefined;
    const note = parseNote(body.note);
    const r = await d.controller.setMaintenance(mode);
    audit(note, "maintenance", { result: "ok", detail: mode ? `on${mode.message ? `: ${mode.message}` : ""}` : "off" });
    return c.json(r);
  });
  app.post("/v1/scale", async (c) => {
    const body = (await c.req.json().catch(() => ({}))) as { instances?: unknown; note?: unknown };
    const note = parseNote(body.note);
    const from = d.controller.desiredInstances();
    const instances = d.controller.scale(Number(body.instances));
    audit(note, "scale", { release: d.controller.liveRelease()?.id, digest: d.controller.liveRelease()?.digest, detail: `${from} → ${instances} instances` });
    return c.json({ instances });
  });
  // Only reachable over the controller's socket (its owner): this is what lets a browser in.
  app.post("/v1/dashboard", async (c) => {
    if (!d.dashboard) throw new KilnError("KILN_E_NOT_FOUND", "this controller serves no dashboard");
    const b = await body(c);
    const note = parseNote(b.note);
    return c.json(await d.dashboard({ readOnly: b.readOnly === true, actor: note?.actor ?? "unknown (API)" }));
  });
  app.post("/v1/shutdown", async (c) => {
    const body = (await c.req.json().catch(() => ({}))) as { stopInstances?: boolean };
    // On standby the instances are the acting controller's: only this process stops.
    if (body.stopInstances !== false && d.standbyFor?.() === undefined) await d.controller.stopAll();
    setImmediate(d.onShutdown);
    return c.json({ ok: true });
  });
  return app;
}

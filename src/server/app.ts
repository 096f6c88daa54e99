// The controller's HTTP API. Routes only parse, call the controller and render;
// KilnErrors are mapped to responses here and nowhere else on the server side.

import { Hono } from "hono";
import type { Controller } from "../controller/controller.js";
import type { DeployRequest } from "../controller/types.js";
import { KilnError, isKilnError } from "../errors.js";
import type { StateDb } from "../state/db.js";

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
  /** kiln.yaml's deploy policy on an image digest: throws KILN_E_POLICY when it fails (a client other than the CLI is held to it too) */
  checkPolicy?: (digest: string) => Promise<void>;
}

export function createApp(d: AppDeps): Hono {
  const app = new Hono();

  app.onError((err, c) => {
    if (isKilnError(err)) return c.json({ error: err.toJSON() }, (statusFor[err.code] ?? 500) as 400);
    return c.json({ error: { code: "KILN_E_INTERNAL", message: err.message } }, 500);
  });

  app.get("/v1/ping", (c) => c.json({ ok: true, pid: process.pid }));
  app.get("/v1/status", async (c) => c.json(await d.controller.status()));
  app.get("/v1/history", (c) => c.json(d.controller.history()));
  app.get("/v1/events", (c) => {
    const after = Number(c.req.query("after") ?? "0");
    return c.json({ events: d.db.events(d.service, Number.isFinite(after) ? after : 0) });
  });
  app.get("/v1/rollouts/:id", (c) => {
    const r = d.controller.rolloutById(Number(c.req.param("id")));
    if (!r) throw new KilnError("KILN_E_NOT_FOUND", `rollout ${c.req.param("id")} not found`);
    return c.json(r);
  });
  app.post("/v1/deploy", async (c) => {
    const body = (await c.req.json().catch(() => undefined)) as DeployRequest | undefined;
    if (!body || typeof body.digest !== "string" || !body.spec) throw new KilnError("KILN_E_USAGE", "deploy needs a JSON body with ref, digest and spec");
    await d.checkPolicy?.(body.digest);
    await d.controller.checkDeployable(body);
    return c.json(d.controller.deploy(body), 202);
  });
  app.post("/v1/rollback", (c) => c.json(d.controller.rollback(), 202));
  app.post("/v1/promote", (c) => c.json(d.controller.promote()));
  app.post("/v1/pause", (c) => c.json(d.controller.pause()));
  app.post("/v1/resume", (c) => c.json(d.controller.resume()));
  app.post("/v1/abort", (c) => c.json(d.controller.abort()));
  app.post("/v1/maintenance", async (c) => {
    const body = (await c.req.json().catch(() => undefined)) as { on?: unknown; message?: unknown; retryAfterS?: unknown } | undefined;
    if (!body || typeof body.on !== "boolean") throw new KilnError("KILN_E_USAGE", 'maintenance needs a JSON body {"on": true|false, "message"?, "retryAfterS"?}');
    if (body.message !== undefined && (typeof body.message !== "string" || body.message.length > 2000)) throw new KilnError("KILN_E_USAGE", "maintenance message: expected text of at most 2000 characters");
    if (body.retryAfterS !== undefined && !(Number.isSafeInteger(body.retryAfterS) && (body.retryAfterS as number) >= 0)) throw new KilnError("KILN_E_USAGE", "maintenance retryAfterS: expected a whole number of seconds >= 0");
    const mode = body.on ? { ...(body.message !== undefined ? { message: body.message as string } : {}), ...(body.retryAfterS !== undefined ? { retryAfterS: body.retryAfterS as number } : {}) } : undefined;
    return c.json(await d.controller.setMaintenance(mode));
  });
  app.post("/v1/scale", async (c) => {
    const body = (await c.req.json().catch(() => ({}))) as { instances?: unknown };
    return c.json({ instances: d.controller.scale(Number(body.instances)) });
  });
  app.post("/v1/shutdown", async (c) => {
    const body = (await c.req.json().catch(() => ({}))) as { stopInstances?: boolean };
    if (body.stopInstances !== false) await d.controller.stopAll();
    setImmediate(d.onShutdown);
    return c.json({ ok: true });
  });
  return app;
}

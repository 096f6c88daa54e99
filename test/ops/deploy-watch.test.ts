// watch() against a controller over its real socket: one that long-polls (this kiln's), and one
// that does not know the long poll (an older kiln's: its framework answers 404 in plain text).

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { RolloutView } from "../../src/controller/types.js";
import { watch } from "../../src/ops/deploy-flow.js";
import { ControllerClient, isUnknownRoute } from "../../src/server/client.js";

const running: RolloutView = { id: 7, kind: "deploy", target: "r2", state: "running", strategy: "rolling", startedAt: "2026-12-04T08:00:00Z" };

/** A controller whose rollout 7 is done once `doneAfter` requests were answered; `longPoll`: it has the wait route. */
async function fakeController(longPoll: boolean, doneAfter: number): Promise<{ client: ControllerClient; paths: string[]; close: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), "kiln-watch-"));
  const socket = join(dir, "c.sock");
  const paths: string[] = [];
  const view = () => (paths.length > doneAfter ? { ...running, state: "done" } : running);
  const server: Server = createServer((req, res) => {
    paths.push(req.url ?? "");
    const json = (v: unknown) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(v));
    const path = (req.url ?? "").split("?")[0];
    if (path === "/v1/rollouts/7/wait") {
      if (!longPoll) return res.writeHead(404, { "content-type": "text/plain" }).end("404 Not Found");
      return json({ rollout: view(), events: paths.length === 1 ? [{ id: 1, at: 0, level: "info", service: "s", message: "deploying" }] : [] });
    }
    if (path === "/v1/rollouts/7") return json(view());
    if (path === "/v1/events") return json({ events: [] });
    if (path === "/v1/history") return json({ releases: [{ id: "r2", status: "live" }], rollouts: [view()] });
    res.writeHead(404, { "content-type": "text/plain" }).end("404 Not Found");
  });
  await new Promise<void>((r) => server.listen(socket, r));
  return { client: new ControllerClient(socket), paths, close: () => (server.close(), rmSync(dir, { recursive: true, force: true })) };
}

test("watch follows a rollout with the controller's long poll, and hears its events", async () => {
  const c = await fakeController(true, 2);
  try {
    const heard: string[] = [];
    const r = await watch(c.client, running, { onEvent: (e) => heard.push(e.message) });
    assert.equal(r.outcome, "live");
    assert.deepEqual(heard, ["deploying"]);
    assert.ok(c.paths.every((p) => !p.startsWith("/v1/rollouts/7?") && p !== "/v1/rollouts/7"), `no plain polls: ${c.paths.join(" ")}`);
  } finally {
    c.close();
  }
});

test("watch falls back to polling a controller without the long poll", async () => {
  const c = await fakeController(false, 3);
  try {
    const r = await watch(c.client, running, {});
    assert.equal(r.outcome, "live");
    assert.equal(c.paths.filter((p) => p.startsWith("/v1/rollouts/7/wait")).length, 1, "asked once, then not again");
    assert.ok(c.paths.includes("/v1/rollouts/7"));
    const e = await c.client.waitRollout(7, 0, 10).catch((x: unknown) => x);
    assert.ok(isUnknownRoute(e), String(e));
  } finally {
    c.close();
  }
});

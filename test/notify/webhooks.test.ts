// The notifier against real HTTP servers in this process, on 127.0.0.1: retries after 500s with
// the same event id, signatures a receiver can check, a dead receiver that holds only its own
// queue, a bounded queue, and giving up with an error report.

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import type { WebhookSpec } from "../../src/config/types.js";
import type { NotifyEvent } from "../../src/notify/event.js";
import { WebhookNotifier } from "../../src/notify/webhooks.js";

interface Received {
  headers: IncomingMessage["headers"];
  body: string;
}

const servers: Server[] = [];
after(() => servers.forEach((s) => s.closeAllConnections?.() ?? s.close()));

async function receiver(answer: (n: number, req: Received, res: ServerResponse) => void): Promise<{ url: string; got: Received[] }> {
  const got: Received[] = [];
  const srv = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      const r = { headers: req.headers, body };
      got.push(r);
      answer(got.length, r, res);
    });
  });
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}/hook`, got };
}

const hook = (url: string, extra: Partial<WebhookSpec> = {}): WebhookSpec => ({ url, format: "json", events: [], timeout: 2000, attempts: 4, backoff: 20, ...extra });
const event = (type: NotifyEvent["type"], message: string = type): NotifyEvent => ({ type, at: 1_700_000_000_000, service: "hello", message });

async function waitFor(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("WebhookNotifier", () => {
  it("retries after 500s with the same event id, then delivers; both signatures verify", async () => {
    const rx = await receiver((n, _r, res) => res.writeHead(n <= 2 ? 500 : 200).end());
    const errors: string[] = [];
    const n = new WebhookNotifier({ webhooks: [hook(rx.url, { secretEnv: "S" })], queueSize: 10, secrets: { S: "s3cret" }, onError: (m) => errors.push(m), random: () => 0 });
    n.send(event("rollout.live"));
    await waitFor(() => rx.got.length === 3 && n.pending() === 0, "3 attempts");
    const ids = new Set(rx.got.map((g) => g.headers["x-kiln-event-id"]));
    assert.equal(ids.size, 1, "one event id across retries");
    const last = rx.got[2]!;
    assert.equal(JSON.parse(last.body).id, last.headers["webhook-id"]);
    assert.equal(last.headers["x-kiln-signature-256"], `sha256=${createHmac("sha256", "s3cret").update(last.body).digest("hex")}`);
    const std = createHmac("sha256", "s3cret").update(`${last.headers["webhook-id"]}.${last.headers["webhook-timestamp"]}.${last.body}`).digest("base64");
    assert.equal(last.headers["webhook-signature"], `v1,${std}`);
    assert.deepEqual(errors, []);
    n.stop();
  });

  it("a dead receiver holds only its own queue: send returns at once and the live receiver gets everything in order", async () => {
    const hung: ServerResponse[] = [];
    const dead = await receiver((_n, _r, res) => hung.push(res)); // never answers
    const ok = await receiver((_n, _r, res) => res.writeHead(204).end());
    const errors: string[] = [];
    const n = new WebhookNotifier({ webhooks: [hook(dead.url, { timeout: 60_000, attempts: 2 }), hook(ok.url)], queueSize: 100, onError: (m) => errors.push(m) });
    for (const t of ["rollout.started", "rollout.paused", "rollout.live"] as const) n.send(event(t));
    await waitFor(() => ok.got.length === 3, "the live receiver's deliveries");
    assert.deepEqual(ok.got.map((g) => JSON.parse(g.body).type), ["rollout.started", "rollout.paused", "rollout.live"]);
    assert.equal(dead.got.length, 1, "the dead receiver holds its first delivery");
    // the live receiver's last delivery leaves the count once its answer is read
    await waitFor(() => n.pending() === 3, "its 3 events (1 in flight, 2 waiting) to be all that is left");
    n.stop();
    hung.forEach((r) => r.destroy());
  });

  it("gives up after its attempts with an error report; a 4xx is not retried", async () => {
    const rx = await receiver((_n, r, res) => res.writeHead(JSON.parse(r.body).type === "rollout.live" ? 503 : 404).end());
    const errors: string[] = [];
    const n = new WebhookNotifier({ webhooks: [hook(rx.url, { attempts: 3 })], queueSize: 10, onError: (m) => errors.push(m) });
    n.send(event("rollout.live"));
    n.send(event("rollout.aborted"));
    await waitFor(() => errors.length === 2, "two reports");
    assert.equal(rx.got.length, 4, "3 tries of the 503, 1 of the 404");
    assert.match(errors[0]!, /gave up on rollout\.live .* answered 503/);
    assert.match(errors[1]!, /gave up on rollout\.aborted .* answered 404/);
    n.stop();
  });

  it("a receiver that refuses connections is retried, then reported", async () => {
    const rx = await receiver((_n, _r, res) => res.end());
    const url = rx.url;
    servers.pop()!.close();
    await new Promise((r) => setTimeout(r, 50));
    const errors: string[] = [];
    const n = new WebhookNotifier({ webhooks: [hook(url, { attempts: 2 })], queueSize: 10, onError: (m) => errors.push(m) });
    n.send(event("fleet.healing"));
    await waitFor(() => errors.length === 1, "the report");
    assert.match(errors[0]!, /gave up on fleet\.healing .*ECONNREFUSED/);
  });

  it("a full queue drops its oldest event and says so; filters by event; slack format", async () => {
    const hung: ServerResponse[] = [];
    const dead = await receiver((_n, _r, res) => hung.push(res));
    const slack = await receiver((_n, _r, res) => res.writeHead(200).end());
    const errors: string[] = [];
    const n = new WebhookNotifier({ webhooks: [hook(dead.url, { timeout: 60_000 }), hook(slack.url, { format: "slack", events: ["rollout.live"] })], queueSize: 2, onError: (m) => errors.push(m) });
    for (let i = 0; i < 4; i++) n.send(event("rollout.started", `deploy ${i}`));
    n.send(event("rollout.live", "release live: r1"));
    await waitFor(() => slack.got.length === 1, "the slack delivery");
    assert.deepEqual(JSON.parse(slack.got[0]!.body), { text: "[hello] rollout.live: release live: r1" });
    // The dead receiver holds "deploy 0" in flight; of the four sent after it, two wait and the
    // two oldest of them were dropped (never the one in flight).
    assert.deepEqual(errors.length, 2, errors.join("\n"));
    assert.ok(errors.every((e) => /queue full \(2\)/.test(e)), errors.join("\n"));
    await waitFor(() => n.pending() === 3, "the slack queue to empty (1 in flight + 2 waiting on the dead receiver)");
    n.stop();
    hung.forEach((r) => r.destroy());
  });
});

// Webhooks end to end: examples/hello on the local provider, the real controller sending rollout
// events to HTTP receivers run by this test on 127.0.0.1 — one that answers 500 twice before
// accepting (retries, one event id, HMAC signatures), a Slack-format one, one that never answers
// (it must not hold a rollout) and a closed port (bounded retries, then an error event).

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { parseDocument } from "yaml";
import { homeFor, homePaths } from "../../src/home.js";
import { StateDb } from "../../src/state/db.js";
import { bakeAndDeploy, freePort, hasBwrap, helloWorkspace, inRotation, kiln, kilnDown, kilnStatus, requireTool, until } from "./support.js";

let ws: Awaited<ReturnType<typeof helloWorkspace>>;
let up = false;
const SECRET = "it-webhook-secret";
const secretEnv = { KILN_IT_WEBHOOK_SECRET: SECRET };

interface Delivery {
  path: string;
  headers: IncomingMessage["headers"];
  body: string;
  status: number;
}
const got: Delivery[] = [];
const hung: ServerResponse[] = [];
let jsonTries = 0;
const servers: Server[] = [];

async function listen(handler: (req: IncomingMessage, body: string, res: ServerResponse) => void): Promise<number> {
  const srv = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => handler(req, body, res));
  });
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  return (srv.address() as AddressInfo).port;
}

const json = (type: string) => got.filter((d) => d.path === "/json" && d.status === 200 && JSON.parse(d.body).type === type).map((d) => JSON.parse(d.body) as Record<string, any>);
const slack = () => got.filter((d) => d.path === "/slack").map((d) => JSON.parse(d.body) as { text: string });

function withDb<T>(fn: (db: StateDb) => T): T {
  const db = new StateDb(homePaths(homeFor(join(ws.dir, "kiln.yaml"))).stateDb);
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

before(async () => {
  const port = await listen((req, body, res) => {
    // /json: the first two deliveries of all answer 500, the rest 200
    const status = req.url === "/json" && ++jsonTries <= 2 ? 500 : 200;
    got.push({ path: req.url ?? "", headers: req.headers, body, status });
    res.writeHead(status).end();
  });
  const dead = await listen((_req, _body, res) => hung.push(res));
  const closed = await freePort();
  ws = await helloWorkspace("kiln-webhooks-");
  const f = join(ws.dir, "kiln.yaml");
  const doc = parseDocument(readFileSync(f, "utf8"));
  doc.set("instances", 2);
  doc.set(
    "notify",
    doc.createNode({
      webhooks: [
        { url: `http://127.0.0.1:${port}/json`, secretEnv: "KILN_IT_WEBHOOK_SECRET", backoff: "100ms", attempts: 5 },
        { url: `http://127.0.0.1:${port}/slack`, format: "slack", events: ["rollout.live", "rollout.rolled-back"] },
        { url: `http://127.0.0.1:${dead}/dead`, timeout: "300s", attempts: 2 },
        { url: `http://127.0.0.1:${closed}/closed`, attempts: 2, backoff: "100ms", events: ["rollout.started"] },
      ],
    }),
  );
  writeFileSync(f, doc.toString());
});

after(async () => {
  if (ws) {
    if (up) await kilnDown([], { cwd: ws.dir });
    rmSync(ws.dir, { recursive: true, force: true });
  }
  hung.forEach((r) => r.destroy());
  servers.forEach((s) => s.close());
});

test("kiln up refuses to start when a webhook's secret variable is not set (exit 2, names it)", async (t) => {
  if (!requireTool(hasBwrap, "bubblewrap is not installed (apt-get install bubblewrap)", t)) return;
  const r = await kiln(["up", "--detach"], { cwd: ws.dir });
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /KILN_IT_WEBHOOK_SECRET .* is not set/);
});

test("a deploy finishes while a dead receiver holds a delivery open; the others get signed events after retries", async (t) => {
  if (!requireTool(hasBwrap, "bubblewrap is not installed (apt-get install bubblewrap)", t)) return;
  const b = await kiln(["bake"], { cwd: ws.dir });
  assert.equal(b.code, 0, b.stderr);
  const u = await kiln(["up", "--detach"], { cwd: ws.dir, env: secretEnv });
  assert.equal(u.code, 0, u.stderr);
  up = true;
  const d = await kiln(["deploy"], { cwd: ws.dir });
  assert.equal(d.code, 0, d.stdout + d.stderr);
  // The rollout went live while the dead receiver still held its first delivery, unanswered.
  assert.ok(hung.length >= 1 && hung.every((r) => !r.writableEnded), `the dead receiver holds ${hung.length} open deliveries`);

  await until(() => json("rollout.live").length === 1 && slack().length === 1, 30_000, "rollout.live at /json and /slack");
  const started = got.filter((x) => x.path === "/json" && JSON.parse(x.body).type === "rollout.started");
  assert.deepEqual(started.map((x) => x.status), [500, 500, 200], "retried after two 500s");
  assert.equal(new Set(started.map((x) => x.headers["x-kiln-event-id"])).size, 1, "one event id across retries");
  for (const x of got.filter((g) => g.path === "/json")) {
    assert.equal(x.headers["x-kiln-signature-256"], `sha256=${createHmac("sha256", SECRET).update(x.body).digest("hex")}`);
    const std = createHmac("sha256", SECRET).update(`${x.headers["webhook-id"]}.${x.headers["webhook-timestamp"]}.${x.body}`).digest("base64");
    assert.equal(x.headers["webhook-signature"], `v1,${std}`);
    assert.equal(JSON.parse(x.body).id, x.headers["webhook-id"]);
  }
  const live = json("rollout.live")[0]!;
  assert.equal(live.service, "hello");
  assert.equal(live.release.id, "r1");
  assert.equal(live.release.version, "1.0.0");
  assert.match(live.release.digest, /^sha256:[0-9a-f]{64}$/);
  assert.match(slack()[0]!.text, /^\[hello\] rollout\.live: release live: r1 \(1\.0\.0, sha256:[0-9a-f]{12}\) — 2 instances of the new release in rotation$/);
  assert.ok(!got.some((g) => g.path === "/slack" && g.body.includes("rollout.started")), "slack gets only the events it asked for");

  // The closed port was tried a bounded number of times, then reported as an error event.
  await until(() => withDb((db) => db.events("hello").some((e) => e.level === "error" && /\/closed: gave up on rollout\.started/.test(e.message))), 30_000, "the error event for the closed port");
});

test("a broken release: aborted, an automatic rollback started and rolled back, each sent", async (t) => {
  if (!up) return t.skip("no fleet");
  const d = await bakeAndDeploy(ws, "2.0.0", { healthy: false });
  assert.equal(d.code, 1, d.stdout + d.stderr);
  await until(() => json("rollout.rolled-back").length === 1, 30_000, "rollout.rolled-back");
  const aborted = json("rollout.aborted");
  assert.equal(aborted.length, 1);
  assert.equal(aborted[0]!.rollout.target, "r2");
  assert.match(aborted[0]!.reason, /health/);
  const back = json("rollout.started").filter((e) => e.rollout.kind === "rollback");
  assert.equal(back.length, 1);
  assert.equal(back[0]!.release.id, "r1");
  assert.equal(json("rollout.rolled-back")[0]!.release.id, "r1");
  await until(() => slack().some((s) => s.text.startsWith("[hello] rollout.rolled-back: rolled back to r1")), 10_000, "the rollback at /slack");
});

test("a killed instance: fleet.healing is sent", async (t) => {
  if (!up) return t.skip("no fleet");
  const victim = inRotation(await kilnStatus(ws.dir))[0]!;
  process.kill(-victim.pid!, "SIGKILL");
  await until(() => json("fleet.healing").length >= 1, 60_000, "fleet.healing");
  const heal = json("fleet.healing")[0]!;
  assert.equal(heal.release.id, "r1");
  assert.match(heal.reason, /^heal: /);
});

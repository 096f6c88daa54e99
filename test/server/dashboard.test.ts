// The dashboard's sessions, CSRF and origin checks and its reads/actions, in process (hono's
// app.request) over the fake world. Spawns nothing.

import assert from "node:assert/strict";
import { test } from "node:test";
import type { ReleaseView, StatusView } from "../../src/controller/types.js";
import { createApp } from "../../src/server/app.js";
import { DashboardSessions, checkAction, sessionCookie, type DashboardSession } from "../../src/server/dashboard-auth.js";
import { DashboardListener, computeShares, createDashboardApp } from "../../src/server/dashboard.js";
import { deployReq, releaseSpec, world } from "../controller/fake-world.js";

const session: DashboardSession = { id: "s1", csrf: "c-secret", readOnly: false, actor: "ann@box", expiresAt: 1e15 };

test("checkAction: the worked examples, first failure answers", () => {
  const base = { session, host: "127.0.0.1:8090", origin: "http://127.0.0.1:8090", csrf: "c-secret", dashboardReadOnly: false };
  const rows: Array<[string, Parameters<typeof checkAction>[0], number | "ok"]> = [
    ["no session", { ...base, session: undefined }, 401],
    ["foreign Origin", { ...base, origin: "http://evil.example" }, 403],
    ["Origin on another port", { ...base, origin: "http://127.0.0.1:9999" }, 403],
    ["no Origin (curl) with cookie and token", { ...base, origin: undefined }, "ok"],
    ["Sec-Fetch-Site cross-site", { ...base, fetchSite: "cross-site" }, 403],
    ["no CSRF header", { ...base, csrf: undefined }, 403],
    ["wrong CSRF header", { ...base, csrf: "c-secreT" }, 403],
    ["CSRF of another length", { ...base, csrf: "c" }, 403],
    ["read-only session", { ...base, session: { ...session, readOnly: true } }, 403],
    ["dashboard started read-only", { ...base, dashboardReadOnly: true }, 403],
    ["all good", base, "ok"],
  ];
  for (const [name, input, want] of rows) {
    const got = checkAction(input);
    assert.equal(got.ok ? "ok" : got.status, want, name);
  }
  const ro = checkAction({ ...base, session: { ...session, readOnly: true } });
  assert.ok(!ro.ok && /read-only/.test(ro.reason));
  const csrf = checkAction({ ...base, csrf: undefined });
  assert.ok(!csrf.ok && /CSRF/.test(csrf.reason));
});

test("computeShares: the worked examples", () => {
  assert.deepEqual(computeShares({ r1: 100 }, { r1: 180, r2: 20 }), { r1: 80, r2: 20 });
  assert.deepEqual(computeShares({ r1: 100, r2: 50 }, { r1: 100, r2: 90 }), { r1: 0, r2: 100 });
  assert.equal(computeShares({ r1: 100 }, { r1: 100 }), undefined);
  assert.deepEqual(computeShares({ r1: 500 }, { r1: 30 }), { r1: 100 });
  assert.equal(computeShares(undefined, { r1: 30 }), undefined);
});

test("sessions: a login token works once and expires; a session expires", () => {
  let now = 1000;
  let n = 0;
  const s = new DashboardSessions({ now: () => now, token: () => `t${++n}`, loginTtlMs: 60_000, sessionTtlMs: 3600_000 });
  const login = s.mintLogin(false, "ann@box");
  const got = s.exchange(login);
  assert.ok(got);
  assert.equal(got.actor, "ann@box");
  assert.equal(got.readOnly, false);
  assert.notEqual(got.id, got.csrf);
  assert.equal(s.exchange(login), undefined, "a used token is refused");
  assert.equal(s.session(got.id)?.id, got.id);

  const late = s.mintLogin(true, "bob@box");
  now += 60_001;
  assert.equal(s.exchange(late), undefined, "an expired login token is refused");
  const ro = s.exchange(s.mintLogin(true, "bob@box"));
  assert.equal(ro?.readOnly, true);
  now += 3600_001;
  assert.equal(s.session(got.id), undefined, "an expired session is gone");
  assert.equal(s.session(undefined), undefined);
  assert.equal(sessionCookie("a=b; kiln_dashboard=xyz; c=d"), "xyz");
  assert.equal(sessionCookie(undefined), undefined);
});

async function setup(opts: { readOnly?: boolean } = {}) {
  const w = world();
  const api = createApp({
    controller: w.controller,
    db: w.db,
    service: "svc",
    onShutdown: () => undefined,
  });
  const sessions = new DashboardSessions({ now: () => Date.now() });
  let counts: Record<string, number> = {};
  const dash = createDashboardApp({ api, sessions, service: "svc", readOnly: opts.readOnly ?? false, requestCounts: () => counts, now: () => Date.now(), html: "<!doctype html><title>page</title>", intervalMs: 0 });
  const deploy = async (v: string) => {
    const r = await api.request("/v1/deploy", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(deployReq(v, releaseSpec())) });
    assert.equal(r.status, 202);
    await w.run(() => w.db.activeRollout("svc") === undefined);
  };
  /** A browser's login: the token for a cookie. */
  const login = async (readOnly = false) => {
    const r = await dash.request(`/?token=${sessions.mintLogin(readOnly, "ann@box")}`);
    assert.equal(r.status, 303);
    const cookie = r.headers.get("set-cookie") ?? "";
    return { cookie: cookie.split(";")[0]!, raw: cookie };
  };
  return { w, api, dash, deploy, login, sessions, setCounts: (c: Record<string, number>) => (counts = c) };
}

test("the page: no session → 401; a token → cookie (HttpOnly, SameSite=Strict) and a redirect without it; a used token → 401", async () => {
  const { dash, sessions, login } = await setup();
  assert.equal((await dash.request("/")).status, 401);
  assert.equal((await dash.request("/api/snapshot")).status, 401);
  assert.equal((await dash.request("/api/stream")).status, 401);
  const token = sessions.mintLogin(false, "ann@box");
  const first = await dash.request(`/?token=${token}`);
  assert.equal(first.status, 303);
  assert.equal(first.headers.get("location"), "/");
  const setCookie = first.headers.get("set-cookie") ?? "";
  assert.match(setCookie, /^kiln_dashboard=[\w-]+;/);
  assert.match(setCookie, /HttpOnly/);
  assert.match(setCookie, /SameSite=Strict/);
  assert.equal((await dash.request(`/?token=${token}`)).status, 401, "a token works once");
  assert.equal((await dash.request("/?token=guessed")).status, 401);

  const { cookie } = await login();
  const page = await dash.request("/", { headers: { cookie } });
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<title>page<\/title>/);
  assert.equal(page.headers.get("x-frame-options"), "DENY");
  const s = (await (await dash.request("/api/session", { headers: { cookie } })).json()) as { csrf: string; readOnly: boolean; actor: string };
  assert.equal(s.readOnly, false);
  assert.equal(s.actor, "ann@box");
  assert.ok(s.csrf.length >= 20);
});

test("the snapshot is the API's own views, and measured shares accumulate", async () => {
  const { api, dash, deploy, login, setCounts } = await setup();
  await deploy("v1");
  const { cookie } = await login();
  const status = (await (await api.request("/v1/status")).json()) as StatusView;
  const rel = status.release!.id;
  setCounts({ [rel]: 10 });
  await dash.request("/api/snapshot", { headers: { cookie } });
  setCounts({ [rel]: 40, other: 10 });
  const snap = (await (await dash.request("/api/snapshot", { headers: { cookie } })).json()) as { status: StatusView; history: { releases: ReleaseView[] }; shares: { shares: Record<string, number> }[]; events: unknown[] };
  assert.deepEqual(snap.status.release, status.release);
  assert.deepEqual(snap.status.instances.map((i) => i.id), status.instances.map((i) => i.id));
  assert.equal(snap.history.releases.length, 1);
  assert.ok(snap.events.length > 0);
  assert.deepEqual(snap.shares.at(-1)?.shares, { [rel]: 75, other: 25 });
});

test("actions: refused without session, CSRF token or same origin, and for read-only; a rollback with them goes through and is recorded with the actor", async () => {
  const { w, api, dash, deploy, login } = await setup();
  await deploy("v1");
  await deploy("v2");
  const { cookie } = await login();
  const { csrf } = (await (await dash.request("/api/session", { headers: { cookie } })).json()) as { csrf: string };
  const act = (verb: string, headers: Record<string, string>) =>
    dash.request(`/api/actions/${verb}`, { method: "POST", headers: { "content-type": "application/json", host: "127.0.0.1:8090", ...headers }, body: JSON.stringify({ reason: "bad v2" }) });

  assert.equal((await act("rollback", { "x-kiln-csrf": csrf })).status, 401, "no cookie");
  assert.equal((await act("rollback", { cookie })).status, 403, "no CSRF token");
  assert.equal((await act("rollback", { cookie, "x-kiln-csrf": "x".repeat(csrf.length) })).status, 403, "wrong CSRF token");
  assert.equal((await act("rollback", { cookie, "x-kiln-csrf": csrf, origin: "http://evil.example" })).status, 403, "another origin");
  const ro = await login(true);
  const roCsrf = ((await (await dash.request("/api/session", { headers: { cookie: ro.cookie } })).json()) as { csrf: string }).csrf;
  assert.equal((await act("rollback", { cookie: ro.cookie, "x-kiln-csrf": roCsrf, origin: "http://127.0.0.1:8090" })).status, 403, "read-only session");
  assert.equal((await act("reboot", { cookie, "x-kiln-csrf": csrf })).status, 400, "unknown action");
  const liveBefore = ((await (await api.request("/v1/status")).json()) as StatusView).release!;
  assert.equal(liveBefore.version, "v2");
  assert.equal(w.db.changes("svc").filter((c) => c.action === "rollback").length, 0, "nothing refused was recorded");

  const ok = await act("rollback", { cookie, "x-kiln-csrf": csrf, origin: "http://127.0.0.1:8090" });
  assert.equal(ok.status, 202, await ok.clone().text());
  await w.run(() => w.db.activeRollout("svc") === undefined);
  const after = ((await (await api.request("/v1/status")).json()) as StatusView).release!;
  assert.equal(after.version, "v1");
  const change = w.db.changes("svc").find((c) => c.action === "rollback")!;
  assert.equal(change.actor, "ann@box");
  assert.equal(change.command, "kiln dashboard: rollback");
  assert.equal(change.reason, "bad v2");
  // A rollout command with nothing running is the API's own error, passed through.
  const promote = await act("promote", { cookie, "x-kiln-csrf": csrf });
  assert.equal(promote.status, 409);
});

test("a dashboard started read-only refuses actions even for a full session", async () => {
  const { dash, login } = await setup({ readOnly: true });
  const { cookie } = await login(false);
  const s = (await (await dash.request("/api/session", { headers: { cookie } })).json()) as { csrf: string; readOnly: boolean };
  assert.equal(s.readOnly, true);
  const r = await dash.request("/api/actions/pause", { method: "POST", headers: { cookie, "x-kiln-csrf": s.csrf } });
  assert.equal(r.status, 403);
});

test("POST /v1/dashboard on the controller's socket mints a login; without a dashboard it is 404", async () => {
  const w = world();
  const asked: unknown[] = [];
  const api = createApp({
    controller: w.controller,
    db: w.db,
    service: "svc",
    onShutdown: () => undefined,
    dashboard: async (r) => {
      asked.push(r);
      return { url: "http://127.0.0.1:1/?token=t", readOnly: r.readOnly };
    },
  });
  const r = await api.request("/v1/dashboard", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ readOnly: true, note: { actor: "ann@box", command: "kiln dashboard" } }) });
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), { url: "http://127.0.0.1:1/?token=t", readOnly: true });
  assert.deepEqual(asked, [{ readOnly: true, actor: "ann@box" }]);
  const none = createApp({ controller: w.controller, db: w.db, service: "svc", onShutdown: () => undefined });
  assert.equal((await none.request("/v1/dashboard", { method: "POST" })).status, 404);
});

test("the listener over real HTTP on loopback: login, the page, one SSE snapshot; two opens share one port", async () => {
  const w = world();
  const api = createApp({ controller: w.controller, db: w.db, service: "svc", onShutdown: () => undefined });
  const logs: string[] = [];
  const l = new DashboardListener({ api, service: "svc", environment: "staging", readOnly: false, requestCounts: () => ({}), now: () => Date.now(), log: (x) => logs.push(x), intervalMs: 50 });
  try {
    const [a, b] = await Promise.all([l.login(false, "ann@box"), l.login(true, "bob@box")]);
    assert.equal(new URL(a.url).origin, new URL(b.url).origin);
    assert.equal(b.readOnly, true);
    assert.equal(logs.filter((x) => x.startsWith("dashboard on")).length, 1);
    const res = await fetch(a.url, { redirect: "manual" });
    assert.equal(res.status, 303);
    const cookie = (res.headers.get("set-cookie") ?? "").split(";")[0]!;
    const page = await fetch(new URL(a.url).origin + "/", { headers: { cookie } });
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<title>kiln dashboard<\/title>/, "the page the build copied next to the module");
    const ac = new AbortController();
    const stream = await fetch(new URL(a.url).origin + "/api/stream", { headers: { cookie }, signal: ac.signal });
    assert.equal(stream.status, 200);
    assert.match(stream.headers.get("content-type") ?? "", /text\/event-stream/);
    const reader = stream.body!.getReader();
    let text = "";
    const until = Date.now() + 5000;
    while (!text.includes("\n\n") && Date.now() < until) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    ac.abort();
    assert.match(text, /^event: snapshot\ndata: /);
    const data = JSON.parse(text.split("\n").find((x) => x.startsWith("data: "))!.slice(6)) as { service: string; environment: string; status: StatusView };
    assert.equal(data.service, "svc");
    assert.equal(data.environment, "staging");
    assert.equal(data.status.service, "svc");
  } finally {
    l.close();
  }
});

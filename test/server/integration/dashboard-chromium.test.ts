// The dashboard in Debian's Chromium (headless, driven by puppeteer-core), against a real
// controller (`kiln up`, local provider, the hello example): a canary deploy under light load
// is seen live (the canary's measured traffic share moves on the page), a rollback clicked and
// confirmed on the page completes (the page and `kiln status --json` agree), a read-only
// session has no action buttons, and the dashboard refuses actions without session or CSRF token.

import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { parseDocument } from "yaml";
import { startLoad, type LoadHandle } from "../../../src/loadgen/client.js";
import { hasBwrap, helloWorkspace, kiln, kilnDown, kilnStatus, repoRoot, requireTool, until } from "../../integration/support.js";

const CHROMIUM = "/usr/bin/chromium";
/** Screenshots are kept as test artifacts here; KILN_DASHBOARD_SCREENSHOT=docs also refreshes docs/dashboard.png. */
const artifacts = process.env.KILN_TEST_ARTIFACTS ?? join(tmpdir(), "kiln-test-artifacts");

async function dashboardUrl(dir: string, readOnly = false): Promise<string> {
  const r = await kiln(["dashboard", "--json", ...(readOnly ? ["--read-only"] : [])], { cwd: dir });
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { url: string; readOnly: boolean };
  assert.equal(j.readOnly, readOnly);
  assert.match(j.url, /^http:\/\/127\.0\.0\.1:\d+\/\?token=[\w-]{20,}$/);
  return j.url;
}

/** What the page shows now, read from its DOM. */
function readPage(page: Page) {
  return page.evaluate(() => {
    const rows = [...document.querySelectorAll<HTMLTableRowElement>("#shares tr[data-release]")].map((tr) => ({
      release: tr.dataset.release ?? "",
      version: tr.cells[1]?.textContent ?? "",
      share: (tr.querySelector<HTMLElement>("td.share")?.dataset.share ?? "") === "" ? undefined : Number(tr.querySelector<HTMLElement>("td.share")!.dataset.share),
    }));
    return {
      live: document.getElementById("live-release")?.dataset.release ?? "",
      connected: document.getElementById("conn")?.dataset.live === "1",
      rolloutState: document.getElementById("rollout-state")?.dataset.state ?? "",
      rows,
      buttons: [...document.querySelectorAll<HTMLButtonElement>("button[data-action]")].map((b) => ({ action: b.dataset.action ?? "", disabled: b.disabled })),
      chartLines: document.querySelectorAll("#chart polyline").length,
      instances: document.querySelectorAll("#instances tr[data-instance]").length,
      historyRows: document.querySelectorAll("#releases tr[data-release]").length,
      overflowX: document.documentElement.scrollWidth - window.innerWidth,
    };
  });
}

describe("the dashboard in Chromium", () => {
  let ws: Awaited<ReturnType<typeof helloWorkspace>> | undefined;
  let load: LoadHandle | undefined;
  let browser: Browser | undefined;
  after(async () => {
    await browser?.close().catch(() => undefined);
    await load?.stop();
    if (ws) {
      await kilnDown([], { cwd: ws.dir });
      rmSync(ws.dir, { recursive: true, force: true });
    }
  });

  test("a canary's traffic share moves on the page; a rollback clicked there completes; read-only has no actions", { timeout: 300_000 }, async (t) => {
    if (!requireTool(hasBwrap, "needs bubblewrap (the local provider)", t)) return;
    if (!requireTool(existsSync(CHROMIUM), `needs Debian's chromium at ${CHROMIUM} (apt-get install chromium)`, t)) return;
    ws = await helloWorkspace("kiln-it-dashboard-");
    const dir = ws.dir;
    const doc = parseDocument(readFileSync(join(dir, "kiln.yaml"), "utf8"));
    doc.set("instances", 2);
    // Two weights held long enough for the page to sample each a few times (one sample a second).
    doc.setIn(["strategy", "canary", "steps"], [{ setWeight: 25 }, { pause: "8s" }, { setWeight: 60 }, { pause: "8s" }]);
    writeFileSync(join(dir, "kiln.yaml"), doc.toString());

    assert.equal((await kiln(["bake"], { cwd: dir })).code, 0);
    const up = await kiln(["up", "--detach"], { cwd: dir });
    assert.equal(up.code, 0, up.stdout + up.stderr);
    const d1 = await kiln(["deploy"], { cwd: dir });
    assert.equal(d1.code, 0, d1.stdout + d1.stderr);
    const v1 = (await kilnStatus(dir)).release!;

    // Light, bounded load: two clients, three minutes at most.
    load = startLoad({ url: `http://127.0.0.1:${ws.port}/`, concurrency: 2, durationMs: 180_000 });
    await until(async () => (await load!.snapshot()).requests > 20, 20_000, "load to flow");

    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [...(process.getuid?.() === 0 ? ["--no-sandbox"] : []), "--disable-dev-shm-usage", "--no-first-run"],
    });
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 1000 });
    const url = await dashboardUrl(dir);
    const base = new URL(url).origin;
    const first = await page.goto(url, { waitUntil: "domcontentloaded" });
    assert.equal(first?.status(), 200);
    assert.equal(page.url(), `${base}/`, "the token left the address bar");
    const cookie = (await page.cookies()).find((c) => c.name === "kiln_dashboard");
    assert.ok(cookie?.httpOnly, "the session cookie is HttpOnly");
    assert.equal(cookie?.sameSite, "Strict");
    await until(async () => (await readPage(page)).connected && (await readPage(page)).live === v1.id, 20_000, "the page live on release 1");
    // The same link a second time: the token was used.
    const again = await fetch(url, { redirect: "manual" });
    assert.equal(again.status, 401);

    ws.release("2.0.0");
    assert.equal((await kiln(["bake"], { cwd: dir })).code, 0);
    const deploying = kiln(["deploy", "--strategy", "canary"], { cwd: dir });
    // The canary's measured share, as the page shows it, over time.
    const seen: number[] = [];
    let shot = false;
    let v2 = "";
    await until(async () => {
      const p = await readPage(page);
      const canary = p.rows.find((r) => r.version === "2.0.0");
      if (canary) v2 = canary.release;
      if (canary?.share !== undefined && seen.at(-1) !== canary.share) seen.push(canary.share);
      if (!shot && p.rolloutState === "running" && canary?.share !== undefined && canary.share > 40 && canary.share < 80) {
        // Mid-canary: both releases take traffic; the picture for the README.
        shot = true;
        mkdirSync(artifacts, { recursive: true });
        await page.screenshot({ path: join(artifacts, "dashboard-canary.png") as `${string}.png`, fullPage: true });
        if (process.env.KILN_DASHBOARD_SCREENSHOT === "docs") await page.screenshot({ path: join(repoRoot, "docs/dashboard.png") as `${string}.png` });
      }
      return v2 !== "" && p.live === v2 && p.rolloutState === "done";
    }, 120_000, "the canary to be seen through to live on the page");
    const d2 = await deploying;
    assert.equal(d2.code, 0, d2.stdout + d2.stderr);
    // The share is measured over a trailing window of requests: after the promotion it reaches
    // (nearly) all traffic a few samples later. Bounded.
    await until(async () => {
      const canary = (await readPage(page)).rows.find((r) => r.version === "2.0.0");
      if (canary?.share !== undefined && seen.at(-1) !== canary.share) seen.push(canary.share);
      return (canary?.share ?? 0) >= 95;
    }, 30_000, "the promoted release's share to reach all traffic").catch(() => undefined);
    t.diagnostic(`canary share seen on the page: ${seen.join(" → ")} %`);
    const mid = seen.findIndex((s) => s > 0 && s < 50);
    assert.ok(mid >= 0, `a share below half while the canary started (seen ${seen.join(", ")})`);
    assert.ok(seen.slice(mid + 1).some((s) => s >= seen[mid]! + 20 && s < 100), `then a larger share before full promotion (seen ${seen.join(", ")})`);
    assert.ok(seen.slice(mid + 1).some((s) => s >= 95), `then (nearly) all traffic (seen ${seen.join(", ")})`);
    const during = await readPage(page);
    assert.ok(during.chartLines >= 2, "the chart draws a line per release");
    assert.equal(during.instances, 2);
    assert.ok(during.historyRows >= 2);

    // Rollback: click, the confirmation, then the fleet goes back.
    const rollback = during.buttons.find((b) => b.action === "rollback");
    assert.ok(rollback && !rollback.disabled, JSON.stringify(during.buttons));
    await page.click('button[data-action="rollback"]');
    await page.waitForSelector("dialog#confirm[open]", { timeout: 5000 });
    await page.type("#confirm-reason", "seen in the dashboard test");
    await page.click("#confirm-yes");
    await page.waitForSelector('#notice[data-result="accepted"]', { timeout: 15_000 });
    await until(async () => (await readPage(page)).live === v1.id, 90_000, "the page to show release 1 live again");
    // `kiln status` shows a rollout only while it runs.
    await until(async () => {
      const s = await kilnStatus(dir);
      return s.release?.id === v1.id && s.rollout === undefined;
    }, 90_000, "kiln status --json: release 1 live, the rollback over");
    const status = await kilnStatus(dir);
    assert.equal(status.release?.version, v1.version);
    const history = await kiln(["history", "--json"], { cwd: dir });
    const changes = (JSON.parse(history.stdout) as { changes?: { action: string; command: string; reason?: string }[] }).changes ?? [];
    assert.ok(changes.some((c) => c.action === "rollback" && c.command === "kiln dashboard: rollback" && c.reason === "seen in the dashboard test"), "the audit trail has the dashboard's rollback");
    mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: join(artifacts, "dashboard-rolled-back.png") as `${string}.png`, fullPage: true });

    // A phone's width: nothing wider than the screen.
    await page.setViewport({ width: 390, height: 844, isMobile: true });
    await new Promise((r) => setTimeout(r, 300));
    assert.ok((await readPage(page)).overflowX <= 1, "no horizontal scrolling at 390 px");
    await page.screenshot({ path: join(artifacts, "dashboard-phone.png") as `${string}.png`, fullPage: true });

    // The dashboard refuses actions without a session, without the CSRF token, and from another origin.
    const post = (headers: Record<string, string>) => fetch(`${base}/api/actions/rollback`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: "{}" });
    const sessionCookie = `kiln_dashboard=${cookie!.value}`;
    assert.equal((await post({})).status, 401);
    assert.equal((await post({ cookie: sessionCookie })).status, 403, "no CSRF token");
    const csrf = ((await (await fetch(`${base}/api/session`, { headers: { cookie: sessionCookie } })).json()) as { csrf: string }).csrf;
    assert.equal((await post({ cookie: sessionCookie, "x-kiln-csrf": csrf, origin: "http://evil.example" })).status, 403, "another origin");

    // Read-only: its own browser context (its own cookie jar), no action buttons, actions refused.
    const roContext = await browser.createBrowserContext();
    const ro = await roContext.newPage();
    await ro.setViewport({ width: 1280, height: 900 });
    await ro.goto(await dashboardUrl(dir, true), { waitUntil: "domcontentloaded" });
    await until(async () => (await readPage(ro)).connected && (await readPage(ro)).live === v1.id, 20_000, "the read-only page live");
    assert.deepEqual((await readPage(ro)).buttons, [], "no action buttons in read-only mode");
    assert.equal(await ro.$eval("#mode", (e) => e.textContent), "read-only");
    const roCookie = `kiln_dashboard=${(await ro.cookies()).find((c) => c.name === "kiln_dashboard")!.value}`;
    const roCsrf = ((await (await fetch(`${base}/api/session`, { headers: { cookie: roCookie } })).json()) as { csrf: string }).csrf;
    const refused = await post({ cookie: roCookie, "x-kiln-csrf": roCsrf, origin: base });
    assert.equal(refused.status, 403);
    assert.match(((await refused.json()) as { error: { message: string } }).error.message, /read-only/);
    assert.equal((await kilnStatus(dir)).release?.id, v1.id, "nothing refused changed the fleet");
  });
});

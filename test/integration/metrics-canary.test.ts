// Prometheus scrapes during a canary, on both routers, through the real CLI: the router's
// metrics address (kiln's proxy, or HAProxy's own exporter) and the controller's
// (controller.metricsListen) both parse, and the canary release's counters move while the
// canary runs; afterwards the controller reports the finished rollout's duration.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { parseDocument } from "yaml";
import type { LoadHandle } from "../../src/loadgen/client.js";
import { HAPROXY_BIN } from "../../src/traffic/haproxy/process.js";
import { parsePrometheus, sumOf, type Sample } from "../support/prometheus.js";
import { freePort, helloWorkspace, kiln, kilnDown, kilnStatus, requireTool, startFleetLoad, until } from "./support.js";

const ready = (() => {
  try {
    execFileSync("bwrap", ["--version"], { stdio: "ignore" });
    return existsSync(HAPROXY_BIN);
  } catch {
    return false;
  }
})();

async function scrape(port: number): Promise<Sample[]> {
  const r = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(r.status, 200);
  return parsePrometheus(await r.text());
}

for (const router of ["builtin", "haproxy"] as const) {
  describe(`metrics during a canary, router ${router}`, () => {
    let ws: Awaited<ReturnType<typeof helloWorkspace>> | undefined;
    let load: LoadHandle | undefined;
    after(async () => {
      await load?.stop();
      if (ws) {
        await kilnDown([], { cwd: ws.dir });
        rmSync(ws.dir, { recursive: true, force: true });
      }
    });

    test("router and controller scrapes parse; the canary's per-release counters move", { timeout: 240_000 }, async (t) => {
      if (!requireTool(ready, "needs bubblewrap and /usr/sbin/haproxy", t)) return;
      ws = await helloWorkspace(`kiln-it-metrics-${router}-`);
      const dir = ws.dir;
      const routerMetrics = await freePort();
      const controllerMetrics = await freePort();
      const doc = parseDocument(readFileSync(join(dir, "kiln.yaml"), "utf8"));
      doc.set("instances", 2);
      doc.setIn(["edge", "metricsListen"], `127.0.0.1:${routerMetrics}`);
      doc.setIn(["controller", "metricsListen"], `127.0.0.1:${controllerMetrics}`);
      // Long enough pauses to scrape twice while the canary takes traffic.
      doc.setIn(["strategy", "canary", "steps"], [{ setWeight: 50 }, { pause: "20s" }]);
      writeFileSync(join(dir, "kiln.yaml"), doc.toString());

      assert.equal((await kiln(["bake"], { cwd: dir })).code, 0);
      const up = await kiln(["up", "--detach", "--router", router], { cwd: dir });
      assert.equal(up.code, 0, up.stdout + up.stderr);
      const d1 = await kiln(["deploy"], { cwd: dir });
      assert.equal(d1.code, 0, d1.stdout + d1.stderr);
      ({ load } = await startFleetLoad(ws.port, 15_000));

      const c0 = await scrape(controllerMetrics);
      assert.equal(sumOf(c0, "kiln_controller_instances", { health: "healthy", in_rotation: "true" }), 2);
      assert.equal(sumOf(c0, "kiln_controller_rollout_running"), 0);
      assert.ok(sumOf(c0, "kiln_controller_rollout_duration_seconds_count", { kind: "deploy", outcome: "done" }) >= 1, "the first deploy's duration");

      ws.release("2.0.0");
      assert.equal((await kiln(["bake"], { cwd: dir })).code, 0);
      const deploying = kiln(["deploy", "--strategy", "canary"], { cwd: dir });
      // The canary takes traffic: r2 has an instance in rotation.
      let canaryIds: string[] = [];
      let canaryRelease = "";
      await until(async () => {
        const s = await kilnStatus(dir);
        canaryIds = s.instances.filter((i) => i.version === "2.0.0" && i.inRotation).map((i) => i.id);
        canaryRelease = s.rollout?.target ?? "";
        return s.rollout?.state === "running" && canaryIds.length > 0;
      }, 60_000, "the canary in rotation");

      const routerCount = (s: Sample[]) =>
        router === "builtin"
          ? sumOf(s, "kiln_proxy_release_requests_total", { release: canaryRelease, lane: "production" })
          : canaryIds.reduce((n, id) => n + sumOf(s, "haproxy_server_http_responses_total", { proxy: "kiln", server: id }), 0);
      const r1 = routerCount(await scrape(routerMetrics));
      const k1 = await scrape(controllerMetrics);
      const rolloutSeries = () => JSON.stringify(k1.filter((x) => x.name.startsWith("kiln_controller_rollout")));
      assert.equal(sumOf(k1, "kiln_controller_rollout_running"), 1, rolloutSeries());
      assert.equal(sumOf(k1, "kiln_controller_rollout_phase", { phase: "progressing", strategy: "canary" }) + sumOf(k1, "kiln_controller_rollout_phase", { phase: "paused", strategy: "canary" }), 1, rolloutSeries());
      assert.ok(sumOf(k1, "kiln_controller_instances", { version: "2.0.0" }) >= 1);
      await new Promise((r) => setTimeout(r, 2500));
      const r2 = routerCount(await scrape(routerMetrics));
      const k2 = await scrape(controllerMetrics);
      assert.ok(r2 > r1, `the router counts the canary's requests (${r1} → ${r2})`);
      const c1 = sumOf(k1, "kiln_router_release_requests_total", { release: canaryRelease });
      const c2 = sumOf(k2, "kiln_router_release_requests_total", { release: canaryRelease });
      assert.ok(c2 > c1, `the controller reports the canary's requests (${c1} → ${c2})`);

      const d2 = await deploying;
      assert.equal(d2.code, 0, d2.stdout + d2.stderr);
      const k3 = await scrape(controllerMetrics);
      assert.equal(sumOf(k3, "kiln_controller_rollout_running"), 0);
      assert.ok(sumOf(k3, "kiln_controller_rollout_duration_seconds_count", { kind: "deploy", strategy: "canary", outcome: "done" }) >= 1);
      assert.equal(sumOf(k3, "kiln_controller_rollbacks_total"), 0);
      assert.equal(sumOf(k3, "kiln_controller_instances", { version: "2.0.0", in_rotation: "true" }), 2);
    });
  });
}

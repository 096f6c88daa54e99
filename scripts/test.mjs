// Runs the compiled tests with node's test runner.
//   node scripts/test.mjs          every tier: unit files side by side (one per core), then integration files in two lanes
//   node scripts/test.mjs unit     fast tier only
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { availableParallelism } from "node:os";

const root = new URL("../dist/test/", import.meta.url).pathname;
const src = new URL("../test/", import.meta.url).pathname;
function files(dir) {
  const out = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...files(p));
    // Incremental builds leave the output of a deleted or renamed test behind: run only those whose source exists.
    else if (e.endsWith(".test.js") && existsSync(p.replace(root, src).replace(/\.js$/, ".ts"))) out.push(p);
  }
  return out.sort();
}
const all = files(root);
const isIntegration = (f) => f.includes("/integration/");
const tier = process.argv[2];
const unit = all.filter((f) => !isIntegration(f));
const integration = all.filter(isIntegration);
// Unit files are independent (temp dirs, free ports, no shared daemon, no child process — the
// guard fails any that spawns): as many at once as there are cores, so the CPU-bound property
// files run side by side.
//
// Integration files run in two lanes side by side, each one file at a time:
//   fleet lane      whole fleets under load (test/integration/) and everything that drives the one
//                   shared Docker Engine (containers, swarm mode): these measure failed requests
//                   under load and must not share the engine with each other
//   component lane  the rest (local processes, proxies, HAProxy, registry, doctor, loadgen…), on
//                   free loopback ports and temp dirs of their own
// so at most two integration files run at once, and never two that share a fleet or the engine.
const cores = Math.max(1, Math.min(4, availableParallelism()));
const guard = new URL("./unit-guard.mjs", import.meta.url).href;
const args = (files, concurrency, preload = []) => [...preload, "--test", `--test-concurrency=${concurrency}`, "--test-reporter=spec", ...files];
const runSync = (files, concurrency, preload) =>
  files.length === 0 ? 0 : (spawnSync(process.execPath, args(files, concurrency, preload), { stdio: "inherit" }).status ?? 1);
const runAsync = (files) =>
  files.length === 0
    ? Promise.resolve(0)
    : new Promise((resolve) => spawn(process.execPath, args(files, 1), { stdio: "inherit" }).on("exit", (code) => resolve(code ?? 1)));
const fleetLane = (f) => f.includes("/test/integration/") || /docker|swarm/.test(f.slice(f.lastIndexOf("/")));
const unitStatus = tier === "integration" ? 0 : runSync(unit, cores, ["--import", guard]);
let integrationStatus = 0;
if (tier !== "unit") {
  const lanes = await Promise.all([runAsync(integration.filter(fleetLane)), runAsync(integration.filter((f) => !fleetLane(f)))]);
  integrationStatus = lanes.find((s) => s !== 0) ?? 0;
}
process.exit(unitStatus || integrationStatus);

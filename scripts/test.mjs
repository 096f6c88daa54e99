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
// Integration files run in two lanes, each one file at a time:
//   fleet lane      whole fleets under load (test/integration/) and everything that drives the one
//                   shared Docker Engine (containers, swarm mode): these measure failed requests
//                   under load and must not share the engine with each other
//   component lane  the rest (local processes, proxies, HAProxy, registry, doctor, loadgen…), on
//                   free loopback ports and temp dirs of their own
// the fleet lane first, then the component lane (or side by side with KILN_TEST_LANES=2).
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
  // One lane after the other: side by side, an instance of a fleet test exited mid-rollout (seen
  // once in a clean-clone run, cause not pinned down — a free port taken between its pick and its
  // bind is the likely one), and a test that can fail for its neighbour's sake is not a test.
  // KILN_TEST_LANES=2 runs them side by side (about 8 minutes less on 2 cores).
  if (process.env.KILN_TEST_LANES === "2") {
    const lanes = await Promise.all([runAsync(integration.filter(fleetLane)), runAsync(integration.filter((f) => !fleetLane(f)))]);
    integrationStatus = lanes.find((s) => s !== 0) ?? 0;
  } else {
    const a = await runAsync(integration.filter(fleetLane));
    const b = await runAsync(integration.filter((f) => !fleetLane(f)));
    integrationStatus = a || b;
  }
}
process.exit(unitStatus || integrationStatus);

// Runs the compiled tests with node's test runner.
//   node scripts/test.mjs          every tier: unit files side by side (one per core), then integration files in two lanes side by side
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
// the two lanes side by side (or one after the other with KILN_TEST_LANES=1).
const cores = Math.max(1, Math.min(4, availableParallelism()));
const guard = new URL("./unit-guard.mjs", import.meta.url).href;
const args = (files, concurrency, preload = []) => [...preload, "--test", `--test-concurrency=${concurrency}`, "--test-reporter=spec", ...files];
const runSync = (files, concurrency, preload) =>
  files.length === 0 ? 0 : (spawnSync(process.execPath, args(files, concurrency, preload), { stdio: "inherit" }).status ?? 1);
const runAsync = (files, env = {}) =>
  files.length === 0
    ? Promise.resolve(0)
    : new Promise((resolve) =>
        spawn(process.execPath, args(files, 1), { stdio: "inherit", env: { ...process.env, ...env } }).on("exit", (code) => resolve(code ?? 1)),
      );
const fleetLane = (f) => f.includes("/test/integration/") || /docker|swarm/.test(f.slice(f.lastIndexOf("/")));
const unitStatus = tier === "integration" ? 0 : runSync(unit, cores, ["--import", guard]);
let integrationStatus = 0;
if (tier !== "unit") {
  // Side by side, each lane picks the ports it binds later from a range of its own (KILN_PORT_RANGE,
  // see src/net.ts), below the kernel's ephemeral range: no lane can take a port the other picked,
  // and no outgoing connection (a proxy's, a load generator's) can either. Before the ranges, a
  // fleet test's instance once exited mid-rollout while the lanes ran side by side.
  // KILN_TEST_LANES=1 runs one lane after the other (about 14 minutes longer on 2 cores).
  const fleet = integration.filter(fleetLane);
  const component = integration.filter((f) => !fleetLane(f));
  if (process.env.KILN_TEST_LANES === "1") {
    const a = await runAsync(fleet, { KILN_PORT_RANGE: "20000-26383" });
    const b = await runAsync(component, { KILN_PORT_RANGE: "26384-32767" });
    integrationStatus = a || b;
  } else {
    const lanes = await Promise.all([runAsync(fleet, { KILN_PORT_RANGE: "20000-26383" }), runAsync(component, { KILN_PORT_RANGE: "26384-32767" })]);
    integrationStatus = lanes.find((s) => s !== 0) ?? 0;
  }
}
process.exit(unitStatus || integrationStatus);

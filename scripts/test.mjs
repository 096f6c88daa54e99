// Runs the compiled tests with node's test runner.
//   node scripts/test.mjs          every tier: unit files side by side (one per core), then integration files in two lanes side by side
//   node scripts/test.mjs unit     fast tier only
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { availableParallelism, tmpdir } from "node:os";

// Tests that run kiln as root claim uids from kiln's range (src/providers/local/uid-range.ts);
// a claim is kept for good, so the run keeps its claims in a directory of its own, shared by
// every file (so two of them never claim one uid) and removed at the end.
if (!process.env.KILN_UID_CLAIMS_DIR) {
  const claims = mkdtempSync(join(tmpdir(), "kiln-test-uids-"));
  process.env.KILN_UID_CLAIMS_DIR = claims;
  process.on("exit", () => rmSync(claims, { recursive: true, force: true }));
}

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
// Integration files: see the two lanes below.
const cores = Math.max(1, Math.min(4, availableParallelism()));
const guard = new URL("./unit-guard.mjs", import.meta.url).href;
const args = (files, concurrency, preload = []) => [...preload, "--test", `--test-concurrency=${concurrency}`, "--test-reporter=spec", ...files];
const runSync = (files, concurrency, preload) =>
  files.length === 0 ? 0 : (spawnSync(process.execPath, args(files, concurrency, preload), { stdio: "inherit" }).status ?? 1);
const runFile = (file, env) =>
  new Promise((resolve) =>
    spawn(process.execPath, args([file], 1), { stdio: "inherit", env: { ...process.env, ...env } }).on("exit", (code) => resolve(code ?? 1)),
  );
// Files that drive the one shared Docker Engine (containers, swarm mode): never two at once.
const needsEngine = (f) => /docker|swarm|notes-state/.test(f.slice(f.lastIndexOf("/")));
// Whole fleets under load, longest last (the other lane takes work from the end of this list).
const fleetWeight = ["shared-listener.test", "demo-haproxy.test", "demo.test", "edge-config.test", "metrics-canary.test", "kill-haproxy.test", "kill.test"];
const weight = (f) => fleetWeight.findIndex((w) => f.endsWith(`/${w}.js`));
const unitStatus = tier === "integration" ? 0 : runSync(unit, cores, ["--import", guard]);
let integrationStatus = 0;
if (tier !== "unit") {
  // Two lanes side by side, each running one file at a time:
  //   lane A  every file that drives the shared Docker Engine, then whole fleets under load
  //           (test/integration/) from the front of its list
  //   lane B  the component tests (local processes, proxies, HAProxy, registry, doctor…), then
  //           whole fleets that need no engine from the back of lane A's list, so both lanes end
  //           about together
  // Each lane picks the ports it binds later from a range of its own (KILN_PORT_RANGE, see
  // src/net.ts), below the kernel's ephemeral range: neither lane, nor any outgoing connection
  // (a proxy's, a load generator's), can take a port the other picked.
  // KILN_TEST_LANES=1 runs everything in one lane, one file at a time (about 14 minutes longer).
  const fleetFile = (f) => f.includes("/test/integration/") || needsEngine(f);
  const engine = integration.filter(needsEngine);
  const fleet = integration.filter((f) => fleetFile(f) && !needsEngine(f)).sort((a, b) => weight(a) - weight(b) || a.localeCompare(b));
  const aList = [...engine, ...fleet];
  const bList = integration.filter((f) => !fleetFile(f));
  if (process.env.KILN_TEST_PLAN) {
    process.stdout.write(`lane A: ${aList.map((f) => f.replace(root, "")).join(" ")}\nlane B: ${bList.map((f) => f.replace(root, "")).join(" ")}\n`);
    process.exit(0);
  }
  const took = [];
  let failed = [];
  const run = async (lane, file, env) => {
    const t0 = Date.now();
    const code = await runFile(file, env);
    took.push({ lane, file: file.replace(root, ""), s: Math.round((Date.now() - t0) / 1000), code });
    if (code !== 0) failed.push(file.replace(root, ""));
  };
  const laneA = async () => {
    for (let f; (f = aList.shift()); ) await run("A", f, { KILN_PORT_RANGE: "20000-26383" });
  };
  const laneB = async () => {
    for (let f; (f = bList.shift()); ) await run("B", f, { KILN_PORT_RANGE: "26384-32767" });
    // then whole fleets that need no engine, from the back of lane A's list
    while (aList.length > 0 && !needsEngine(aList[aList.length - 1])) await run("B", aList.pop(), { KILN_PORT_RANGE: "26384-32767" });
  };
  if (process.env.KILN_TEST_LANES === "1") {
    await laneA();
    await laneB();
  } else await Promise.all([laneA(), laneB()]);
  process.stdout.write(`\n# integration files (lane, seconds, exit):\n`);
  for (const t of took) process.stdout.write(`#   ${t.lane} ${String(t.s).padStart(4)} s  ${t.code === 0 ? "ok  " : "FAIL"}  ${t.file}\n`);
  if (failed.length > 0) process.stdout.write(`# failed: ${failed.join(", ")}\n`);
  integrationStatus = failed.length > 0 ? 1 : 0;
}
process.exit(unitStatus || integrationStatus);

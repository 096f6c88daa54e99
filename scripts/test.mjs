// Runs the compiled tests with node's test runner.
//   node scripts/test.mjs          every tier: unit files side by side (one per core), then integration files one at a time
//   node scripts/test.mjs unit     fast tier only
import { spawnSync } from "node:child_process";
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
// Unit files are independent (temp dirs, free ports, no shared daemon): as many at once as
// there are cores, so the three CPU-bound property files run side by side. Integration files
// one at a time: they start real fleets, proxies and containers and measure them under load.
const cores = Math.max(1, Math.min(4, availableParallelism()));
const run = (files, concurrency) =>
  files.length === 0 ? 0 : (spawnSync(process.execPath, ["--test", `--test-concurrency=${concurrency}`, "--test-reporter=spec", ...files], { stdio: "inherit" }).status ?? 1);
const unitStatus = tier === "integration" ? 0 : run(unit, cores);
const integrationStatus = tier === "unit" ? 0 : run(integration, 1);
process.exit(unitStatus || integrationStatus);

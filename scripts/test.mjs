// Runs the compiled tests with node's test runner.
//   node scripts/test.mjs          every tier (unit first, then integration, one file at a time)
//   node scripts/test.mjs unit     fast tier only
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const root = new URL("../dist/test/", import.meta.url).pathname;
function files(dir) {
  const out = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else if (e.endsWith(".test.js")) out.push(p);
  }
  return out.sort();
}
const all = files(root);
const isIntegration = (f) => f.includes("/integration/");
const tier = process.argv[2];
const unit = all.filter((f) => !isIntegration(f));
const integration = all.filter(isIntegration);
const selected = tier === "unit" ? unit : tier === "integration" ? integration : [...unit, ...integration];
// One file at a time: integration files start real processes and bind ports.
const r = spawnSync(process.execPath, ["--test", "--test-concurrency=1", "--test-reporter=spec", ...selected], { stdio: "inherit" });
process.exit(r.status ?? 1);

// One simulated rolling replacement as its own process, for bench/run.ts: what `kiln simulate`
// runs, without the CLI's --instances cap (10,000) so 100,000 can be measured too.
// Usage: node dist/bench/simulate-child.js KILN_YAML INSTANCES → the SimulationResult as JSON.

import { simulateRollout } from "../src/controller/simulate.js";
import { toReleaseSettings } from "../src/controller/release-settings.js";
import { loadSpec } from "../src/config/index.js";

const [file, n] = process.argv.slice(2);
const instances = Number(n);
const spec = loadSpec(file!).spec;
const sim = await simulateRollout({ spec: { ...toReleaseSettings(spec), instances }, current: instances, instances, strategy: "rolling", failRate: 0, startMs: 500, seed: 1 });
process.stdout.write(`${JSON.stringify({ ...sim, timeline: undefined, steps: undefined })}\n`);

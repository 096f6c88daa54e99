// `kiln doctor` and `kiln gc` as library calls: inspect (I/O) → diagnose (pure) → repair
// (I/O, only with repair: true). The CLI verbs only parse and render these results.

import { diagnose } from "./diagnose.js";
import { inspect, type InspectOptions } from "./inspect.js";
import { applyRepair } from "./repair.js";
import type { DoctorReport, ReportedFinding } from "./types.js";

export { diagnose, isControllerRunning } from "./diagnose.js";
export { inspect, imageCompleteness } from "./inspect.js";
export { applyRepair } from "./repair.js";
export { gcHome, checkKeep, type GcHomeOptions, type GcReport } from "./gc-home.js";
export { computePins, keepWindow, DEFAULT_KEEP } from "./pins.js";
export type * from "./types.js";

export interface DoctorOptions extends InspectOptions {
  repair?: boolean;
}

const rank = { error: 0, warning: 1, info: 2 } as const;

export async function runDoctor(opts: DoctorOptions): Promise<DoctorReport> {
  const started = Date.now();
  const facts = await inspect(opts);
  const findings: ReportedFinding[] = diagnose(facts).sort((a, b) => rank[a.severity] - rank[b.severity]);
  if (opts.repair) {
    for (const f of findings) {
      if (f.repair) f.repaired = await applyRepair(f.repair, { home: opts.home, environment: opts.environment, provider: opts.provider, providerObject: opts.providerObject, now: facts.now, ...(opts.state ? { state: opts.state } : {}) });
    }
  }
  const problem = (f: ReportedFinding) => f.severity !== "info" && !f.repaired?.ok;
  const counts = {
    error: findings.filter((f) => f.severity === "error").length,
    warning: findings.filter((f) => f.severity === "warning").length,
    info: findings.filter((f) => f.severity === "info").length,
    repaired: findings.filter((f) => f.repaired?.ok).length,
    remaining: findings.filter(problem).length,
  };
  return {
    schemaVersion: 1,
    home: opts.home,
    services: facts.services.map((s) => s.service),
    checkedAt: new Date(facts.now).toISOString(),
    durationMs: Date.now() - started,
    repair: opts.repair ?? false,
    healthy: counts.remaining === 0,
    findings,
    counts,
    state: { backend: facts.state.backend ?? "sqlite", where: facts.state.file },
  };
}

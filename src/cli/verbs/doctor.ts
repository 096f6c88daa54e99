import type { Command } from "commander";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { checkKeep, DEFAULT_KEEP, runDoctor, type DoctorReport } from "../../doctor/index.js";
import { KilnError } from "../../errors.js";
import { homeFor, homePaths } from "../../home.js";
import { loadSpec } from "../../config/index.js";
import { environmentOf, out, printJson, type GlobalOptions } from "../context.js";
import { daemonProvider } from "../../ops/daemons.js";
import { resolveStateLocation, type StateLocation } from "../../state/state-location.js";

export interface Located {
  home: string;
  environment?: string;
  service?: string;
  provider?: string;
  /** the state's location (kiln.yaml `state:` or KILN_STATE; default the SQLite file in the home) */
  state: StateLocation;
  /** the state without an environment (the top level's), where gc starts from */
  baseState: StateLocation;
}

/**
 * The home to examine. A broken kiln.yaml must not stop a diagnosis: the home is still
 * beside it (or at $KILN_HOME), and state names the services.
 */
export function locateHome(opts: GlobalOptions): Located {
  const at = locate(opts);
  // the provider the daemons were started with wins over kiln.yaml's (as for `kiln down`)
  const paths = homePaths(at.home, at.environment);
  return {
    ...at,
    provider: daemonProvider(paths) ?? at.provider,
    state: resolveStateLocation({ stateDb: paths.stateDb, specState: at.specState, environment: at.environment }),
    baseState: resolveStateLocation({ stateDb: homePaths(at.home).stateDb, specState: at.specState }),
  };
}

function locate(opts: GlobalOptions): Omit<Located, "state" | "baseState"> & { specState?: string } {
  const file = resolve(opts.file ?? "kiln.yaml");
  if (existsSync(file)) {
    try {
      const loaded = loadSpec(file, environmentOf(opts));
      return { home: homeFor(loaded.file), environment: loaded.environment, service: loaded.service, provider: loaded.spec.provider, ...(loaded.spec.state ? { specState: loaded.spec.state } : {}) };
    } catch (e) {
      // an unknown --env is the user's mistake to hear about, not a broken kiln.yaml to work around
      if (e instanceof KilnError && e.code === "KILN_E_USAGE") throw e;
      return { home: homeFor(file) };
    }
  }
  if (process.env.KILN_HOME) return { home: resolve(process.env.KILN_HOME) };
  throw new KilnError("KILN_E_USAGE", `no kiln.yaml at ${file} and no $KILN_HOME`, { hint: "run kiln in the directory that holds kiln.yaml, pass -f PATH, or set KILN_HOME" });
}

export function parseKeep(text: string): number {
  return checkKeep(/^\d+$/.test(text) ? Number(text) : NaN);
}

const label = { error: "ERROR", warning: "WARN ", info: "info " } as const;

function render(r: DoctorReport): void {
  out(`kiln doctor: ${r.home}${r.services.length ? ` (${r.services.join(", ")})` : ""}`);
  out(`  state: ${r.state.backend === "postgres" ? `PostgreSQL ${r.state.where} (shared)` : `SQLite ${r.state.where}`}`);
  if (r.findings.length === 0) out("  no problems found");
  for (const f of r.findings) {
    out(`  ${label[f.severity]} ${f.check}: ${f.what}`);
    out(`         where: ${f.where}`);
    out(`         fix:   ${f.fix}`);
    if (f.repaired) out(`         ${f.repaired.ok ? "repaired" : "NOT repaired"}: ${f.repaired.did}`);
    else if (f.blockedBy) out(`         not repaired: ${f.blockedBy}`);
    else if (f.repair && !r.repair) out("         (kiln doctor --repair fixes this)");
  }
  const c = r.counts;
  out(`${r.healthy ? "healthy" : "problems remain"}: ${c.error} error(s), ${c.warning} warning(s), ${c.info} note(s)${r.repair ? `, ${c.repaired} repaired` : ""}, ${c.remaining} remaining (${r.durationMs} ms)`);
}

export function register(program: Command): void {
  program
    .command("doctor")
    .description("check the home for inconsistencies (state, leases, stale pid files and sockets, vanished and orphan instances, routes, missing images, stuck rollouts) and, with --repair, fix what is safe")
    .option("--repair", "fix what is safe: drop dead leases, remove stale pid files/sockets, mark vanished instances gone, stop orphans (only when no controller runs)")
    .option("--keep <n>", "releases per service whose images must be in the store (as `kiln gc --keep`)", String(DEFAULT_KEEP))
    .option("--json", "print the report as JSON (a stable contract, schemaVersion 1)")
    .addHelpText(
      "after",
      "\nRelease records are never deleted and healthy instances never touched. While a controller runs,\norphan and vanished instances are left to it (it reconciles its own fleet).\n\nExit status: 0 healthy (or everything repaired), 1 problems remain, 2 bad input.\n\nExamples:\n  kiln doctor\n  kiln doctor --repair\n  kiln doctor --json | jq '.findings[] | {check, severity, where}'",
    )
    .action(async (opts: { repair?: boolean; keep: string; json?: boolean }, cmd: Command) => {
      const keep = parseKeep(opts.keep);
      const at = locateHome(cmd.optsWithGlobals<GlobalOptions>());
      const report = await runDoctor({ home: at.home, environment: at.environment, keep, repair: opts.repair, services: at.service ? [at.service] : [], provider: at.provider, state: at.state.location });
      if (opts.json) printJson(report);
      else render(report);
      process.exitCode = report.healthy ? 0 : 1;
    });
}

// `kiln gc` for a home: the pin policy from state and the provider, then the store's
// mark-and-sweep (image/gc.ts) with those pins.

import { existsSync, lstatSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { KilnError, isKilnError } from "../errors.js";
import { homePaths } from "../home.js";
import { openStore } from "../image/index.js";
import { collectGarbage, type GcResult } from "../image/gc.js";
import type { ObservedInstance } from "../providers/provider.js";
import { collectProviderImages, createProvider } from "../providers/registry.js";
import { isPostgresLocation } from "../state/driver.js";
import { redactUrl } from "../state/pg-dialect.js";
import { homeStateLocations } from "../state/state-location.js";
import { StateDb } from "../state/db.js";
import { computePins, DEFAULT_KEEP } from "./pins.js";

export interface GcHomeOptions {
  home: string;
  /** newest releases kept per service (default 5) */
  keep?: number;
  pruneTags?: boolean;
  dryRun?: boolean;
  /** services to consider besides those state knows (the one kiln.yaml names) */
  services?: string[];
  provider?: string;
  graceMs?: number;
  now?: number;
  /** the state's location (see state/state-location.ts); default the SQLite file in the home */
  state?: string;
}

export interface GcReport extends GcResult {
  keep: number;
  services: string[];
  /** the keep window: every release whose image is pinned */
  window: { service: string; release: string; ref: string; digest: string; why: string }[];
  /**
   * Directories under <home>/instances (meta and kept log) of instances that state records as
   * terminated, of releases outside the keep window: their logs explain nothing a rollback could need.
   */
  removedInstanceLogs: { instance: string; release: string; bytes: number }[];
  /**
   * Provider docker: the engine images kiln loaded that no pinned image needs, removed (or, in a
   * dry run, that would be), and kiln's engine images kept with why. Absent for other providers.
   */
  engineImages?: { removed: string[]; kept: { id: string; reasons: string[] }[] };
  warnings: string[];
}

function treeBytes(path: string): number {
  const st = lstatSync(path, { throwIfNoEntry: false });
  if (!st) return 0;
  if (!st.isDirectory()) return st.size;
  return readdirSync(path).reduce((n, name) => n + treeBytes(join(path, name)), 0);
}

/** Instance directories gc may remove (see GcReport.removedInstanceLogs); never one the provider sees running. */
function pruneInstanceLogs(home: string, db: StateDb | undefined, windowIds: Set<string>, running: Set<string>, dryRun: boolean): GcReport["removedInstanceLogs"] {
  const root = join(home, "instances");
  if (!db || !existsSync(root)) return [];
  const out: GcReport["removedInstanceLogs"] = [];
  for (const name of readdirSync(root).sort()) {
    const rec = db.getInstance(name);
    // Not in state: `kiln doctor` judges it. Live in state, running, or in the window: kept.
    if (!rec || rec.state !== "terminated" || running.has(name) || windowIds.has(`${rec.service}/${rec.release}`)) continue;
    const dir = join(root, name);
    const bytes = treeBytes(dir);
    if (!dryRun) rmSync(dir, { recursive: true, force: true });
    out.push({ instance: name, release: rec.release, bytes });
  }
  return out;
}

export function checkKeep(keep: number): number {
  if (!Number.isInteger(keep) || keep < 1 || keep > 10_000) {
    throw new KilnError("KILN_E_USAGE", `--keep ${keep} is not a number of releases from 1 to 10000`, {
      hint: "keeping no release would leave nothing to roll back to; the default is 5",
    });
  }
  return keep;
}

export async function gcHome(opts: GcHomeOptions): Promise<GcReport> {
  const keep = checkKeep(opts.keep ?? DEFAULT_KEEP);
  homePaths(opts.home); // the home's directories, owner-only, as every verb leaves them
  const warnings: string[] = [];
  const dbs: StateDb[] = [];
  try {
    for (const f of homeStateLocations(opts.home, opts.state)) {
      let db: StateDb | undefined;
      try {
        db = new StateDb(f.file);
        const bad = db.integrityCheck().filter((l) => l !== "ok");
        if (bad.length > 0) throw new Error(bad.slice(0, 2).join("; "));
        dbs.push(db);
      } catch (cause) {
        db?.close();
        // Without state, gc cannot know which images releases need: removing anything would be a guess.
        throw new KilnError("KILN_E_STATE", `gc refused: the state database ${isPostgresLocation(f.file) ? redactUrl(f.file) : f.file} cannot be read (${(cause as Error).message})`, {
          cause,
          hint: "run `kiln doctor`; gc needs the release history to know what it must keep",
        });
      }
    }
    const services = [...new Set([...dbs.flatMap((db) => db.services()), ...(opts.services ?? [])])].sort();
    const observed: ObservedInstance[] = [];
    // One provider (the chosen environment's): an environment on another provider has its
    // instances pinned through its state's instance rows.
    for (const service of services) {
      try {
        const provider = createProvider(opts.provider ?? "local", { home: opts.home });
        observed.push(...(await provider.list(service)));
      } catch (e) {
        warnings.push(`could not list ${service}'s instances from the provider (${isKilnError(e) ? e.message : (e as Error).message}); only instances recorded in state are pinned`);
      }
    }
    const sets = (dbs.length ? dbs : [undefined]).map((db) => computePins(db, db ? [...new Set([...db.services(), ...(opts.services ?? [])])] : services, keep, observed));
    const pins = sets.flatMap((x) => x.pins);
    const window = sets.flatMap((x) => x.window);
    const protect = window.map((w) => ({ digest: w.release.digest, reasons: [`release ${w.release.id} (${w.why})`] }));
    // Before the store's sweep: an engine image is known as kiln's by its config blob in the store.
    let engineImages: GcReport["engineImages"];
    try {
      engineImages = await collectProviderImages(opts.provider ?? "local", opts.home, pins, { dryRun: opts.dryRun });
    } catch (e) {
      warnings.push(`could not remove unneeded images from the Docker Engine (${isKilnError(e) ? e.message : (e as Error).message}); the store was collected all the same`);
    }
    const result = await collectGarbage(openStore(opts.home), { pins, protect, pruneTags: opts.pruneTags, dryRun: opts.dryRun, graceMs: opts.graceMs, now: opts.now });
    for (const m of result.missing) warnings.push(`${m.digest.slice(0, 19)} is pinned (${m.reasons.join("; ")}) but not in the store: run \`kiln doctor\``);
    const windowIds = new Set(window.map((w) => `${w.service}/${w.release.id}`));
    const running = new Set(observed.filter((i) => i.state === "running").map((i) => i.id));
    // Each instance directory is recorded in one environment's state; the others skip it.
    const removedInstanceLogs = dbs.flatMap((db) => pruneInstanceLogs(opts.home, db, windowIds, running, opts.dryRun === true));
    return {
      ...result,
      bytesFreed: result.bytesFreed + removedInstanceLogs.reduce((n, x) => n + x.bytes, 0),
      removedInstanceLogs,
      ...(engineImages ? { engineImages } : {}),
      keep,
      services,
      window: window.map((w) => ({ service: w.service, release: w.release.id, ref: w.release.ref, digest: w.release.digest, why: w.why })),
      warnings,
    };
  } finally {
    for (const db of dbs) db.close();
  }
}

// `kiln gc` for a home: the pin policy from state and the provider, then the store's
// mark-and-sweep (image/gc.ts) with those pins.

import { existsSync } from "node:fs";
import { KilnError, isKilnError } from "../errors.js";
import { homePaths } from "../home.js";
import { openStore } from "../image/index.js";
import { collectGarbage, type GcResult } from "../image/gc.js";
import type { ObservedInstance } from "../providers/provider.js";
import { createProvider } from "../providers/registry.js";
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
}

export interface GcReport extends GcResult {
  keep: number;
  services: string[];
  /** the keep window: every release whose image is pinned */
  window: { service: string; release: string; ref: string; digest: string; why: string }[];
  warnings: string[];
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
  const paths = homePaths(opts.home);
  const warnings: string[] = [];
  let db: StateDb | undefined;
  if (existsSync(paths.stateDb)) {
    try {
      db = new StateDb(paths.stateDb);
      const bad = db.integrityCheck().filter((l) => l !== "ok");
      if (bad.length > 0) throw new Error(bad.slice(0, 2).join("; "));
    } catch (cause) {
      db?.close();
      // Without state, gc cannot know which images releases need: removing anything would be a guess.
      throw new KilnError("KILN_E_STATE", `gc refused: the state database ${paths.stateDb} cannot be read (${(cause as Error).message})`, {
        cause,
        hint: "run `kiln doctor`; gc needs the release history to know what it must keep",
      });
    }
  }
  try {
    const services = [...new Set([...(db?.services() ?? []), ...(opts.services ?? [])])].sort();
    const observed: ObservedInstance[] = [];
    for (const service of services) {
      try {
        const provider = createProvider(opts.provider ?? "local", { home: opts.home });
        observed.push(...(await provider.list(service)));
      } catch (e) {
        warnings.push(`could not list ${service}'s instances from the provider (${isKilnError(e) ? e.message : (e as Error).message}); only instances recorded in state are pinned`);
      }
    }
    const { pins, window } = computePins(db, services, keep, observed);
    const protect = window.map((w) => ({ digest: w.release.digest, reasons: [`release ${w.release.id} (${w.why})`] }));
    const result = await collectGarbage(openStore(opts.home), { pins, protect, pruneTags: opts.pruneTags, dryRun: opts.dryRun, graceMs: opts.graceMs, now: opts.now });
    for (const m of result.missing) warnings.push(`${m.digest.slice(0, 19)} is pinned (${m.reasons.join("; ")}) but not in the store: run \`kiln doctor\``);
    return {
      ...result,
      keep,
      services,
      window: window.map((w) => ({ service: w.service, release: w.release.id, ref: w.release.ref, digest: w.release.digest, why: w.why })),
      warnings,
    };
  } finally {
    db?.close();
  }
}

// What a release records of kiln.yaml: the runtime part it is deployed with (durations in ms),
// restored as-is by a rollback. Read back through normalizeReleaseSettings, the one place where
// releases recorded by an older kiln get the defaults of what did not exist yet.

import type { ResourceLimits } from "../config/resources.js";
import type { HealthParams } from "../health/tracker.js";
import type { ReleaseSecrets } from "../secrets/keeper.js";
import type { BlueGreenParams, CanaryParams, RollingParams, StrategyName } from "../rollout/types.js";

export interface ReleaseSettings {
  instances: number;
  health: HealthParams;
  drainTimeout: number;
  /**
   * canary is absent from releases recorded before canaries existed; such a release is never a
   * canary's target (its strategy could not name one), so nothing needs its defaults.
   */
  strategy: { type: StrategyName; rolling: RollingParams; blueGreen: BlueGreenParams; canary?: CanaryParams; maxQuarantined: number };
  volumes: { name: string; path: string }[];
  env: Record<string, string>;
  /** kiln.yaml `docker.network: host`; absent: the provider's own networking (a Docker bridge) */
  network?: "host";
  /** kiln.yaml `network` (local instances' namespace and egress); absent: the default, private with no egress */
  isolation?: { mode: "private" | "host"; allow: string[] };
  /** kiln.yaml `secrets`: their sources and keyed digest, never their values (absent: none declared) */
  secrets?: ReleaseSecrets;
  /** kiln.yaml `resources`: per-instance limits (absent: none, as for every release before them) */
  resources?: ResourceLimits;
}

/** A release spec as older kilns stored it: maxQuarantined came later. */
export type StoredReleaseSettings = Omit<ReleaseSettings, "strategy"> & { strategy: Omit<ReleaseSettings["strategy"], "maxQuarantined"> & { maxQuarantined?: number } };

/**
 * Fill in what an older release did not record.
 *
 *   { strategy: { …, maxQuarantined: 3 } } → unchanged
 *   { strategy: { … } } (recorded before quarantine existed) → maxQuarantined 1, the default then
 */
export function normalizeReleaseSettings(s: StoredReleaseSettings): ReleaseSettings {
  if (s.strategy.maxQuarantined !== undefined) return s as ReleaseSettings;
  return { ...s, strategy: { ...s.strategy, maxQuarantined: 1 } };
}

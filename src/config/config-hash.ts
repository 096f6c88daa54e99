import { createHash } from "node:crypto";
import { isolationOf } from "./network-allow.js";
import type { Spec } from "./types.js";

/** JSON with object keys sorted at every depth, so equal data always gives equal bytes. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== "object") return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  const obj = v as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(",")}}`;
}

/**
 * Hash of what a release runs with besides its image: declared env, volumes,
 * health checks, drain timeout, resource limits, host networking (`docker.network: host`) and `network` (mode, allow). Two specs with the same image digest and
 * config hash are the same release. `instances` (scaling is not a new release),
 * `listen` (the proxy's business), strategy (how to roll, not what runs) and
 * `image.*` (covered by the digest) are left out on purpose.
 */
export function computeConfigHash(spec: Spec): string {
  const isolation = isolationOf(spec.network);
  const relevant = {
    env: spec.env,
    // Volume order in the file carries no meaning; names are unique.
    volumes: [...spec.volumes].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
    health: spec.health,
    drainTimeout: spec.drainTimeout,
    // Only when set: the hashes of every release recorded before the key existed stay as they were.
    network: spec.docker.network === "host" ? "host" : undefined,
    // Limits change what an instance may do: a new release. Absent: left out, as for network.
    resources: spec.resources,
    // The same for kiln.yaml `network` (issue 12): only when it says more than the default.
    isolation: isolation && { ...isolation, allow: [...isolation.allow].sort() },
  };
  return `sha256:${createHash("sha256").update(canonicalJson(relevant)).digest("hex")}`;
}

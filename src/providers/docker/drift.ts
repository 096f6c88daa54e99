// Drift of running Docker instances: `docker diff` (the engine's changes API)
// of each of the service's containers. An instance is immutable, so any
// change outside its declared volumes and /tmp is a finding.

import { LABEL, digestLabel } from "../../derive/labels.js";
import type { Docker } from "./engine.js";

export interface ContainerChange {
  Path: string;
  /** 0 modified, 1 added, 2 deleted (the engine's numbering) */
  Kind: number;
}

export interface ContainerDriftFinding {
  path: string;
  kind: "modified" | "added" | "deleted";
}

const KIND = ["modified", "added", "deleted"] as const;
const under = (path: string, root: string) => path === root || path.startsWith(root === "/" ? "/" : `${root}/`);

/**
 * The changes that are drift. Left out: paths in a declared volume or /tmp,
 * and a "modified" directory that only holds other changes (the engine lists
 * every parent of a change as modified; the change itself is the finding).
 *
 *   [C /etc, A /etc/x], volumes []              → [added /etc/x]
 *   [C /data, A /data/db], volumes [/data]      → []
 *   [C /tmp, A /tmp/sock]                       → []
 *   [C /var, C /var/lib, A /var/lib/app/v], volumes [/var/lib/app] → []
 *   [D /usr/bin/node]                           → [deleted /usr/bin/node]
 */
export function driftFromChanges(changes: readonly ContainerChange[], volumePaths: readonly string[]): ContainerDriftFinding[] {
  const skip = ["/tmp", ...volumePaths];
  const kept = changes.filter((c) => !skip.some((v) => under(c.Path, v)));
  const parents = new Set<string>();
  for (const c of changes) {
    const parts = c.Path.split("/");
    for (let i = 2; i < parts.length; i++) parents.add(parts.slice(0, i).join("/"));
  }
  return kept
    .filter((c) => !(c.Kind === 0 && parents.has(c.Path)))
    .map((c) => ({ path: c.Path, kind: KIND[c.Kind] ?? "modified" }))
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

export interface ContainerDrift {
  instance: string;
  container: string;
  digest: string;
  findings: ContainerDriftFinding[];
}

/** Every running instance container of `service`, with its drift. */
export async function dockerDrift(docker: Docker, service: string, volumePaths: readonly string[]): Promise<ContainerDrift[]> {
  const list = await docker.listContainers({ filters: { label: [`${LABEL.service}=${service}`, LABEL.instance], status: ["running"] } });
  const out: ContainerDrift[] = [];
  for (const c of list) {
    if (c.Labels?.[LABEL.role]) continue;
    const changes = ((await docker.getContainer(c.Id).changes()) ?? []) as ContainerChange[];
    out.push({ instance: c.Labels?.[LABEL.instance] ?? c.Id.slice(0, 12), container: (c.Names?.[0] ?? c.Id).replace(/^\//, ""), digest: digestLabel(c.Labels) ?? "", findings: driftFromChanges(changes, volumePaths) });
  }
  return out.sort((a, b) => (a.instance < b.instance ? -1 : 1));
}

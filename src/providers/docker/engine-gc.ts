// Garbage collection of the images kiln loaded into the Docker Engine, as part of `kiln gc`:
// the engine is a cache of the store (ensureImage loads what a launch needs), so an image no
// kept release needs is removed from it too, and loaded again should a rollback ever need it.
//
// Which engine images are kiln's: those whose ID (the config digest) names a config blob in
// this home's store. Images of other homes or of anyone else are never touched, nor is one the
// engine has a tag for (kiln loads untagged: somebody named it), nor one any container uses,
// running or stopped (the engine would refuse; kiln never forces). Run it before the store's
// sweep: once a config blob is gone from the store, its engine image is no longer known as kiln's.

import { readImage, type Store } from "../../image/index.js";
import type { Docker } from "./engine.js";
import { translateDockerError } from "./engine.js";

export interface EngineImageFacts {
  /** "sha256:<config digest hex>" */
  id: string;
  /** the engine's tags for it ("<none>:<none>" already left out) */
  tags: string[];
  /** its config is in this home's store */
  ours: boolean;
  /** names of the containers (any state) created from it */
  containers: string[];
}

export interface EngineGcPlan {
  remove: string[];
  keep: { id: string; reasons: string[] }[];
}

/**
 * What to remove of kiln's engine images. `pinned`: engine ID → why a kept release needs it.
 *
 *   not ours                                  → left alone (in neither list)
 *   ours, pinned "release r7 (live)"          → kept: release r7 (live)
 *   ours, tagged "web:1"                      → kept: tagged web:1 in the engine
 *   ours, used by container kiln-web-r3-a1b2  → kept: used by container kiln-web-r3-a1b2
 *   ours, none of these                       → removed
 */
export function planEngineGc(images: readonly EngineImageFacts[], pinned: ReadonlyMap<string, readonly string[]>): EngineGcPlan {
  const plan: EngineGcPlan = { remove: [], keep: [] };
  for (const img of [...images].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
    if (!img.ours) continue;
    const reasons = [
      ...(pinned.get(img.id) ?? []),
      ...(img.tags.length > 0 ? [`tagged ${img.tags.join(", ")} in the engine`] : []),
      ...img.containers.map((c) => `used by container ${c}`),
    ];
    if (reasons.length > 0) plan.keep.push({ id: img.id, reasons });
    else plan.remove.push(img.id);
  }
  return plan;
}

export interface EngineGcResult {
  /** engine image IDs removed (or, in a dry run, that would be) */
  removed: string[];
  kept: { id: string; reasons: string[] }[];
}

/**
 * Removes kiln's engine images that no pin needs. `pins`: manifest digests and why they stay
 * (the same pins the store's gc keeps). A removal the engine refuses (a container created from
 * the image meanwhile) keeps the image and says so.
 */
export async function collectEngineGarbage(docker: Docker, store: Store, pins: readonly { digest: string; reasons: string[] }[], opts: { dryRun?: boolean } = {}): Promise<EngineGcResult> {
  const pinned = new Map<string, string[]>();
  for (const p of pins) {
    let id: string;
    try {
      id = (await readImage(store, p.digest)).manifest.config.digest;
    } catch {
      continue; // not in the store: nothing of it can be told apart in the engine (the store's gc warns)
    }
    pinned.set(id, [...(pinned.get(id) ?? []), ...p.reasons]);
  }
  let images: Docker.ImageInfo[];
  let containers: Docker.ContainerInfo[];
  try {
    images = await docker.listImages();
    containers = await docker.listContainers({ all: true });
  } catch (e) {
    throw translateDockerError(e, "list the engine's images and containers");
  }
  const users = new Map<string, string[]>();
  for (const c of containers) users.set(c.ImageID, [...(users.get(c.ImageID) ?? []), (c.Names[0] ?? c.Id.slice(0, 12)).replace(/^\//, "")]);
  const facts: EngineImageFacts[] = [];
  for (const img of images) {
    facts.push({
      id: img.Id,
      tags: (img.RepoTags ?? []).filter((t) => t !== "<none>:<none>"),
      ours: /^sha256:[0-9a-f]{64}$/.test(img.Id) && (await store.hasBlob(img.Id)),
      containers: users.get(img.Id) ?? [],
    });
  }
  const plan = planEngineGc(facts, pinned);
  const result: EngineGcResult = { removed: [], kept: [...plan.keep] };
  for (const id of plan.remove) {
    if (opts.dryRun) {
      result.removed.push(id);
      continue;
    }
    try {
      await docker.getImage(id).remove({ noprune: false });
      result.removed.push(id);
    } catch (e) {
      const status = (e as { statusCode?: number }).statusCode;
      if (status === 404) continue; // gone already
      if (status === 409) {
        result.kept.push({ id, reasons: ["the engine refused: a container was created from it meanwhile"] });
        continue;
      }
      throw translateDockerError(e, `remove engine image ${id}`);
    }
  }
  return result;
}

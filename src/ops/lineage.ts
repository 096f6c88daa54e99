// Where images come from and where they run, for `kiln images --tree` and `kiln outdated`:
// every release of every environment's state (the store is shared by all of them), and the
// store's images with their base and the parent a `kiln rebake --patch` recorded.
// computeImageTree is pure; readReleases and readImageTree read state and the store.

import { isKilnError, KilnError } from "../errors.js";
import { ANNOTATION, listImages, type OciManifest, type Store } from "../image/index.js";
import { StateDb, type ReleaseStatus } from "../state/db.js";
import { isPostgresLocation } from "../state/driver.js";
import { redactUrl } from "../state/pg-dialect.js";
import { homeStateLocations } from "../state/state-location.js";

/** One release as lineage and `kiln outdated` see it: where it is, and whether it runs. */
export interface ReleaseSite {
  /** the kiln.yaml environment whose state holds it (absent: the home's top-level state) */
  environment?: string;
  service: string;
  release: string;
  ref: string;
  digest: string;
  status: ReleaseStatus;
  /** the service's live release */
  live: boolean;
  /** instances launching, running or draining from it */
  instances: number;
}

/** A release that carries its image into production: the live one, or any with instances (a canary, a warm standby). */
export const isRunning = (r: ReleaseSite): boolean => r.live || r.instances > 0;

/** Every release in every state database of the home, newest first per service. */
export function readReleases(home: string, state: string | undefined): ReleaseSite[] {
  const out: ReleaseSite[] = [];
  for (const f of homeStateLocations(home, state)) {
    let db: StateDb | undefined;
    try {
      db = new StateDb(f.file);
      for (const service of db.services()) {
        const live = db.getFact(service, "live");
        const counts = new Map<string, number>();
        for (const i of db.liveInstances(service)) counts.set(i.release, (counts.get(i.release) ?? 0) + 1);
        for (const r of db.listReleases(service)) {
          out.push({ ...(f.environment ? { environment: f.environment } : {}), service, release: r.id, ref: r.ref, digest: r.digest, status: r.status, live: r.id === live, instances: counts.get(r.id) ?? 0 });
        }
      }
    } catch (cause) {
      if (isKilnError(cause)) throw cause;
      throw new KilnError("KILN_E_STATE", `the state database ${isPostgresLocation(f.file) ? redactUrl(f.file) : f.file} cannot be read (${(cause as Error).message})`, { cause, hint: "run `kiln doctor`" });
    } finally {
      db?.close();
    }
  }
  return out;
}

export interface StoredImage {
  ref: string;
  digest: string;
  created: string;
  base?: { name: string; digest: string };
  /** the image this one is a patch of (`kiln rebake --patch`) */
  patchOf?: string;
}

/** The store's tagged images with their base and parent, from their manifests' annotations. */
export async function readStoredImages(store: Store): Promise<StoredImage[]> {
  const out: StoredImage[] = [];
  for (const i of await listImages(store)) {
    const a = (await store.readJsonBlob<OciManifest>(i.digest)).annotations ?? {};
    const baseDigest = a[ANNOTATION.baseDigest];
    out.push({
      ref: i.ref,
      digest: i.digest,
      created: i.created,
      ...(baseDigest ? { base: { name: a[ANNOTATION.baseName] ?? "", digest: baseDigest } } : {}),
      ...(a[ANNOTATION.patchOf] ? { patchOf: a[ANNOTATION.patchOf] } : {}),
    });
  }
  return out;
}

export interface TreeImage {
  ref: string;
  digest: string;
  created: string;
  patchOf?: { digest: string; ref?: string };
  releases: ReleaseSite[];
}

export interface TreeBase {
  /** absent for images whose manifest names no base */
  name?: string;
  digest?: string;
  images: TreeImage[];
}

export interface ImageTree {
  schemaVersion: 1;
  bases: TreeBase[];
  /** releases whose image is not tagged in the store (pulled by digest, or removed) */
  orphans: ReleaseSite[];
}

/**
 * base digest → images (oldest first, with the image each patches) → releases → where they run.
 * Two tags of one digest are one image per tag (each is a name someone deploys).
 *
 * - images a (base B1), b (base B1, patch of a), c (base B2, patch of b); release r1 of a
 *   (superseded), r2 of b (live, 3 instances) → bases [B1: [a [r1], b [r2] patchOf a], B2: [c patchOf b]]
 * - a release of a digest no tag names → orphans
 * - an image with no base annotation → the base with no name and digest, listed last
 */
export function computeImageTree(images: readonly StoredImage[], releases: readonly ReleaseSite[]): ImageTree {
  const byDigest = new Map<string, StoredImage>();
  for (const i of images) if (!byDigest.has(i.digest)) byDigest.set(i.digest, i);
  const bases = new Map<string, TreeBase>();
  const sorted = [...images].sort((x, y) => (x.created < y.created ? -1 : x.created > y.created ? 1 : x.ref < y.ref ? -1 : 1));
  for (const i of sorted) {
    const key = i.base?.digest ?? "";
    const base = bases.get(key) ?? { ...(i.base ? { name: i.base.name, digest: i.base.digest } : {}), images: [] };
    bases.set(key, base);
    const parentRef = i.patchOf ? byDigest.get(i.patchOf)?.ref : undefined;
    base.images.push({
      ref: i.ref,
      digest: i.digest,
      created: i.created,
      ...(i.patchOf ? { patchOf: { digest: i.patchOf, ...(parentRef ? { ref: parentRef } : {}) } } : {}),
      releases: releases.filter((r) => r.digest === i.digest),
    });
  }
  const ordered = [...bases.values()].sort((x, y) => (x.digest === undefined ? 1 : y.digest === undefined ? -1 : (x.images[0]?.created ?? "") < (y.images[0]?.created ?? "") ? -1 : 1));
  return { schemaVersion: 1, bases: ordered, orphans: releases.filter((r) => !byDigest.has(r.digest)) };
}

export async function readImageTree(store: Store, home: string, state: string | undefined): Promise<ImageTree> {
  return computeImageTree(await readStoredImages(store), readReleases(home, state));
}

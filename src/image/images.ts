// Reading the store: list tagged images, resolve a reference to a digest,
// read an image's manifest and config (both verified against their digests).

import { KilnError } from "../errors.js";
import { isDigest } from "./digest.js";
import { splitRef } from "./ref.js";
import type { Store, TaggedManifest } from "./store.js";
import { ANNOTATION, MEDIA_TYPE, type ImageSummary, type OciImageConfig, type OciManifest } from "./types.js";

export async function readImage(store: Store, digest: string): Promise<{ manifest: OciManifest; config: OciImageConfig }> {
  const manifest = await store.readJsonBlob<OciManifest>(digest);
  if (!manifest || typeof manifest !== "object" || !manifest.config || !Array.isArray(manifest.layers)) {
    throw new KilnError("KILN_E_IMAGE", `${digest} is not an image manifest`);
  }
  const config = await store.readJsonBlob<OciImageConfig>(manifest.config.digest);
  return { manifest, config };
}

export async function listImages(store: Store): Promise<ImageSummary[]> {
  const tags = await store.listTags();
  const out: ImageSummary[] = [];
  for (const t of tags) {
    const manifest = await store.readJsonBlob<OciManifest>(t.descriptor.digest);
    const a = manifest.annotations ?? {};
    const size = manifest.config.size + manifest.layers.reduce((n, l) => n + l.size, 0);
    out.push({
      ref: t.ref,
      name: t.name,
      version: t.version,
      digest: t.descriptor.digest,
      created: a[ANNOTATION.created] ?? "",
      timestampedName: a[ANNOTATION.timestampedName] ?? "",
      size,
    });
  }
  return out.sort((x, y) => (x.ref < y.ref ? -1 : x.ref > y.ref ? 1 : 0));
}

/**
 * "name:version", "sha256:<64 hex>", "sha256:<≥12 hex>" or "<≥12 hex>" (a
 * unique prefix of a stored image's digest), "name@sha256:<64 hex>" → manifest
 * digest. Anything else: KILN_E_NOT_FOUND, with the nearest tags as a hint.
 */
export async function resolveRef(store: Store, ref: string): Promise<string> {
  const tags = await store.listTags();
  const at = ref.indexOf("@");
  if (at > 0) {
    const name = ref.slice(0, at);
    const digest = ref.slice(at + 1);
    if (tags.some((t) => t.name === name && t.descriptor.digest === digest)) return digest;
    throw notFound(ref, tags, `no image named ${name} has digest ${digest}`);
  }

  const prefix = /^(?:sha256:)?([0-9a-f]{12,64})$/.exec(ref);
  if (prefix) {
    const hex = prefix[1]!;
    if (hex.length === 64) {
      const digest = `sha256:${hex}`;
      if (tags.some((t) => t.descriptor.digest === digest)) return digest;
      // An untagged image (a base built by kiln) is still addressable by full digest.
      if (isDigest(digest) && (await store.hasBlob(digest))) {
        const m = await store.readJsonBlob<OciManifest>(digest).catch(() => undefined);
        if (m && m.config && Array.isArray(m.layers) && (m.mediaType ?? MEDIA_TYPE.manifest) === MEDIA_TYPE.manifest) return digest;
      }
      throw notFound(ref, tags);
    }
    const matches = [...new Set(tags.map((t) => t.descriptor.digest).filter((d) => d.startsWith(`sha256:${hex}`)))];
    if (matches.length === 1) return matches[0]!;
    if (matches.length > 1) {
      throw new KilnError("KILN_E_NOT_FOUND", `digest prefix ${ref} matches ${matches.length} images`, {
        hint: `use more characters: ${matches.map((d) => d.slice(0, 7 + hex.length + 4)).join(", ")}`,
      });
    }
    throw notFound(ref, tags);
  }

  const exact = tags.find((t) => t.ref === ref);
  if (exact) return exact.descriptor.digest;
  throw notFound(ref, tags);
}

function notFound(ref: string, tags: TaggedManifest[], why?: string): KilnError {
  const near = nearbyTags(ref, tags.map((t) => t.ref));
  return new KilnError("KILN_E_NOT_FOUND", why ?? `no image ${ref} in the store`, {
    hint: near.length > 0 ? `did you mean ${near.join(", ")}?` : tags.length === 0 ? "the store is empty: bake an image first" : "list images with `kiln images`",
    details: [{ where: ref, message: "not found" }],
  });
}

/** Up to 5 tags: same name first (any version), then names within a small edit distance. */
export function nearbyTags(ref: string, refs: readonly string[]): string[] {
  const wanted = splitRef(ref)?.name ?? ref;
  const scored = refs
    .map((r) => {
      const name = splitRef(r)?.name ?? r;
      const d = name === wanted ? 0 : editDistance(name, wanted);
      return { r, d };
    })
    .filter((x) => x.d <= Math.max(2, Math.floor(wanted.length / 3)))
    .sort((a, b) => a.d - b.d || (a.r < b.r ? -1 : 1));
  return scored.slice(0, 5).map((x) => x.r);
}

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}

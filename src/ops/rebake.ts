// `kiln rebake --patch`: bake the next patch version of the image kiln.yaml's `version` names,
// from the same kiln.yaml with its inputs as they are now (the base's tag re-read, a node@N
// base's pin, the host's files for "node"), recorded as a patch of that image
// (dev.kiln.patch-of). kiln.yaml's version is bumped only once the bake succeeded, keeping the
// file's comments and layout (the yaml package's Document API). A rebake whose base is the one
// the parent was baked from would change nothing a patch is for: refused, with what to refresh.

import { createHash } from "node:crypto";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { isScalar, parseDocument, Scalar } from "yaml";
import { KilnError } from "../errors.js";
import { ANNOTATION, bake, bakeThreads, listImages, nextPatchVersion, readImageSbom, resolveBase, resolveRef, type BakeResult, type OciManifest, type ProgressFn, type Store } from "../image/index.js";
import { imageFactsFromSbom, type ImageFacts } from "./outdated.js";
import { recipeOf } from "./recipe.js";
import type { Workspace } from "./workspace.js";

export interface InputChange {
  kind: "base" | "runtime" | "debian";
  subject: string;
  /** absent: new in the patch */
  from?: string;
  /** absent: gone from the patch */
  to?: string;
}

export interface RebakeResult {
  parent: { ref: string; digest: string };
  version: { from: string; to: string };
  bake: BakeResult;
  /** what differs between the parent's inputs and the patch's (from the two SBOMs) */
  changes: InputChange[];
}

/**
 * kiln.yaml's text with `version` set to `next`: only the value's characters change (its quoting
 * kept), so comments, spacing and order stay byte for byte.
 *
 * "name: hello\nversion: 1.0.0   # bumped by kiln rebake\n" → "name: hello\nversion: 1.0.1   # bumped by kiln rebake\n"
 * 'version: "1.0.0"\n' → 'version: "1.0.1"\n'
 */
export function withVersion(text: string, next: string): string {
  const node = parseDocument(text).get("version", true);
  if (!isScalar(node) || !node.range) throw new KilnError("KILN_E_SPEC", "kiln.yaml has no top-level version to bump", { hint: "add `version: 1.0.0`" });
  const value = node.type === Scalar.QUOTE_DOUBLE ? JSON.stringify(next) : node.type === Scalar.QUOTE_SINGLE ? `'${next}'` : next;
  return text.slice(0, node.range[0]) + value + text.slice(node.range[1]);
}

/**
 * What changed between a parent's and a patch's inputs: the base digest, the runtime version,
 * each Debian package's version (added, removed, changed). Sorted by kind, then subject.
 *
 * base A→B, node 24.20.0→24.22.3, libssl3 3.0.11→3.0.17, tzdata unchanged
 *   → [base A→B, debian libssl3 3.0.11→3.0.17, runtime node 24.20.0→24.22.3]
 */
export function computeInputChanges(parent: ImageFacts, patch: ImageFacts): InputChange[] {
  const out: InputChange[] = [];
  if (parent.base?.digest !== patch.base?.digest) out.push({ kind: "base", subject: patch.base?.name ?? parent.base?.name ?? "base", ...(parent.base ? { from: parent.base.digest } : {}), ...(patch.base ? { to: patch.base.digest } : {}) });
  if (parent.runtime?.version !== patch.runtime?.version) out.push({ kind: "runtime", subject: "node", ...(parent.runtime ? { from: parent.runtime.version } : {}), ...(patch.runtime ? { to: patch.runtime.version } : {}) });
  const key = (p: { name: string; arch: string }) => `${p.name}:${p.arch}`;
  const before = new Map(parent.debian.map((p) => [key(p), p]));
  const after = new Map(patch.debian.map((p) => [key(p), p]));
  for (const k of [...new Set([...before.keys(), ...after.keys()])]) {
    const a = before.get(k);
    const b = after.get(k);
    if (a?.version === b?.version) continue;
    out.push({ kind: "debian", subject: (a ?? b)!.name, ...(a ? { from: a.version } : {}), ...(b ? { to: b.version } : {}) });
  }
  return out.sort((x, y) => (x.kind < y.kind ? -1 : x.kind > y.kind ? 1 : x.subject < y.subject ? -1 : x.subject > y.subject ? 1 : 0));
}

async function factsOf(store: Store, digest: string): Promise<ImageFacts> {
  try {
    return imageFactsFromSbom(digest, JSON.parse((await readImageSbom(store, digest)).text));
  } catch {
    return { digest, sbom: false, debian: [], npm: [] };
  }
}

export async function rebakePatch(ws: Workspace, opts: { store: Store; strict?: boolean; onProgress?: ProgressFn }): Promise<RebakeResult> {
  const { store } = opts;
  const { spec } = ws.loaded;
  const parentRef = `${spec.name}:${spec.version}`;
  let parentDigest: string;
  try {
    parentDigest = await resolveRef(store, parentRef);
  } catch (e) {
    throw new KilnError("KILN_E_NOT_FOUND", `no image ${parentRef} in the store to patch`, { cause: e, hint: `a patch is the next version of the image kiln.yaml's version names: \`kiln bake\` it first (or \`kiln pull\` it)` });
  }
  const taken = (await listImages(store)).filter((i) => i.name === spec.name).map((i) => i.version);
  const next = nextPatchVersion(spec.version, taken);
  if (next === undefined) throw new KilnError("KILN_E_USAGE", `version ${JSON.stringify(spec.version)} is not MAJOR.MINOR.PATCH, so it has no next patch`, { hint: "set kiln.yaml's version to e.g. 1.0.0 (or bump it yourself and run `kiln bake`)" });

  const parentManifest = await store.readJsonBlob<OciManifest>(parentDigest);
  const parentBase = parentManifest.annotations?.[ANNOTATION.baseDigest];
  // Resolving the base is what the bake does first (and is cached): check before tagging anything.
  // In the form the bake writes it (image.compression), so its digest compares with the parent's base.
  const base = await resolveBase(spec.image.base, { store, contextDir: ws.loaded.dir, onProgress: opts.onProgress ?? (() => undefined), layerWrite: { compression: spec.image.compression, threads: bakeThreads(process.env) } });
  if (parentBase !== undefined && base.digest === parentBase) {
    throw new KilnError("KILN_E_USAGE", `nothing to patch: kiln.yaml's base ${spec.image.base} is still ${base.digest}, the base ${parentRef} was baked from`, {
      hint: "refresh the base first (e.g. `skopeo copy docker://debian:12 oci:PATH:TAG` moves the layout's tag to the patched image; node@N follows kiln's pin), then rebake; to ship an app change, bump the version and `kiln bake`",
    });
  }

  const file = ws.loaded.file;
  const text = withVersion(readFileSync(file, "utf8"), next);
  const recipe = { ...recipeOf(ws.loaded), version: next, specDigest: `sha256:${createHash("sha256").update(text).digest("hex")}`, patchOf: parentDigest };
  const result = await bake(recipe, { store, strict: opts.strict ?? false, ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) });
  // The bake succeeded and its tag exists: now kiln.yaml names it (write-then-rename, never half a file).
  writeFileSync(`${file}.rebake`, text);
  renameSync(`${file}.rebake`, file);
  const changes = computeInputChanges(await factsOf(store, parentDigest), await factsOf(store, result.digest));
  return { parent: { ref: parentRef, digest: parentDigest }, version: { from: spec.version, to: next }, bake: result, changes };
}

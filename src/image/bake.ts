// bake: recipe → reproducible OCI image in the store, tagged name:version.
//
// Order of work (each step is skipped when its output is already known):
//   1. created time: option, SOURCE_DATE_EPOCH, git commit time, else 0;
//   2. base (node runtime or imported image);
//   3. one layer per non-empty role (dependencies, app, config): files are
//      collected and hashed, the layer is planned, and its cache key (role,
//      paths, modes, content hashes, mtime, format) either finds a stored
//      layer or the layer is tarred + gzipped;
//   4. config and manifest composed purely, serialized canonically, stored;
//   5. the tag is written last, refusing to move an existing one.

import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { KilnError } from "../errors.js";
import { resolveBase } from "./base.js";
import { composeConfig, composeManifest, isoFromEpoch, timestampedName, type ComposeInput } from "./compose.js";
import { canonicalBytes } from "./digest.js";
import { cachedLayer, collectFiles, layerCacheKey, planLayer, writeLayerReported, type LayerEntry } from "./layer.js";
import { checkRefParts, formatRef } from "./ref.js";
import { checkRuntimeSupport, runtimeOfBase } from "./runtime-check.js";
import type { BaseImage } from "./base-image.js";
import { attachProvenance, provenanceStatement, readProvenance } from "./provenance.js";
import { kilnVersion, pickLockfile, writeImageSbom } from "./sbom-write.js";
import type { Store } from "./store.js";
import { MEDIA_TYPE, type BakeRecipe, type BakeResult, type FileEntry, type LayerRecord, type LayerRole, type LayerSummary, type ProgressFn } from "./types.js";

const execFileP = promisify(execFile);

export interface BakeOptions {
  store: Store;
  /** seconds since the epoch; wins over SOURCE_DATE_EPOCH and git */
  sourceDateEpoch?: number;
  onProgress?: ProgressFn;
  /** where SOURCE_DATE_EPOCH is read from; defaults to process.env */
  env?: Record<string, string | undefined>;
  /** refuse (KILN_E_SPEC) a base runtime past its end of life instead of warning */
  strict?: boolean;
  /** today, YYYY-MM-DD (UTC), for the end-of-life check; defaults to the clock */
  today?: string;
  /** write and attach the CycloneDX SBOM (default true) */
  sbom?: boolean;
}

export type CreatedSource = "option" | "SOURCE_DATE_EPOCH" | "git" | "default";

/** The image's created time, in whole seconds. */
export async function resolveCreatedEpoch(
  contextDir: string,
  explicit: number | undefined,
  env: Record<string, string | undefined>,
): Promise<{ epoch: number; source: CreatedSource }> {
  if (explicit !== undefined) return { epoch: checkEpoch(explicit, "sourceDateEpoch"), source: "option" };
  const fromEnv = env.SOURCE_DATE_EPOCH;
  if (fromEnv !== undefined && fromEnv !== "") {
    if (!/^\d+$/.test(fromEnv)) {
      throw new KilnError("KILN_E_IMAGE", `SOURCE_DATE_EPOCH=${JSON.stringify(fromEnv)} is not a whole number of seconds`, {
        hint: "set it to e.g. $(git log -1 --format=%ct), or unset it",
      });
    }
    return { epoch: checkEpoch(Number(fromEnv), "SOURCE_DATE_EPOCH"), source: "SOURCE_DATE_EPOCH" };
  }
  try {
    const { stdout } = await execFileP("git", ["-C", contextDir, "log", "-1", "--format=%ct"], { timeout: 10_000 });
    const t = stdout.trim();
    if (/^\d+$/.test(t)) return { epoch: Number(t), source: "git" };
  } catch {
    // not a git checkout, no commits yet, or no git: fall through
  }
  return { epoch: 0, source: "default" };
}

function checkEpoch(n: number, what: string): number {
  if (!Number.isSafeInteger(n) || n < 0 || n > 8_589_934_591 /* 11 octal digits in a tar header */) {
    throw new KilnError("KILN_E_IMAGE", `${what} ${n} is not a usable time in seconds since 1970`);
  }
  return n;
}

function checkRecipe(r: BakeRecipe): void {
  checkRefParts(r.name, r.version);
  if (!Number.isInteger(r.port) || r.port < 0 || r.port > 65535) {
    throw new KilnError("KILN_E_IMAGE", `port ${r.port} is not a TCP port`);
  }
  if (r.workdir && !r.workdir.startsWith("/")) {
    throw new KilnError("KILN_E_IMAGE", `workdir ${JSON.stringify(r.workdir)} is not an absolute path`);
  }
}

const ROLES: { role: Exclude<LayerRole, "base">; key: "dependencies" | "files" | "config" }[] = [
  { role: "dependencies", key: "dependencies" },
  { role: "app", key: "files" },
  { role: "config", key: "config" },
];

export async function bake(recipe: BakeRecipe, opts: BakeOptions): Promise<BakeResult> {
  const { store } = opts;
  const progress: ProgressFn = opts.onProgress ?? (() => undefined);
  checkRecipe(recipe);
  const ref = formatRef(recipe.name, recipe.version);

  const { epoch, source } = await resolveCreatedEpoch(recipe.contextDir, opts.sourceDateEpoch, opts.env ?? process.env);
  progress({ phase: "created", detail: `${isoFromEpoch(epoch)} (from ${source})` });

  progress({ phase: "base", step: "start", detail: recipe.base });
  const base = await resolveBase(recipe.base, { store, contextDir: recipe.contextDir, onProgress: progress });
  progress({ phase: "base", step: "end", detail: `${base.name}${base.cached ? " (cached)" : ""}` });
  let allCached = base.cached;
  const runtime = runtimeOfBase(base, opts.today ?? new Date().toISOString().slice(0, 10));
  const warnings = checkRuntimeSupport(runtime, opts.strict ?? false, recipe.base);
  for (const w of warnings) progress({ phase: "warning", detail: w });

  const own: { role: LayerRole; record: LayerRecord; entries: LayerEntry[] }[] = [];
  for (const { role, key } of ROLES) {
    const specs: FileEntry[] = recipe[key];
    if (specs.length === 0) continue;
    progress({ phase: "collect", detail: role });
    const { entries, skipped } = await collectFiles(recipe.contextDir, specs, key);
    for (const s of skipped) progress({ phase: "skip", detail: `${s.path}: ${s.reason}` });
    if (entries.length === 0) continue;
    const planned = planLayer(entries);
    const { record, cached } = await cachedLayer(store, "layers", layerCacheKey(role, planned, epoch), () => writeLayerReported(store, planned, epoch, progress, `layer ${role}`, "building"));
    if (cached) progress({ phase: "layer", detail: `${role}: cached ${record.descriptor.digest}` });
    allCached &&= cached;
    own.push({ role, record, entries: planned });
  }

  progress({ phase: "image", step: "start", detail: "writing config and manifest" });
  const input: ComposeInput = { recipe, createdEpoch: epoch, base, layers: own };
  const config = await store.putBlob(canonicalBytes(composeConfig(input)));
  const manifest = composeManifest({ mediaType: MEDIA_TYPE.config, ...config }, input);
  const manifestBlob = await store.putBlob(canonicalBytes(manifest));
  progress({ phase: "image", step: "end", bytes: config.size + manifestBlob.size, detail: manifestBlob.digest.slice(0, 19) });

  const manifestDescriptor = { mediaType: MEDIA_TYPE.manifest, digest: manifestBlob.digest, size: manifestBlob.size };
  // The SBOM before the tag: a tagged image always has its SBOM.
  if (opts.sbom !== false) progress({ phase: "sbom", step: "start", detail: "CycloneDX" });
  const sbom = opts.sbom === false ? undefined : await writeImageSbom(store, { image: { name: recipe.name, version: recipe.version, digest: manifestBlob.digest, created: isoFromEpoch(epoch), revision: recipe.revision }, manifest: manifestDescriptor, base, layers: own });
  if (sbom) progress({ phase: "sbom", step: "end", detail: `${sbom.summary.counts.components} components ${sbom.digest.slice(0, 19)}` });
  const provenance = opts.sbom === false ? undefined : await writeProvenance(store, recipe, base, own, manifestDescriptor, { created: isoFromEpoch(epoch), sbomDigest: sbom?.documentDigest });
  if (provenance) progress({ phase: "provenance", detail: provenance.digest });
  await store.tag(ref, manifestDescriptor);
  progress({ phase: "tag", detail: ref });

  const layers: LayerSummary[] = [
    ...base.layers.map((l) => ({ role: "base" as const, digest: l.descriptor.digest, diffId: l.diffId, size: l.descriptor.size })),
    ...own.map((l) => ({ role: l.role, digest: l.record.descriptor.digest, diffId: l.record.diffId, size: l.record.descriptor.size })),
  ];
  return {
    ref,
    digest: manifestBlob.digest,
    configDigest: config.digest,
    timestampedName: timestampedName(recipe.name, recipe.version, epoch),
    created: isoFromEpoch(epoch),
    layers,
    cached: allCached,
    warnings,
    ...(runtime ? { runtime } : {}),
    ...(sbom ? { sbom: { digest: sbom.digest, documentDigest: sbom.documentDigest, counts: sbom.summary.counts } } : {}),
    ...(provenance ? { provenance: { digest: provenance.digest } } : {}),
  };
}

/**
 * The in-toto/SLSA provenance of this bake, attached to the image (same
 * inputs, same bytes; a re-bake of the same digest finds it there).
 */
async function writeProvenance(
  store: Store,
  recipe: BakeRecipe,
  base: BaseImage,
  own: { role: LayerRole; entries: LayerEntry[] }[],
  manifest: { mediaType: string; digest: string; size: number },
  t: { created: string; sbomDigest?: string },
): Promise<{ digest: string }> {
  // A kiln.yaml edit that changes no layer (a comment) gives the same digest: keep the first statement.
  const existing = await readProvenance(store, manifest.digest);
  if (existing) return { digest: existing.artifact.digest };
  const lock = pickLockfile(own);
  const rt = base.runtime;
  const statement = provenanceStatement({
    image: { name: recipe.name, version: recipe.version, digest: manifest.digest },
    ...(recipe.specDigest ? { specDigest: recipe.specDigest } : {}),
    ...(recipe.revision ? { revision: recipe.revision } : {}),
    base: { name: base.name, digest: base.digest },
    ...(rt ? { runtime: { name: rt.name, version: rt.version, origin: rt.origin, ...(rt.archive ? { archive: rt.archive } : {}) } } : {}),
    ...(lock?.file ? { lockfile: { path: `/${lock.path}`, sha256: lock.file.sha256 } } : {}),
    kiln: { version: await kilnVersion() },
    ...(t.sbomDigest ? { sbomDigest: t.sbomDigest } : {}),
    ...(recipe.patchOf ? { patchOf: recipe.patchOf } : {}),
  });
  const d = await attachProvenance(store, manifest, statement, t.created);
  return { digest: d.digest };
}

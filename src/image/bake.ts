// bake: recipe → reproducible OCI image in the store, tagged name:version.
//
// Order of work (each step is skipped when its output is already known):
//   1. base (node runtime or imported image);
//   2. every role's files (dependencies, app, config) collected and hashed;
//   3. created time: option, SOURCE_DATE_EPOCH, git commit time, else the
//      newest mtime of the files collected (so it needs step 2);
//   4. one layer per non-empty role: the layer is planned, and its cache key
//      (role, paths, modes, content hashes, mtime, format) either finds a
//      stored layer or the layer is tarred + gzipped;
//   5. config and manifest composed purely, serialized canonically, stored;
//   6. the tag is written last, refusing to move an existing one.
//
// The tag is also checked before step 4 (bakeInputsDigest): an existing tag
// whose recorded inputs differ is refused before any layer is written, so a
// forgotten version bump fails in a second instead of after the whole bake.

import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { KilnError } from "../errors.js";
import { resolveBase } from "./base.js";
import { composeAnnotations, composeConfig, composeManifest, isoFromEpoch, timestampedName, type ComposeInput } from "./compose.js";
import { canonicalBytes, sha256Digest } from "./digest.js";
import { cachedLayer, collectFiles, layerCacheKey, planLayer, type LayerEntry } from "./layer.js";
import { buildLayer } from "./machine-layers.js";
import { bakeThreads, loadGzipEncoder } from "./parallel-gzip.js";
import { checkRefParts, formatRef } from "./ref.js";
import { checkRuntimeSupport, runtimeOfBase } from "./runtime-check.js";
import type { BaseImage } from "./base-image.js";
import { attachProvenance, provenanceStatement, readProvenance } from "./provenance.js";
import { kilnVersion, pickLockfile, writeImageSbom } from "./sbom-write.js";
import { tagImmutableError, type Store } from "./store.js";
import { MEDIA_TYPE, type BakeRecipe, type BakeResult, type FileEntry, type LayerRecord, type LayerRole, type LayerSummary, type LayerWriteOptions, type ProgressFn } from "./types.js";

const execFileP = promisify(execFile);

export interface BakeOptions {
  store: Store;
  /** seconds since the epoch; wins over SOURCE_DATE_EPOCH and git */
  sourceDateEpoch?: number;
  onProgress?: ProgressFn;
  /** where SOURCE_DATE_EPOCH and KILN_BAKE_THREADS are read from; defaults to process.env */
  env?: Record<string, string | undefined>;
  /** threads compressing a layer; wins over KILN_BAKE_THREADS (default: every core). Never changes the digest. */
  threads?: number;
  /** refuse (KILN_E_SPEC) a base runtime past its end of life instead of warning */
  strict?: boolean;
  /** today, YYYY-MM-DD (UTC), for the end-of-life check; defaults to the clock */
  today?: string;
  /** write and attach the CycloneDX SBOM (default true) */
  sbom?: boolean;
}

export type CreatedSource = "option" | "SOURCE_DATE_EPOCH" | "git" | "mtime" | "default";

/** What the created time can come from; undefined = not available. */
export interface CreatedFacts {
  /** BakeOptions.sourceDateEpoch */
  explicit?: number;
  /** the raw SOURCE_DATE_EPOCH value ("" counts as unset) */
  sourceDateEpoch?: string;
  /** the last commit's time, when the project is in a git checkout with commits */
  gitCommitTime?: number;
  /** the newest mtime (whole seconds) among the files baked in; 0 or undefined when there are none */
  newestInputMtime?: number;
}

/**
 * The image's created time: the first of option, SOURCE_DATE_EPOCH, git
 * commit time, newest input mtime, else 0. The mtime fallback keeps a bake
 * outside git reproducible (same inputs and mtimes → same digest) while
 * dating the image by its content instead of 1970.
 *
 * Examples:
 *   { explicit: 5, sourceDateEpoch: "7", gitCommitTime: 9 }   → 5, "option"
 *   { sourceDateEpoch: "7", gitCommitTime: 9, newestInputMtime: 11 } → 7, "SOURCE_DATE_EPOCH"
 *   { sourceDateEpoch: "", gitCommitTime: 9, newestInputMtime: 11 } → 9, "git"
 *   { newestInputMtime: 1_764_000_000 }                     → 1764000000, "mtime"
 *   { newestInputMtime: 0 } or {}                            → 0, "default"
 *   { sourceDateEpoch: "yesterday" }                         → KILN_E_IMAGE
 */
export function pickCreatedEpoch(f: CreatedFacts): { epoch: number; source: CreatedSource } {
  if (f.explicit !== undefined) return { epoch: checkEpoch(f.explicit, "sourceDateEpoch"), source: "option" };
  const fromEnv = f.sourceDateEpoch;
  if (fromEnv !== undefined && fromEnv !== "") {
    if (!/^\d+$/.test(fromEnv)) {
      throw new KilnError("KILN_E_IMAGE", `SOURCE_DATE_EPOCH=${JSON.stringify(fromEnv)} is not a whole number of seconds`, {
        hint: "set it to e.g. $(git log -1 --format=%ct), or unset it",
      });
    }
    return { epoch: checkEpoch(Number(fromEnv), "SOURCE_DATE_EPOCH"), source: "SOURCE_DATE_EPOCH" };
  }
  if (f.gitCommitTime !== undefined) return { epoch: checkEpoch(f.gitCommitTime, "the last commit's time"), source: "git" };
  if (f.newestInputMtime !== undefined && f.newestInputMtime > 0) {
    return { epoch: checkEpoch(f.newestInputMtime, "the newest input file's mtime"), source: "mtime" };
  }
  return { epoch: 0, source: "default" };
}

/** The image's created time, in whole seconds (pickCreatedEpoch over the facts read here). */
export async function resolveCreatedEpoch(
  contextDir: string,
  explicit: number | undefined,
  env: Record<string, string | undefined>,
  newestInputMtime?: number,
  /** gitCommitTime(contextDir), when the caller started it already */
  gitTime?: Promise<number | undefined>,
): Promise<{ epoch: number; source: CreatedSource }> {
  const facts: CreatedFacts = { explicit, sourceDateEpoch: env.SOURCE_DATE_EPOCH, newestInputMtime };
  // git only when it could matter: it is a process per bake.
  if (explicit === undefined && (env.SOURCE_DATE_EPOCH ?? "") === "") facts.gitCommitTime = await (gitTime ?? gitCommitTime(contextDir));
  return pickCreatedEpoch(facts);
}

async function gitCommitTime(contextDir: string): Promise<number | undefined> {
  try {
    const { stdout } = await execFileP("git", ["-C", contextDir, "log", "-1", "--format=%ct"], { timeout: 10_000 });
    const t = stdout.trim();
    return /^\d+$/.test(t) ? Number(t) : undefined;
  } catch {
    return undefined; // not a git checkout, no commits yet, or no git
  }
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

const PLACEHOLDER = `sha256:${"0".repeat(64)}`;

/**
 * One digest over everything a bake's image is made of, known before any
 * layer is written: the base, each own layer's cache key (role, paths, modes,
 * content hashes, mtime, writer format) and the config and annotations the
 * recipe composes (layer digests replaced by a placeholder). Two bakes with
 * the same inputs digest give the same image; a different inputs digest
 * means a different image, which lets an existing tag be refused early.
 *
 * Examples (same base and recipe unless said):
 *   same files, same created time                    → same digest
 *   config/app.json edited                           → differs (config layer key)
 *   created time 1700000000 → 1700000001             → differs (layer keys, config.created)
 *   env GREETING=hi → GREETING=hello                 → differs (config.Env)
 *   version 1.0.0 → 1.0.1                            → differs (annotations), but it is another tag anyway
 */
export function bakeInputsDigest(input: Omit<ComposeInput, "layers">, layers: readonly { role: LayerRole; key: string }[]): string {
  const placeholder: LayerRecord = { descriptor: { mediaType: MEDIA_TYPE.layerGzip, digest: PLACEHOLDER, size: 0 }, diffId: PLACEHOLDER };
  const composed: ComposeInput = { ...input, layers: layers.map((l) => ({ role: l.role, record: placeholder })) };
  return sha256Digest(canonicalBytes({ v: 1, base: input.base.digest, layers, config: composeConfig(composed), annotations: composeAnnotations(composed) }));
}

/** Where a tag's inputs digest is kept (cache namespace "bake-inputs", keyed by the ref's hash). */
interface BakeInputsRecord {
  ref: string;
  digest: string;
  inputs: string;
}

function bakeInputsKey(ref: string): string {
  return sha256Digest(ref).slice("sha256:".length);
}

export async function bake(recipe: BakeRecipe, opts: BakeOptions): Promise<BakeResult> {
  const { store } = opts;
  const progress: ProgressFn = opts.onProgress ?? (() => undefined);
  checkRecipe(recipe);
  const ref = formatRef(recipe.name, recipe.version);
  const compression = recipe.compression ?? "gzip";
  const write: LayerWriteOptions = { compression, threads: opts.threads ?? bakeThreads(opts.env ?? process.env) };

  const env = opts.env ?? process.env;
  // Started now, awaited when needed: git's process and the encoder's compilation run while the base is resolved.
  const gitTime = opts.sourceDateEpoch === undefined && (env.SOURCE_DATE_EPOCH ?? "") === "" ? gitCommitTime(recipe.contextDir) : undefined;
  if (compression === "gzip") loadGzipEncoder().catch(() => undefined);

  progress({ phase: "base", step: "start", detail: recipe.base });
  const base = await resolveBase(recipe.base, { store, contextDir: recipe.contextDir, onProgress: progress, layerWrite: write });
  progress({ phase: "base", step: "end", detail: `${base.name}${base.cached ? " (cached)" : ""}` });
  let allCached = base.cached;
  const runtime = runtimeOfBase(base, opts.today ?? new Date().toISOString().slice(0, 10));
  const warnings = checkRuntimeSupport(runtime, opts.strict ?? false, recipe.base);
  for (const w of warnings) progress({ phase: "warning", detail: w });

  // Every role's files before the created time: outside git, it is their newest mtime.
  const collected: { role: Exclude<LayerRole, "base">; planned: LayerEntry[] }[] = [];
  let newestInputMtime = 0;
  for (const { role, key } of ROLES) {
    const specs: FileEntry[] = recipe[key];
    if (specs.length === 0) continue;
    progress({ phase: "collect", detail: role });
    const { entries, skipped, newestMtime } = await collectFiles(recipe.contextDir, specs, key);
    for (const s of skipped) progress({ phase: "skip", detail: `${s.path}: ${s.reason}` });
    if (entries.length === 0) continue;
    newestInputMtime = Math.max(newestInputMtime, newestMtime);
    collected.push({ role, planned: planLayer(entries) });
  }

  const { epoch, source } = await resolveCreatedEpoch(recipe.contextDir, opts.sourceDateEpoch, env, newestInputMtime, gitTime);
  progress({ phase: "created", detail: `${isoFromEpoch(epoch)} (from ${source})` });

  // The tag check before any layer work. Only a tag whose inputs kiln recorded (baked here, by
  // this kiln) can be judged early; any other existing tag is still checked when it is written.
  const keyed = collected.map((c) => ({ ...c, key: layerCacheKey(c.role, c.planned, epoch, compression) }));
  const inputs = bakeInputsDigest({ recipe, createdEpoch: epoch, base }, keyed.map((k) => ({ role: k.role, key: k.key })));
  const existing = await store.lookupTag(ref);
  if (existing) {
    const rec = await store.cacheGet<BakeInputsRecord>("bake-inputs", bakeInputsKey(ref));
    if (rec && rec.ref === ref && rec.digest === existing.digest && rec.inputs !== inputs) {
      throw tagImmutableError(ref, existing.digest, "and these inputs (files, created time or image settings) differ from the ones it was baked from");
    }
  }

  const own: { role: LayerRole; record: LayerRecord; entries: LayerEntry[] }[] = [];
  for (const { role, planned, key } of keyed) {
    const { record, cached } = await cachedLayer(store, "layers", key, () => buildLayer(store, key, planned, epoch, progress, `layer ${role}`, "building", write));
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
  const tagged = await store.tag(ref, manifestDescriptor);
  const record: BakeInputsRecord = { ref, digest: manifestBlob.digest, inputs };
  await store.cachePut("bake-inputs", bakeInputsKey(ref), record);
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
    unchanged: tagged === "exists",
    threads: write.threads ?? 1,
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

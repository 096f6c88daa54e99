// Pure composition of an image's config and manifest from the recipe, the
// base and the layer records. No I/O, no clock: `created` is an argument.
// Every map is emitted in a fixed order (and serialized with canonicalJson),
// so the same inputs give the same config and manifest digests.

import { ANNOTATION, MEDIA_TYPE, type BakeRecipe, type Descriptor, type LayerRecord, type LayerRole, type OciHistory, type OciImageConfig, type OciManifest } from "./types.js";

export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export interface ComposeBase {
  name: string;
  digest: string;
  config: OciImageConfig;
  layers: LayerRecord[];
}

export interface ComposeInput {
  recipe: Pick<BakeRecipe, "name" | "version" | "workdir" | "env" | "entrypoint" | "cmd" | "user" | "port" | "labels" | "revision" | "patchOf">;
  /** seconds since the epoch */
  createdEpoch: number;
  base: ComposeBase;
  /** kiln's own layers, in order (base layers come from `base`) */
  layers: { role: LayerRole; record: LayerRecord }[];
}

/** 1700000000 → "2023-11-14T22:13:20Z" (RFC 3339, whole seconds, UTC). */
export function isoFromEpoch(epoch: number): string {
  return new Date(epoch * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** ("shop", "1.2.0", 1700000000) → "shop-1.2.0-20231114221320". Slashes in the name become "-". */
export function timestampedName(name: string, version: string, epoch: number): string {
  const stamp = isoFromEpoch(epoch).replace(/[-:TZ]/g, "");
  return `${name.replace(/\//g, "-")}-${version}-${stamp}`;
}

/**
 * Env = the base's entries in the base's order, with the recipe's values
 * replacing same-named ones in place, then the recipe's new names sorted.
 * PATH is added when neither side sets it.
 *
 * base ["PATH=/bin","A=1"], recipe {B:"2", A:"3"} → ["PATH=/bin","A=3","B=2"]
 */
export function mergeEnv(baseEnv: readonly string[], env: Record<string, string>): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const item of baseEnv) {
    const eq = item.indexOf("=");
    const key = eq === -1 ? item : item.slice(0, eq);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(Object.prototype.hasOwnProperty.call(env, key) ? `${key}=${env[key]}` : item);
  }
  for (const key of Object.keys(env).sort()) {
    if (!seen.has(key)) {
      seen.add(key);
      out.push(`${key}=${env[key]}`);
    }
  }
  if (!seen.has("PATH")) out.unshift(`PATH=${DEFAULT_PATH}`);
  return out;
}

function sortedRecord(r: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(r).sort()) out[k] = r[k]!;
  return out;
}

/** Base history when it matches the base layers one to one; otherwise one synthesized entry per base layer. */
function baseHistory(base: ComposeBase): OciHistory[] {
  const h = base.config.history ?? [];
  if (h.filter((e) => !e.empty_layer).length === base.layers.length) return h;
  return base.layers.map((_, i) => ({
    created: base.config.created,
    created_by: `base layer ${i + 1} of ${base.name}`,
  }));
}

export function composeConfig(input: ComposeInput): OciImageConfig {
  const { recipe, base } = input;
  const created = isoFromEpoch(input.createdEpoch);
  const bc = base.config.config ?? {};

  // An image that sets its own entrypoint drops the base's default arguments (Docker semantics).
  const entrypoint = recipe.entrypoint.length > 0 ? recipe.entrypoint : bc.Entrypoint;
  const cmd = recipe.cmd.length > 0 ? recipe.cmd : recipe.entrypoint.length > 0 ? undefined : bc.Cmd;

  const ports: Record<string, Record<string, never>> = { ...(bc.ExposedPorts ?? {}) };
  if (recipe.port > 0) ports[`${recipe.port}/tcp`] = {};
  const labels = { ...(bc.Labels ?? {}), ...recipe.labels };

  return {
    created,
    architecture: base.config.architecture,
    os: base.config.os,
    config: {
      User: recipe.user || bc.User || undefined,
      ExposedPorts: Object.keys(ports).length > 0 ? ports : undefined,
      // KILN_IMAGE_VERSION: the app can report the release it runs without a second copy of the
      // version to keep in step (the hello example said 1.0.0 after 1.0.1 was live). Set last: it is a fact.
      Env: mergeEnv(bc.Env ?? [], { ...recipe.env, KILN_IMAGE_VERSION: recipe.version }),
      Entrypoint: entrypoint && entrypoint.length > 0 ? [...entrypoint] : undefined,
      Cmd: cmd && cmd.length > 0 ? [...cmd] : undefined,
      WorkingDir: recipe.workdir || bc.WorkingDir || undefined,
      Labels: Object.keys(labels).length > 0 ? sortedRecord(labels) : undefined,
      StopSignal: bc.StopSignal,
    },
    rootfs: {
      type: "layers",
      diff_ids: [...base.layers.map((l) => l.diffId), ...input.layers.map((l) => l.record.diffId)],
    },
    history: [
      ...baseHistory(base),
      ...input.layers.map((l) => ({ created, created_by: `kiln bake: ${l.role} layer` })),
    ],
  };
}

export function composeAnnotations(input: ComposeInput): Record<string, string> {
  const { recipe } = input;
  const a: Record<string, string> = {
    [ANNOTATION.version]: recipe.version,
    [ANNOTATION.created]: isoFromEpoch(input.createdEpoch),
    [ANNOTATION.baseName]: input.base.name,
    [ANNOTATION.baseDigest]: input.base.digest,
    [ANNOTATION.title]: recipe.name,
    [ANNOTATION.refName]: `${recipe.name}:${recipe.version}`,
    [ANNOTATION.timestampedName]: timestampedName(recipe.name, recipe.version, input.createdEpoch),
  };
  if (recipe.revision) a[ANNOTATION.revision] = recipe.revision;
  if (recipe.patchOf) a[ANNOTATION.patchOf] = recipe.patchOf;
  return sortedRecord(a);
}

export function composeManifest(config: Descriptor, input: ComposeInput): OciManifest {
  return {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE.manifest,
    config: { mediaType: MEDIA_TYPE.config, digest: config.digest, size: config.size },
    layers: [...input.base.layers, ...input.layers.map((l) => l.record)].map((l) => ({
      mediaType: l.descriptor.mediaType,
      digest: l.descriptor.digest,
      size: l.descriptor.size,
    })),
    annotations: composeAnnotations(input),
  };
}

/** Node's process.arch → OCI architecture. */
export function ociArchitecture(nodeArch: string): string {
  const map: Record<string, string> = { x64: "amd64", arm64: "arm64", arm: "arm", ia32: "386", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64" };
  return map[nodeArch] ?? nodeArch;
}

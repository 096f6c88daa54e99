// kiln.yaml → checked, normalized Spec. Every problem in the file is collected
// (YAML syntax, duplicate keys, schema, cross-field rules) and reported at once.

import { readFileSync, statSync } from "node:fs";
import { dirname, join, posix, resolve } from "node:path";
import { isAlias, isMap, isSeq, LineCounter, parseDocument, visit, type Document } from "yaml";
import { KilnError } from "../errors.js";
import { MAX_MEMORY_BYTES, MIN_MEMORY_BYTES, formatMemory, normalizeResources, parseMemory, type ResourceLimits } from "./resources.js";
import { computeConfigHash } from "./config-hash.js";
import { chooseEnvironment, mergeOverrides, serviceKey } from "./environments.js";
import { closest } from "./suggest.js";
import { parseDuration } from "./duration.js";
import { parseAllowEntry } from "./network-allow.js";
import { keyText, makeLocator, type Locator, type Segment } from "./locate.js";
import { formatPath, problemsFromAjv } from "./problems.js";
import { ENVIRONMENT_KEYS, MAX_DURATION_MS, PATTERNS } from "./schema-constants.js";
import { specSchema } from "./spec-schema.js";
import { specValidator } from "./validator.js";
import type { FileEntry, HookName, ImageBase, LoadedSpec, NotifyEventName, ProviderKind, SecretSourceSpec, Spec, SpecProblem } from "./types.js";

const YAML_HINTS: Record<string, string> = {
  BAD_INDENT: "check the indentation, and that brackets and quotes above are closed",
  TAB_AS_INDENT: "indent with spaces, not tabs",
  MULTIPLE_DOCS: "kiln.yaml holds one document: remove the extra ---",
  BLOCK_AS_IMPLICIT_KEY: 'quote values that contain ": " or " #"',
  MULTILINE_IMPLICIT_KEY: 'quote values that contain ": " or " #"',
  MISSING_CHAR: "a quote or bracket is not closed",
  UNEXPECTED_TOKEN: 'quote values that contain ": " or " #"',
};

export interface ParsedSpec {
  /** the chosen environment's effective kiln.yaml (the file itself when it declares none) */
  spec: Spec;
  /** the file before any environment's overrides: what every environment shares */
  shared: Spec;
  environment?: string;
  environments: string[];
}

/**
 * Check kiln.yaml (every environment's effective file too) and normalize it for `environment`
 * (see chooseEnvironment for the default). An unknown environment is a usage error (thrown).
 */
export function parseSpec(text: string, file: string, environment?: string): ParsedSpec | { errors: SpecProblem[] } {
  const lineCounter = new LineCounter();
  // Duplicate keys are found below, with their path; the yaml library's check would only give a position.
  const doc = parseDocument(text, { lineCounter, uniqueKeys: false, prettyErrors: false });
  const loc = makeLocator(doc, text, lineCounter, file);

  const syntax: SpecProblem[] = doc.errors.map((e) => ({
    where: loc.offset(e.pos[0]),
    path: "",
    message: `YAML: ${e.message.replace(/\s+/g, " ").trim()}`,
    hint: YAML_HINTS[e.code],
  }));
  syntax.push(...unresolvedAliases(doc, loc));
  // After a syntax error the tree is a guess; schema problems found in it would mislead.
  if (syntax.length > 0) return { errors: sortProblems(syntax) };

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    return { errors: [{ where: loc.offset(0), path: "", message: `YAML: ${(e as Error).message}` }] };
  }
  if (data === null || data === undefined) {
    return {
      errors: [
        {
          where: loc.offset(0),
          path: "",
          message: "the file is empty",
          hint: 'start with "name:" and "version:"; "kiln schema" prints every key',
        },
      ],
    };
  }

  const validate = specValidator();
  validate(data);
  const schemaProblems = problemsFromAjv(validate.errors ?? [], data, loc);
  // A rule-specific problem (root user, src outside the project) explains more than
  // the generic one found at the same path by the schema.
  const ruleProblems = [...crossChecks(data, loc), ...environmentRules(data, loc)];
  const ruled = new Set(ruleProblems.map((p) => p.path));
  const problems = [
    ...duplicateKeys(doc, loc),
    ...schemaProblems.filter((p) => !ruled.has(p.path)),
    ...ruleProblems,
  ];
  const effective = new Map<string, Record<string, unknown>>();
  if (isRecord(data) && isRecord(data.environments)) {
    for (const [name, over] of Object.entries(data.environments)) {
      if (!isRecord(over)) continue;
      const r = checkEnvironment(data, name, over, loc);
      effective.set(name, r.merged);
      problems.push(...r.problems.filter((p) => !ruled.has(p.path)));
    }
    problems.push(...distinctListens(effective, loc));
  }
  if (problems.length > 0) return { errors: sortProblems(problems) };
  const d = data as Defaulted & { environments?: Record<string, unknown>; defaultEnvironment?: string };
  const environments = Object.keys(d.environments ?? {});
  const chosen = chooseEnvironment(environments, environment, d.defaultEnvironment);
  const shared = normalize(d);
  return { spec: chosen === undefined ? shared : normalize(effective.get(chosen) as unknown as Defaulted), shared, environment: chosen, environments };
}

// Keys an environment may not override, and why (the generic "unknown key" says less).
const NOT_PER_ENVIRONMENT: Record<string, string> = {
  image: "the image is the same in every environment: what staging tested is byte for byte what production runs",
  name: "an environment is a stage of the same service: the name is shared (the fleet is keyed NAME-ENVIRONMENT)",
  version: "the version names the image, which is the same in every environment",
  volumes: "volumes are part of the release's config hash, which is the same in every environment",
  health: "health checks are part of the release's config hash, which is the same in every environment",
  drainTimeout: "drainTimeout is part of the release's config hash, which is the same in every environment",
  resources: "resources are part of the release's config hash, which is the same in every environment",
  environments: "environments do not nest",
};

function environmentRules(data: unknown, loc: Locator): SpecProblem[] {
  const out: SpecProblem[] = [];
  if (!isRecord(data)) return out;
  const envs = isRecord(data.environments) ? data.environments : undefined;
  for (const [name, over] of Object.entries(envs ?? {})) {
    if (!isRecord(over)) continue;
    for (const key of Object.keys(over)) {
      const why = NOT_PER_ENVIRONMENT[key];
      if (why === undefined) continue;
      const at = ["environments", name, key];
      out.push({
        where: loc.key(at),
        path: formatPath(at),
        message: `"${key}" cannot differ between environments: ${why}`,
        hint: `an environment overrides only ${ENVIRONMENT_KEYS.join(", ")}; move ${key} to the top level of kiln.yaml`,
      });
    }
  }
  if (typeof data.defaultEnvironment === "string" && !(envs && data.defaultEnvironment in envs)) {
    const near = closest(data.defaultEnvironment, Object.keys(envs ?? {}));
    out.push({
      where: loc.value(["defaultEnvironment"]),
      path: "defaultEnvironment",
      message: envs ? `"${data.defaultEnvironment}" is not one of the environments (${Object.keys(envs).join(", ")})` : "defaultEnvironment without environments",
      hint: near ? `did you mean "${near}"?` : envs ? "name one of the environments" : "declare `environments:` or remove defaultEnvironment",
    });
  }
  return out;
}

/**
 * An environment's effective file (its overrides merged over the defaulted top level) checked with
 * the same schema and rules; only the problems its own overrides cause are reported, at their place
 * under environments.NAME (the others are the top level's and reported there once).
 */
function checkEnvironment(data: Record<string, unknown>, name: string, over: Record<string, unknown>, loc: Locator): { merged: Record<string, unknown>; problems: SpecProblem[] } {
  const base: Record<string, unknown> = { ...data };
  delete base.environments;
  delete base.defaultEnvironment;
  const allowed = Object.fromEntries(Object.entries(over).filter(([k]) => (ENVIRONMENT_KEYS as readonly string[]).includes(k)));
  const merged = mergeOverrides(base, allowed);
  // A secret named here replaces the top level's whole: merging two sources would name both.
  if (isRecord(allowed.secrets) && isRecord(base.secrets)) merged.secrets = { ...base.secrets, ...structuredClone(allowed.secrets) };
  const prefix: Segment[] = ["environments", name];
  const at: Locator = {
    key: (p) => loc.key([...prefix, ...p]),
    value: (p) => loc.value([...prefix, ...p]),
    source: (p) => loc.source([...prefix, ...p]),
    offset: loc.offset,
  };
  const validate = specValidator();
  validate(merged);
  const written = new Set<string>();
  const walk = (v: unknown, path: Segment[]) => {
    if (path.length > 0) written.add(formatPath(path));
    if (isRecord(v)) for (const [k, c] of Object.entries(v)) walk(c, [...path, k]);
    else if (Array.isArray(v)) v.forEach((c, i) => walk(c, [...path, i]));
  };
  walk(allowed, []);
  const problems = [...problemsFromAjv(validate.errors ?? [], merged, at), ...crossChecks(merged, at)]
    .filter((p) => written.has(p.path))
    .map((p) => ({ ...p, path: `environments.${name}.${p.path}` }));
  return { merged, problems };
}

/** Two environments on one address would fight over it: each needs its own listen. */
function distinctListens(effective: Map<string, Record<string, unknown>>, loc: Locator): SpecProblem[] {
  const seen = new Map<string, string>();
  const out: SpecProblem[] = [];
  for (const [name, d] of effective) {
    const listen = d.listen;
    if (typeof listen !== "string") continue;
    const other = seen.get(listen);
    if (other === undefined) {
      seen.set(listen, name);
      continue;
    }
    const at = ["environments", name, "listen"];
    out.push({
      where: loc.key(at),
      path: formatPath(at),
      message: `environments ${other} and ${name} both listen on ${listen}`,
      hint: `give environments.${name} its own listen address (e.g. another port)`,
    });
  }
  return out;
}

/** kiln.yaml at `file`, for `environment` (default: see chooseEnvironment; KILN_ENV is read by the CLI). */
export function loadSpec(file: string, environment?: string): LoadedSpec {
  let path = resolve(file);
  let shown = file;
  let text: string;
  try {
    if (statSync(path).isDirectory()) {
      path = join(path, "kiln.yaml");
      shown = join(file, "kiln.yaml");
    }
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new KilnError("KILN_E_SPEC", `${shown}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`, {
      cause: e,
      hint: (e as NodeJS.ErrnoException).code === "ENOENT"
        ? "run kiln in the directory that holds kiln.yaml, or pass its path with -f; for an app without one, `kiln init` writes it"
        : "run kiln in the directory that holds kiln.yaml, or pass its path with -f",
    });
  }
  const parsed = parseSpec(text, shown, environment);
  if ("errors" in parsed) {
    const n = parsed.errors.length;
    throw new KilnError("KILN_E_SPEC", `${shown}: ${n} ${n === 1 ? "problem" : "problems"}`, {
      details: parsed.errors,
    });
  }
  return {
    spec: parsed.spec,
    file: path,
    dir: dirname(path),
    configHash: computeConfigHash(parsed.shared),
    environment: parsed.environment,
    environments: parsed.environments,
    service: serviceKey(parsed.spec.name, parsed.environment),
  };
}

/**
 * A base whose /usr/local/bin/node is kiln's Node runtime, whichever binary it
 * came from: "node", "node@24", "node@file:…" → true; "oci:…" → false.
 */
export function isNodeBase(base: string): boolean {
  return base === "node" || base.startsWith("node@");
}

/** "oci:./base:1.2" → { kind: "oci", path: "./base", tag: "1.2" }; paths stay relative to kiln.yaml. */
export function parseImageBase(base: string): ImageBase {
  if (isNodeBase(base)) return { kind: "node" };
  if (base.startsWith("docker-archive:")) return { kind: "docker-archive", path: base.slice("docker-archive:".length) };
  if (base.startsWith("oci:")) {
    const rest = base.slice("oci:".length);
    // A tag is the part after the last ":" only if it cannot be part of a path.
    const m = /^(.+):([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$/.exec(rest);
    return m ? { kind: "oci", path: m[1]!, tag: m[2]! } : { kind: "oci", path: rest };
  }
  throw new KilnError("KILN_E_SPEC", `invalid image base ${JSON.stringify(base)}`, {
    hint: 'use "node", "oci:PATH[:TAG]" or "docker-archive:PATH"',
  });
}

function sortProblems(ps: SpecProblem[]): SpecProblem[] {
  const pos = (w: string) => {
    const m = /:(\d+):(\d+)$/.exec(w);
    return m ? Number(m[1]) * 1e6 + Number(m[2]) : 0;
  };
  return [...ps].sort((a, b) => pos(a.where) - pos(b.where));
}

function unresolvedAliases(doc: Document, loc: Locator): SpecProblem[] {
  const out: SpecProblem[] = [];
  visit(doc, {
    Alias(_, node) {
      if (node.resolve(doc) === undefined) {
        out.push({
          where: loc.offset(node.range?.[0] ?? 0),
          path: "",
          message: `YAML: unknown alias "*${node.source}"`,
          hint: `define the anchor "&${node.source}" before using it`,
        });
      }
    },
  });
  return out;
}

function duplicateKeys(doc: Document, loc: Locator): SpecProblem[] {
  const out: SpecProblem[] = [];
  const walk = (node: unknown, path: Segment[]) => {
    if (isAlias(node)) return; // its target is walked where it is defined
    if (isMap(node)) {
      const seen = new Set<string>();
      for (const pair of node.items) {
        const k = keyText(pair.key);
        if (seen.has(k)) {
          const at = [...path, k];
          out.push({
            where: loc.offset((pair.key as { range?: [number, number, number] }).range?.[0] ?? 0),
            path: formatPath(at),
            message: `duplicate key "${k}"`,
            hint: "each key may appear once in a mapping; merge the two entries",
          });
        }
        seen.add(k);
        walk(pair.value, [...path, k]);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => walk(item, [...path, i]));
    }
  };
  walk(doc.contents, []);
  return out;
}

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

/** "./a/b/" → "a/b"; null when the path is absolute or climbs out of the kiln.yaml directory. */
function relativeInside(src: string): string | null {
  if (posix.isAbsolute(src) || /^[A-Za-z]:[\\/]/.test(src)) return null;
  const n = posix.normalize(src).replace(/\/+$/, "");
  if (n === ".." || n.startsWith("../")) return null;
  return n === "" ? "." : n;
}

function normalizeAbsolute(p: string): string {
  const n = posix.normalize(p);
  return n.length > 1 ? n.replace(/\/+$/, "") : n;
}

// Rules the schema cannot express. They run on the defaulted data and check types
// themselves, because the data may also have schema problems.
function crossChecks(data: unknown, loc: Locator): SpecProblem[] {
  const out: SpecProblem[] = [];
  if (!isRecord(data)) return out;
  const image = isRecord(data.image) ? data.image : {};

  if (typeof image.user === "string") {
    const uid = image.user.split(":")[0]!;
    if (uid === "root" || (/^[0-9]+$/.test(uid) && Number(uid) === 0)) {
      const at = ["image", "user"];
      out.push({
        where: loc.value(at),
        path: formatPath(at),
        message: `the app may not run as root, got ${JSON.stringify(image.user)}`,
        hint: 'use an unprivileged numeric user, e.g. user: "1000:1000"; write only to declared volumes',
      });
    }
  }

  for (const layer of ["dependencies", "files", "config"] as const) {
    const entries = image[layer];
    if (!Array.isArray(entries)) continue;
    entries.forEach((entry: unknown, i) => {
      const isObj = isRecord(entry);
      const src = isObj ? entry.src : entry;
      if (typeof src !== "string" || src === "") return;
      if (relativeInside(src) === null) {
        const at: Segment[] = isObj ? ["image", layer, i, "src"] : ["image", layer, i];
        out.push({
          where: loc.value(at),
          path: formatPath(at),
          message: posix.isAbsolute(src)
            ? `file source ${JSON.stringify(src)} is an absolute path`
            : `file source ${JSON.stringify(src)} is outside the kiln.yaml directory`,
          hint: "sources are relative to the directory of kiln.yaml and stay inside it: copy the file into the project, or move kiln.yaml up",
        });
      }
    });
  }

  if (typeof data.listen === "string") {
    const port = Number(/:(\d+)$/.exec(data.listen)?.[1]);
    if (Number.isInteger(port) && (port < 1 || port > 65535)) {
      out.push({
        where: loc.value(["listen"]),
        path: "listen",
        message: `expected a port 1–65535 in "host:port", got ${port}`,
      });
    }
  }

  if (Array.isArray(data.volumes)) {
    const names = new Map<string, number>();
    const paths = new Map<string, number>();
    data.volumes.forEach((v: unknown, i) => {
      if (!isRecord(v)) return;
      if (typeof v.name === "string") {
        const first = names.get(v.name);
        if (first !== undefined) {
          const at = ["volumes", i, "name"];
          out.push({
            where: loc.value(at),
            path: formatPath(at),
            message: `duplicate volume name "${v.name}" (also volumes[${first}])`,
            hint: "give each volume its own name",
          });
        } else names.set(v.name, i);
      }
      if (typeof v.path === "string" && v.path.startsWith("/")) {
        const p = normalizeAbsolute(v.path);
        const first = paths.get(p);
        if (first !== undefined) {
          const at = ["volumes", i, "path"];
          out.push({
            where: loc.value(at),
            path: formatPath(at),
            message: `duplicate volume path "${p}" (also volumes[${first}])`,
            hint: "mount each volume at its own path",
          });
        } else paths.set(p, i);
      }
    });
  }

  out.push(...durationBounds(data, loc), ...reservedEnv(data, loc), ...forbiddenVolumes(data, loc), ...secretRules(data, loc), ...resourceRules(data, loc), ...networkRules(data, loc));

  const strategy = isRecord(data.strategy) ? data.strategy : {};
  const rolling = isRecord(strategy.rolling) ? strategy.rolling : {};
  const min = rolling.minHealthyPercent;
  const max = rolling.maxHealthyPercent;
  // Only when both are in range; otherwise the schema has already said what is wrong.
  const inRange = (v: unknown, lo: number, hi: number): v is number => Number.isInteger(v) && (v as number) >= lo && (v as number) <= hi;
  if (inRange(min, 0, 100) && inRange(max, 100, 200) && max - min > 100) {
    // Point at whichever one the user wrote (the other is a default); with both written, at max.
    const written = loc.source(["strategy", "rolling", "maxHealthyPercent"]) !== undefined ? "maxHealthyPercent" : "minHealthyPercent";
    const at = ["strategy", "rolling", written];
    out.push({
      where: loc.value(at),
      path: formatPath(at),
      message: `maxHealthyPercent − minHealthyPercent must be at most 100, got ${max} − ${min} = ${max - min}`,
      hint: `lower maxHealthyPercent to ${min + 100} or raise minHealthyPercent to ${max - 100}`,
    });
  }
  return out;
}

// The data after validation and defaults: the schema's shape with every optional key present.
interface Defaulted {
  apiVersion: "kiln/v1";
  name: string;
  version: string;
  image: {
    base: string;
    dependencies: RawFileEntry[];
    files: RawFileEntry[];
    config: RawFileEntry[];
    workdir: string;
    env: Record<string, string>;
    entrypoint: string[];
    cmd: string[];
    user: string;
    port: number;
    labels: Record<string, string>;
    compression: "gzip" | "none";
  };
  instances: number;
  listen: string;
  provider: ProviderKind;
  router: "builtin" | "haproxy";
  edge: {
    instanceHeaders: boolean;
    maxBodyBytes: number;
    headerTimeout: string | number;
    requestTimeout: string | number;
    keepAliveTimeout: string | number;
    connectTimeout: string | number;
    upstreamTimeout: string | number;
    tunnelIdleTimeout: string | number;
    tls?: { listen: string; certificates: { cert: string; key: string }[]; redirectHttp: boolean };
    metricsListen?: string;
    hosts: string[];
    pathPrefix?: string;
  };
  swarm: { rollouts: "kiln" | "native"; manager?: string; registry?: string; insecureRegistry: boolean; constraints: string[]; spread: boolean };
  controller: { metricsListen?: string; dashboardListen?: string; dashboardReadOnly?: boolean };
  env: Record<string, string>;
  volumes: { name: string; path: string }[];
  drainTimeout: string | number;
  health: {
    path: string;
    interval: string | number;
    timeout: string | number;
    healthyThreshold: number;
    unhealthyThreshold: number;
    grace: string | number;
  };
  strategy: {
    type: "rolling" | "blue-green" | "canary";
    rolling: {
      minHealthyPercent: number;
      maxHealthyPercent: number;
      instanceWarmup: string | number;
      deadline: string | number;
      autoRollback: boolean;
      checkpoints: number[];
      checkpointDelay?: string | number;
      skipMatching: boolean;
      bakeTime: string | number;
    };
    blueGreen: {
      keepPreviousFor: string | number;
      promotion: "auto" | "manual";
      deadline: string | number;
      autoRollback: boolean;
      autoPromoteAfter?: string | number;
      promotionDeadline?: string | number;
      prePromotionChecks: { path: string; status?: number }[];
      guardWindow: string | number;
      previewListen?: string;
    };
    canary: {
      steps: ({ setWeight: number } | { pause: string | number })[];
      analysis: { maxErrorRate: number; maxP99Ms?: number; maxP99Ratio: number; minRequests: number; window: string | number };
      instanceWarmup: string | number;
      deadline: string | number;
      autoRollback: boolean;
      guardWindow: string | number;
    };
    maxQuarantined: number;
  };
  state?: string;
  docker: { network: "bridge" | "host" };
  network: { mode: "private" | "host"; allow: string[] };
  promotion: { requireDrill: boolean; soak?: string | number };
  hooks: { [K in HookName]?: string | string[] } & { timeout: string | number };
  notify: {
    webhooks: { url: string; secretEnv?: string; format?: "json" | "slack"; events?: NotifyEventName[]; timeout?: string | number; attempts?: number; backoff?: string | number }[];
    queueSize: number;
  };
  policy: { signedBy: string[]; requireSbom: boolean; runtimeSupported: boolean; maxImageAgeDays?: number };
  secrets: Record<string, { fromEnv?: string; fromFile?: string; fromCommand?: string[]; timeout: string | number }>;
  resources?: { memory?: string | number; pids?: number; cpu?: number };
}
type RawFileEntry = string | { src: string; dest: string; mode?: string };

function optionalMs<K extends string>(key: K, v: string | number | undefined): Partial<Record<K, number>> {
  return v === undefined ? {} : ({ [key]: parseDuration(v) } as Partial<Record<K, number>>);
}

function normalize(d: Defaulted): Spec {
  const workdir = normalizeAbsolute(d.image.workdir);
  const entry = (e: RawFileEntry): FileEntry => {
    if (typeof e === "string") {
      const src = relativeInside(e)!;
      return { src, dest: src === "." ? workdir : posix.join(workdir, src) };
    }
    const out: FileEntry = { src: relativeInside(e.src)!, dest: normalizeAbsolute(e.dest) };
    if (e.mode !== undefined) out.mode = e.mode;
    return out;
  };
  const { health, strategy } = d;
  return {
    apiVersion: d.apiVersion,
    name: d.name,
    version: d.version,
    image: {
      base: d.image.base,
      dependencies: d.image.dependencies.map(entry),
      files: d.image.files.map(entry),
      config: d.image.config.map(entry),
      workdir,
      env: { ...d.image.env },
      entrypoint: [...d.image.entrypoint],
      cmd: [...d.image.cmd],
      user: d.image.user,
      port: d.image.port,
      labels: { ...d.image.labels },
      compression: d.image.compression,
    },
    instances: d.instances,
    listen: d.listen,
    provider: d.provider,
    router: d.router,
    edge: {
      instanceHeaders: d.edge.instanceHeaders,
      maxBodyBytes: d.edge.maxBodyBytes,
      headerTimeout: parseDuration(d.edge.headerTimeout),
      requestTimeout: parseDuration(d.edge.requestTimeout),
      keepAliveTimeout: parseDuration(d.edge.keepAliveTimeout),
      connectTimeout: parseDuration(d.edge.connectTimeout),
      upstreamTimeout: parseDuration(d.edge.upstreamTimeout),
      tunnelIdleTimeout: parseDuration(d.edge.tunnelIdleTimeout),
      ...(d.edge.tls !== undefined
        ? { tls: { listen: d.edge.tls.listen, certificates: d.edge.tls.certificates.map((c) => ({ cert: c.cert, key: c.key })), redirectHttp: d.edge.tls.redirectHttp } }
        : {}),
      ...(d.edge.metricsListen !== undefined ? { metricsListen: d.edge.metricsListen } : {}),
      hosts: [...d.edge.hosts],
      ...(d.edge.pathPrefix !== undefined ? { pathPrefix: d.edge.pathPrefix } : {}),
    },
    swarm: {
      rollouts: d.swarm.rollouts,
      ...(d.swarm.manager === undefined ? {} : { manager: d.swarm.manager }),
      ...(d.swarm.registry === undefined ? {} : { registry: d.swarm.registry }),
      insecureRegistry: d.swarm.insecureRegistry,
      constraints: d.swarm.constraints.map((c) => c.replace(/\s+/g, "")),
      spread: d.swarm.spread,
    },
    env: { ...d.env },
    volumes: d.volumes.map((v) => ({ name: v.name, path: normalizeAbsolute(v.path) })),
    drainTimeout: parseDuration(d.drainTimeout),
    secrets: Object.fromEntries(
      Object.entries(d.secrets).map(([k, v]): [string, SecretSourceSpec] => [
        k,
        v.fromEnv !== undefined ? { kind: "env", name: v.fromEnv } : v.fromFile !== undefined ? { kind: "file", path: v.fromFile } : { kind: "command", argv: [...(v.fromCommand ?? [])], timeoutMs: parseDuration(v.timeout) },
      ]),
    ),
    controller: {
      ...(d.controller.metricsListen !== undefined ? { metricsListen: d.controller.metricsListen } : {}),
      ...(d.controller.dashboardListen !== undefined ? { dashboardListen: d.controller.dashboardListen } : {}),
      ...(d.controller.dashboardReadOnly ? { dashboardReadOnly: true } : {}),
    },
    policy: {
      signedBy: [...new Set(d.policy.signedBy.map((f) => f.toUpperCase()))],
      requireSbom: d.policy.requireSbom,
      runtimeSupported: d.policy.runtimeSupported,
      ...(d.policy.maxImageAgeDays === undefined ? {} : { maxImageAgeDays: d.policy.maxImageAgeDays }),
    },
    health: {
      path: health.path,
      interval: parseDuration(health.interval),
      timeout: parseDuration(health.timeout),
      healthyThreshold: health.healthyThreshold,
      unhealthyThreshold: health.unhealthyThreshold,
      grace: parseDuration(health.grace),
    },
    strategy: {
      type: strategy.type,
      rolling: {
        minHealthyPercent: strategy.rolling.minHealthyPercent,
        maxHealthyPercent: strategy.rolling.maxHealthyPercent,
        instanceWarmup: parseDuration(strategy.rolling.instanceWarmup),
        deadline: parseDuration(strategy.rolling.deadline),
        autoRollback: strategy.rolling.autoRollback,
        checkpoints: [...new Set(strategy.rolling.checkpoints)].sort((a, b) => a - b),
        ...optionalMs("checkpointDelay", strategy.rolling.checkpointDelay),
        skipMatching: strategy.rolling.skipMatching,
        bakeTime: parseDuration(strategy.rolling.bakeTime),
      },
      blueGreen: {
        keepPreviousFor: parseDuration(strategy.blueGreen.keepPreviousFor),
        promotion: strategy.blueGreen.promotion,
        deadline: parseDuration(strategy.blueGreen.deadline),
        autoRollback: strategy.blueGreen.autoRollback,
        ...optionalMs("autoPromoteAfter", strategy.blueGreen.autoPromoteAfter),
        ...optionalMs("promotionDeadline", strategy.blueGreen.promotionDeadline),
        prePromotionChecks: strategy.blueGreen.prePromotionChecks.map((c) => ({ ...c })),
        guardWindow: parseDuration(strategy.blueGreen.guardWindow),
        ...(strategy.blueGreen.previewListen !== undefined ? { previewListen: strategy.blueGreen.previewListen } : {}),
      },
      canary: {
        steps: strategy.canary.steps.map((st) =>
          "setWeight" in st ? { setWeight: st.setWeight } : { pause: st.pause === "manual" ? ("manual" as const) : parseDuration(st.pause) },
        ),
        analysis: {
          maxErrorRate: strategy.canary.analysis.maxErrorRate,
          ...(strategy.canary.analysis.maxP99Ms !== undefined ? { maxP99Ms: strategy.canary.analysis.maxP99Ms } : {}),
          maxP99Ratio: strategy.canary.analysis.maxP99Ratio,
          minRequests: strategy.canary.analysis.minRequests,
          window: parseDuration(strategy.canary.analysis.window),
        },
        instanceWarmup: parseDuration(strategy.canary.instanceWarmup),
        deadline: parseDuration(strategy.canary.deadline),
        autoRollback: strategy.canary.autoRollback,
        guardWindow: parseDuration(strategy.canary.guardWindow),
      },
      maxQuarantined: strategy.maxQuarantined,
    },
    ...(d.state !== undefined ? { state: d.state } : {}),
    docker: { network: d.docker.network },
    network: { mode: d.network.mode, allow: [...new Set(d.network.allow.map((e) => e.trim()))] },
    promotion: { requireDrill: d.promotion.requireDrill, ...optionalMs("soak", d.promotion.soak) },
    hooks: {
      ...Object.fromEntries((["pre-deploy", "post-deploy", "pre-promotion", "post-rollback"] as const).filter((h) => d.hooks[h] !== undefined).map((h) => [h, d.hooks[h]])),
      timeout: parseDuration(d.hooks.timeout),
    },
    notify: {
      webhooks: d.notify.webhooks.map((w) => ({
        url: w.url,
        ...(w.secretEnv !== undefined ? { secretEnv: w.secretEnv } : {}),
        format: w.format ?? "json",
        events: [...(w.events ?? [])],
        timeout: parseDuration(w.timeout ?? "10s"),
        attempts: w.attempts ?? 6,
        backoff: parseDuration(w.backoff ?? "2s"),
      })),
      queueSize: d.notify.queueSize,
    },
    ...withResources(normalizeResources(d.resources)),
  };
}

function withResources(r: ResourceLimits | undefined): { resources?: ResourceLimits } {
  return r ? { resources: r } : {};
}

/** Paths of every duration in the schema ("*" for list items), found by the duration pattern. */
function durationPaths(node: unknown, path: Segment[] = [], out: Segment[][] = []): Segment[][] {
  if (!isRecord(node)) return out;
  if (node.pattern === PATTERNS.duration) {
    out.push(path);
    return out;
  }
  if (isRecord(node.properties)) for (const [k, v] of Object.entries(node.properties)) durationPaths(v, [...path, k], out);
  if (node.items !== undefined) durationPaths(node.items, [...path, "*"], out);
  if (Array.isArray(node.anyOf)) for (const branch of node.anyOf) durationPaths(branch, path, out);
  return out;
}
let durationPathCache: Segment[][] | undefined;

/** Every value at `path` in data, with its concrete path ("*" expanded over lists). */
function valuesAt(data: unknown, path: Segment[], at: Segment[] = []): { at: Segment[]; value: unknown }[] {
  if (path.length === 0) return [{ at, value: data }];
  const [head, ...rest] = path;
  if (head === "*") return Array.isArray(data) ? data.flatMap((v, i) => valuesAt(v, rest, [...at, i])) : [];
  return isRecord(data) && Object.hasOwn(data, head as string) ? valuesAt(data[head as string], rest, [...at, head!]) : [];
}

/** A duration string past Node's timer range would fire at once: refuse it where it is written. */
function durationBounds(data: unknown, loc: Locator): SpecProblem[] {
  durationPathCache ??= durationPaths(specSchema());
  const out: SpecProblem[] = [];
  const re = new RegExp(PATTERNS.duration);
  for (const p of durationPathCache) {
    for (const { at, value } of valuesAt(data, p)) {
      if (typeof value !== "string" || !re.test(value.trim())) continue;
      if (parseDuration(value) <= MAX_DURATION_MS) continue;
      out.push({
        where: loc.value(at),
        path: formatPath(at),
        message: `duration ${JSON.stringify(value)} is longer than the maximum of 24 days (${MAX_DURATION_MS} ms)`,
        hint: "use a shorter duration; longer timers cannot be kept",
      });
    }
  }
  return out;
}

/** Names kiln sets itself at launch, or uses for its own plumbing. */
export const RESERVED_ENV_NAMES = ["PORT"] as const;
export const RESERVED_ENV_PREFIX = "_kiln_";

function reservedEnv(data: Record<string, unknown>, loc: Locator): SpecProblem[] {
  if (!isRecord(data.env)) return [];
  const out: SpecProblem[] = [];
  for (const k of Object.keys(data.env)) {
    const reserved = (RESERVED_ENV_NAMES as readonly string[]).includes(k);
    if (!reserved && !k.startsWith(RESERVED_ENV_PREFIX)) continue;
    const at = ["env", k];
    out.push({
      where: loc.key(at),
      path: formatPath(at),
      message: reserved ? `env ${k} is set by kiln at launch (the port the instance listens on)` : `env names starting with ${RESERVED_ENV_PREFIX} are reserved for kiln`,
      hint: reserved ? `read ${k} in the app instead of setting it; for the container port use image.port` : "rename the variable",
    });
  }
  return out;
}

/** Paths the sandbox provides itself (or the host's kernel interfaces): no volume may be mounted there. */
export const FORBIDDEN_VOLUME_ROOTS = ["/proc", "/sys", "/dev", "/tmp"] as const;

function forbiddenVolumes(data: Record<string, unknown>, loc: Locator): SpecProblem[] {
  if (!Array.isArray(data.volumes)) return [];
  const out: SpecProblem[] = [];
  data.volumes.forEach((v: unknown, i) => {
    if (!isRecord(v) || typeof v.path !== "string" || !v.path.startsWith("/")) return;
    const p = normalizeAbsolute(v.path);
    const root = FORBIDDEN_VOLUME_ROOTS.find((r) => p === r || p.startsWith(r + "/"));
    if (p !== "/" && root === undefined) return;
    const at = ["volumes", i, "path"];
    out.push({
      where: loc.value(at),
      path: formatPath(at),
      message: p === "/" ? `a volume cannot be mounted at "/"` : `volume path ${JSON.stringify(v.path)} is inside ${root}, which the sandbox provides itself`,
      hint: "mount the volume at a path of its own, e.g. /data",
    });
  });
  return out;
}

const SECRET_SOURCES = ["fromEnv", "fromFile", "fromCommand"] as const;

/**
 * Each secret names exactly one source, and its name is not also a declared env (which one
 * would win is not something to guess) nor one kiln sets itself.
 *
 *   { DB: { fromEnv: PGPASS } }                   → ok
 *   { DB: {} } / { DB: { fromEnv: A, fromFile: b } } → "give exactly one of fromEnv, fromFile, fromCommand"
 *   env { DB: x } and secrets { DB: … }           → "DB is declared in env too"
 *   { PORT: … } / { _kiln_x: … }                  → reserved, as for env
 */
function secretRules(data: Record<string, unknown>, loc: Locator): SpecProblem[] {
  if (!isRecord(data.secrets)) return [];
  const out: SpecProblem[] = [];
  const env = isRecord(data.env) ? data.env : {};
  for (const [k, v] of Object.entries(data.secrets)) {
    const at = ["secrets", k];
    if (isRecord(v)) {
      const given = SECRET_SOURCES.filter((s) => v[s] !== undefined);
      if (given.length !== 1)
        out.push({
          where: loc.key(at),
          path: formatPath(at),
          message: given.length === 0 ? `secret ${k} names no source` : `secret ${k} names ${given.length} sources (${given.join(", ")})`,
          hint: `give exactly one of ${SECRET_SOURCES.join(", ")}, e.g. ${k}: { fromEnv: ${k} }`,
        });
    }
    if (k in env)
      out.push({ where: loc.key(at), path: formatPath(at), message: `${k} is declared in env too`, hint: `keep it in secrets only (its value then never reaches state), or rename one of them` });
    const reserved = (RESERVED_ENV_NAMES as readonly string[]).includes(k) || k === "KILN_INSTANCE_ID";
    if (reserved || k.startsWith(RESERVED_ENV_PREFIX))
      out.push({ where: loc.key(at), path: formatPath(at), message: reserved ? `${k} is set by kiln at launch` : `names starting with ${RESERVED_ENV_PREFIX} are reserved for kiln`, hint: "rename the secret" });
  }
  return out;
}

/**
 * A memory string that matches the pattern may still be out of bounds (the schema bounds only
 * the numeric form).
 *
 *   { memory: "256Mi" } → ok        { memory: "1Mi" } → "below the 4Mi minimum"
 *   { memory: "2Ti" } → "above the 1Ti maximum"
 */
function resourceRules(data: Record<string, unknown>, loc: Locator): SpecProblem[] {
  if (!isRecord(data.resources) || typeof data.resources.memory !== "string") return [];
  const bytes = parseMemory(data.resources.memory);
  if (bytes === undefined) return []; // the schema's pattern says why
  const at = ["resources", "memory"];
  if (bytes < MIN_MEMORY_BYTES)
    return [{ where: loc.value(at), path: formatPath(at), message: `memory ${data.resources.memory} is below the ${formatMemory(MIN_MEMORY_BYTES)} minimum`, hint: 'give at least "4Mi"; a Node app needs about "64Mi" to start' }];
  if (bytes > MAX_MEMORY_BYTES)
    return [{ where: loc.value(at), path: formatPath(at), message: `memory ${data.resources.memory} is above the ${formatMemory(MAX_MEMORY_BYTES)} maximum`, hint: "give a size this machine has, e.g. \"2Gi\"" }];
  return [];
}

/**
 * Each `network.allow` entry names a host loopback port (parseAllowEntry's table).
 *
 *   ["127.0.0.1:5432"]         → ok
 *   ["db.internal:5432"]       → "only the host's loopback (127.0.0.1) can be allowed"
 *   ["localhost:5432"]         → "name the loopback as 127.0.0.1"
 */
function networkRules(data: Record<string, unknown>, loc: Locator): SpecProblem[] {
  if (!isRecord(data.network) || !Array.isArray(data.network.allow)) return [];
  const out: SpecProblem[] = [];
  data.network.allow.forEach((e: unknown, i) => {
    if (typeof e !== "string") return;
    const r = parseAllowEntry(e);
    if (r.ok) return;
    const at = ["network", "allow", i];
    out.push({ where: loc.value(at), path: formatPath(at), message: r.reason, hint: r.hint });
  });
  return out;
}

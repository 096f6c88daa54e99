// After a bake: gather the SBOM's input from what the bake built (the base,
// its inventory, the dependencies layer's lockfile, the app and config files
// with their hashes), build the document (sbom.ts) and store it as an artifact
// referring to the image (referrers.ts). Reading it back is readImageSbom().

import { readFile } from "node:fs/promises";
import { KilnError } from "../errors.js";
import type { BaseImage } from "./base-image.js";
import { baseInventory } from "./base-inventory.js";
import type { LayerEntry } from "./layer.js";
import { readReferrerDocument, attachArtifact } from "./referrers.js";
import { buildSbom, parseNpmLockfile, SBOM_MEDIA_TYPE, summarizeSbom, type SbomFile, type SbomInput, type SbomSummary } from "./sbom.js";
import type { Store } from "./store.js";
import { ANNOTATION, type Descriptor, type LayerRole } from "./types.js";

export interface SbomBakeInput {
  image: SbomInput["image"];
  manifest: Descriptor;
  base: BaseImage;
  /** kiln's own layers with their planned entries */
  layers: { role: LayerRole; entries: readonly LayerEntry[] }[];
}

export interface SbomWritten {
  /** the artifact manifest's digest */
  digest: string;
  /** the SBOM document's digest */
  documentDigest: string;
  summary: SbomSummary;
}

let toolVersion: string | undefined;

export async function kilnVersion(): Promise<string> {
  if (toolVersion === undefined) {
    try {
      // dist/src/image/sbom-write.js → the package root
      const pkg = JSON.parse(await readFile(new URL("../../../package.json", import.meta.url), "utf8")) as { version?: string };
      toolVersion = pkg.version ?? "0.0.0";
    } catch {
      toolVersion = "0.0.0";
    }
  }
  return toolVersion;
}

async function entryText(e: LayerEntry): Promise<string | undefined> {
  if (e.file?.data) return Buffer.from(e.file.data).toString("utf8");
  if (e.file?.hostPath) return readFile(e.file.hostPath, "utf8").catch(() => undefined);
  return undefined;
}

/**
 * The npm lockfile describing the dependencies layer: npm's hidden lockfile
 * (node_modules/.package-lock.json, written by `npm ci`, exactly what is
 * installed), else a package-lock.json in the dependencies or app layer.
 */
export function pickLockfile(layers: SbomBakeInput["layers"]): LayerEntry | undefined {
  const files = (role: LayerRole) => layers.filter((l) => l.role === role).flatMap((l) => l.entries).filter((e) => e.kind === "file");
  const byDepth = (a: LayerEntry, b: LayerEntry) => a.path.split("/").length - b.path.split("/").length || (a.path < b.path ? -1 : 1);
  const hidden = files("dependencies").filter((e) => /(^|\/)node_modules\/\.package-lock\.json$/.test(e.path)).sort(byDepth);
  if (hidden[0]) return hidden[0];
  const lock = [...files("dependencies"), ...files("app")].filter((e) => /(^|\/)package-lock\.json$/.test(e.path) && !e.path.includes("node_modules/")).sort(byDepth);
  return lock[0];
}

export async function sbomInput(store: Store, input: SbomBakeInput): Promise<SbomInput> {
  const inv = await baseInventory(store, input.base);
  const lock = pickLockfile(input.layers);
  const lockText = lock ? await entryText(lock) : undefined;
  const files: SbomFile[] = [];
  for (const l of input.layers) {
    if (l.role !== "app" && l.role !== "config") continue;
    for (const e of l.entries) if (e.kind === "file" && e.file) files.push({ path: `/${e.path}`, sha256: e.file.sha256, size: e.file.size, role: l.role });
  }
  const out: SbomInput = {
    tool: { name: "kiln", version: await kilnVersion() },
    image: input.image,
    base: { name: input.base.name, digest: input.base.digest, packages: inv.packages, ...(inv.os ? { os: inv.os } : {}) },
    npm: lockText === undefined ? [] : parseNpmLockfile(lockText),
    files: files.sort((a, b) => (a.path < b.path ? -1 : 1)),
  };
  if (input.base.runtime) out.runtime = input.base.runtime;
  if (lock) out.npmLockfile = `/${lock.path}`;
  return out;
}

export async function writeImageSbom(store: Store, input: SbomBakeInput): Promise<SbomWritten> {
  const text = buildSbom(await sbomInput(store, input));
  const bytes = Buffer.from(text, "utf8");
  const artifact = await attachArtifact(store, input.manifest, SBOM_MEDIA_TYPE, bytes, {
    [ANNOTATION.created]: input.image.created,
    [ANNOTATION.title]: "sbom.cdx.json",
  });
  const manifest = await store.readJsonBlob<{ layers: Descriptor[] }>(artifact.digest);
  return { digest: artifact.digest, documentDigest: manifest.layers[0]!.digest, summary: summarizeSbom(JSON.parse(text)) };
}

/** The SBOM stored for an image digest. */
export async function readImageSbom(store: Store, imageDigest: string): Promise<{ artifact: string; text: string; summary: SbomSummary }> {
  const found = await readReferrerDocument(store, imageDigest, SBOM_MEDIA_TYPE);
  if (!found) {
    throw new KilnError("KILN_E_NOT_FOUND", `image ${imageDigest} has no SBOM in the store`, {
      hint: "images baked by this kiln get one at bake time; for an older or pulled image, bake it again (same inputs, same digest) or pull it with its referrers",
    });
  }
  const text = found.document.toString("utf8");
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new KilnError("KILN_E_IMAGE", `the SBOM of ${imageDigest} is not JSON`, { cause: e });
  }
  return { artifact: found.artifact.digest, text, summary: summarizeSbom(doc) };
}

// Bases: the "node" runtime base built from a Node binary — this machine's
// ("node"), a pinned release ("node@24") or an official tarball
// ("node@file:PATH"), see runtime.ts and node-base.ts —, or an existing image imported from an OCI layout, an
// oci-archive or a docker-archive (import.ts). Either way the result is a
// manifest in the store (untagged), its layers and its config.

import { stat } from "node:fs/promises";
import { isAbsolute, resolve } from "node:path";
import { KilnError } from "../errors.js";
import { extractArchive } from "./archive.js";
import { checkImageLayers } from "./layer-check.js";
import { archiveSource, dirSource, importDockerArchive, importOci } from "./import.js";
import { nodeBase } from "./node-base.js";
import { obtainRuntime, parseRuntimeBase, type RuntimeRequest } from "./runtime.js";
import type { BaseContext, BaseImage } from "./base-image.js";

export type { BaseContext, BaseImage } from "./base-image.js";

export type BaseSource =
  | { kind: "node"; runtime?: Exclude<RuntimeRequest, { kind: "host" }> }
  | { kind: "oci"; path: string; tag?: string }
  | { kind: "docker-archive"; path: string; tag?: string };

/**
 * "node" | "oci:PATH[:TAG]" | "docker-archive:PATH[:NAME:TAG]". PATH ends at the
 * first ":" (as in skopeo), so "oci:/home/me/.kiln:shop:1.2" is the store
 * /home/me/.kiln, tag "shop:1.2". "node@24" and "node@file:PATH" name the
 * runtime of a node base (see runtime.ts).
 */
export function parseBaseSource(base: string): BaseSource {
  const runtime = parseRuntimeBase(base);
  if (runtime) return runtime.kind === "host" ? { kind: "node" } : { kind: "node", runtime };
  for (const kind of ["oci", "docker-archive"] as const) {
    const prefix = `${kind}:`;
    if (base.startsWith(prefix)) {
      const rest = base.slice(prefix.length);
      const i = rest.indexOf(":");
      const path = i === -1 ? rest : rest.slice(0, i);
      const tag = i === -1 ? undefined : rest.slice(i + 1);
      if (path === "" || tag === "") break;
      return tag === undefined ? { kind, path } : { kind, path, tag };
    }
  }
  throw new KilnError("KILN_E_IMAGE", `unknown base ${JSON.stringify(base)}`, {
    hint: 'use "node", "node@24" (a pinned Node.js release), "node@file:PATH", "oci:PATH[:TAG]" (an OCI layout directory or oci-archive file) or "docker-archive:PATH" (a docker save file)',
  });
}

export async function resolveBase(base: string, ctx: BaseContext): Promise<BaseImage> {
  const spec = parseBaseSource(base);
  if (spec.kind === "node") return nodeBase(ctx, await obtainRuntime(spec.runtime ?? { kind: "host" }, ctx));
  const imported = await importBase(base, spec, ctx);
  // Refuse now what unpack would refuse later: otherwise the store, and `kiln push`,
  // would accept an image kiln itself will not run.
  const bytes = imported.layers.reduce((n, l) => n + l.descriptor.size, 0);
  ctx.onProgress({ phase: "check layers", step: "start", detail: `${imported.layers.length} layers: paths, links and devices` });
  await checkImageLayers(ctx.store, imported.layers, base);
  ctx.onProgress({ phase: "check layers", step: "end", bytes });
  return imported;
}

async function importBase(base: string, spec: Exclude<BaseSource, { kind: "node" }>, ctx: BaseContext): Promise<BaseImage> {
  const path = isAbsolute(spec.path) ? spec.path : resolve(ctx.contextDir, spec.path);
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    throw new KilnError("KILN_E_IMAGE", `base ${base}: ${path} does not exist`, { cause: e, hint: "relative base paths are resolved from the directory holding kiln.yaml" });
  }
  if (spec.kind === "oci") {
    if (st.isDirectory()) return importOci(dirSource(path), base, spec.tag, ctx);
    const archive = await extractArchive(ctx.store, path);
    try {
      return await importOci(archiveSource(archive, path), base, spec.tag, ctx);
    } finally {
      await archive.cleanup();
    }
  }
  const archive = await extractArchive(ctx.store, path);
  try {
    return await importDockerArchive(archive, path, base, spec.tag, ctx);
  } finally {
    await archive.cleanup();
  }
}

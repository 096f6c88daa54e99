// kiln.yaml's image section as the recipe `bake` takes.

import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { BakeRecipe } from "../image/index.js";
import type { LoadedSpec } from "../config/index.js";

/** The commit the sources are at, when `dir` is in a git checkout. */
export function gitRevision(dir: string): string | undefined {
  try {
    const rev = execFileSync("git", ["rev-parse", "HEAD"], { cwd: dir, stdio: ["ignore", "pipe", "ignore"] }).toString().trim();
    return /^[0-9a-f]{40}$/.test(rev) ? rev : undefined;
  } catch {
    return undefined;
  }
}

export function recipeOf(loaded: LoadedSpec): BakeRecipe {
  const { spec } = loaded;
  const img = spec.image;
  return {
    name: spec.name,
    version: spec.version,
    contextDir: loaded.dir,
    base: img.base,
    dependencies: img.dependencies,
    files: img.files,
    config: img.config,
    workdir: img.workdir,
    env: img.env,
    entrypoint: img.entrypoint,
    cmd: img.cmd,
    user: img.user,
    port: img.port,
    labels: img.labels,
    compression: img.compression,
    revision: gitRevision(loaded.dir),
    specDigest: `sha256:${createHash("sha256").update(readFileSync(loaded.file)).digest("hex")}`,
  };
}

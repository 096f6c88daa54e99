// The image a generated config deploys, with the facts (created time, revision, timestamped
// name) that keep generated files independent of when they are generated.

import { existsSync } from "node:fs";
import { join } from "node:path";
import { KilnError } from "../errors.js";
import type { ImageInfo } from "../generate/index.js";
import { homeFor } from "../home.js";
import { ANNOTATION, openStore, readImage, resolveCreatedEpoch, resolveRef } from "../image/index.js";
import type { LoadedSpec } from "../config/index.js";
import { gitRevision } from "./recipe.js";

const DIGEST_REF = /^(.+)@(sha256:[0-9a-f]{64})$/;

/** "registry:5000/team/app:1.2" → "registry:5000/team/app" (a tag follows the last ":" after the last "/"). */
function stripTag(name: string): string {
  const slash = name.lastIndexOf("/");
  const colon = name.lastIndexOf(":");
  return colon > slash ? name.slice(0, colon) : name;
}

function stampOf(iso: string): string {
  return iso.replace(/[-:TZ]/g, "");
}

/**
 * The image a generated config deploys: `--image REPO@sha256:DIGEST` when
 * given, else NAME:VERSION from kiln's store. Created time, revision and the
 * timestamped name come from the stored image when it is there (so the output
 * does not depend on when it is generated), else from SOURCE_DATE_EPOCH or the
 * last commit, as a bake would.
 */
export async function resolveImageInfo(
  loaded: LoadedSpec,
  opts: { image?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<ImageInfo> {
  const { spec } = loaded;
  const env = opts.env ?? process.env;
  const home = homeFor(loaded.file, env);
  const hasStore = existsSync(join(home, "index.json"));
  let repository = spec.name;
  let digest: string;
  if (opts.image !== undefined) {
    const m = DIGEST_REF.exec(opts.image.trim());
    if (!m) {
      throw new KilnError("KILN_E_USAGE", `--image ${JSON.stringify(opts.image)} is not pinned by digest`, {
        hint: "pass REPOSITORY@sha256:<64 hex digits>, e.g. registry.example.com/hello@sha256:… (a tag can move; a digest cannot)",
      });
    }
    repository = stripTag(m[1]!);
    digest = m[2]!;
  } else {
    const ref = `${spec.name}:${spec.version}`;
    const bakeFirst = { hint: `run \`kiln bake\` first, or pass --image REPOSITORY@sha256:DIGEST of an image you pushed` };
    if (!hasStore) throw new KilnError("KILN_E_NOT_FOUND", `no image ${ref}: there is no image store at ${home}`, bakeFirst);
    try {
      digest = await resolveRef(openStore(home), ref);
    } catch (e) {
      if (e instanceof KilnError && e.code === "KILN_E_NOT_FOUND") throw new KilnError("KILN_E_NOT_FOUND", `no image ${ref} in the store at ${home}`, { ...bakeFirst, cause: e });
      throw e;
    }
  }

  let annotations: Record<string, string> = {};
  if (hasStore) {
    const store = openStore(home);
    if (await store.hasBlob(digest)) annotations = (await readImage(store, digest)).manifest.annotations ?? {};
  }
  let created = annotations[ANNOTATION.created];
  if (!created) {
    const { epoch } = await resolveCreatedEpoch(loaded.dir, undefined, env);
    created = new Date(epoch * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
  }
  const revision = annotations[ANNOTATION.revision] ?? gitRevision(loaded.dir);
  return {
    repository,
    digest,
    reference: `${repository}@${digest}`,
    created,
    timestampedName: annotations[ANNOTATION.timestampedName] ?? `${spec.name}-${spec.version}-${stampOf(created)}`,
    ...(revision ? { revision } : {}),
  };
}

import type { Command } from "commander";
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { KilnError } from "../../errors.js";
import { generate, isTargetName, TARGET_NAMES, TARGETS, type GeneratedFile, type ImageInfo } from "../../generate/index.js";
import { homeFor } from "../../home.js";
import { ANNOTATION, openStore, readImage, resolveCreatedEpoch, resolveRef } from "../../image/index.js";
import { loadSpec, type LoadedSpec } from "../../spec/index.js";
import { out, printJson, specFile, type GlobalOptions } from "../context.js";

const DIGEST_REF = /^(.+)@(sha256:[0-9a-f]{64})$/;

function gitRevision(dir: string): string | undefined {
  try {
    const rev = execFileSync("git", ["rev-parse", "HEAD"], { cwd: dir, stdio: ["ignore", "pipe", "ignore"] }).toString().trim();
    return /^[0-9a-f]{40}$/.test(rev) ? rev : undefined;
  } catch {
    return undefined;
  }
}

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

/** Write files into `dir`; refuses (and writes nothing) if any exists, unless `force`. */
export function writeGenerated(dir: string, files: readonly GeneratedFile[], force: boolean): string[] {
  const targets = files.map((f) => ({ f, path: join(dir, f.path) }));
  const existing = targets.filter((t) => existsSync(t.path));
  if (existing.length > 0 && !force) {
    throw new KilnError("KILN_E_USAGE", `refusing to overwrite ${existing.length} existing file${existing.length === 1 ? "" : "s"} in ${dir}`, {
      details: existing.map((t) => ({ where: t.path, message: "exists" })),
      hint: "pass --force to replace them, or choose another -o directory",
    });
  }
  for (const { f, path } of targets) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, f.content);
    chmodSync(path, f.mode ?? 0o644);
  }
  return targets.map((t) => t.path);
}

export function register(program: Command): void {
  const targets = TARGETS.map((t) => `  ${t.name.padEnd(15)} ${t.summary}`).join("\n");
  program
    .command("generate <target>")
    .description("write a platform's config from kiln.yaml and the baked image: the same strategy, health and image settings")
    .option("-o, --output <dir>", "directory to write the files into (needed when a target writes several)")
    .option("--force", "overwrite files that already exist in the output directory")
    .option("--image <ref>", "deploy this image, REPOSITORY@sha256:DIGEST, instead of NAME:VERSION from kiln's store")
    .option("--json", "print the files (or, with -o, what was written) as JSON")
    .addHelpText(
      "after",
      `\nTargets:\n${targets}\n\nOutput is deterministic: the same kiln.yaml and image give byte-identical files (times come from the\nimage's created time, never the clock). docs/generate-mapping.md maps each kiln.yaml field to each platform's.\n\nExamples:\n  kiln generate kubernetes > kubernetes.yaml\n  kiln generate packer -o deploy/packer\n  kiln generate aws-blue-green -o deploy/aws --image 123456789012.dkr.ecr.eu-west-1.amazonaws.com/hello@sha256:4413de28…\n  kiln generate haproxy -o deploy/haproxy --force`,
    )
    .action(async (target: string, opts: { output?: string; force?: boolean; image?: string; json?: boolean }, cmd: Command) => {
      if (!isTargetName(target)) {
        throw new KilnError("KILN_E_USAGE", `unknown target "${target}"`, { hint: `use one of: ${TARGET_NAMES.join(", ")}` });
      }
      const loaded = loadSpec(specFile(cmd.optsWithGlobals<GlobalOptions>()));
      const image = await resolveImageInfo(loaded, { image: opts.image });
      const files = generate(target, loaded.spec, image);
      if (opts.output === undefined) {
        if (files.length !== 1) {
          throw new KilnError("KILN_E_USAGE", `\`kiln generate ${target}\` writes ${files.length} files (${files.map((f) => f.path).join(", ")})`, {
            hint: `pass -o DIR, e.g. kiln generate ${target} -o deploy/${target}`,
          });
        }
        if (opts.json) return printJson({ target, image, files });
        process.stdout.write(files[0]!.content);
        return;
      }
      const written = writeGenerated(resolve(opts.output), files, opts.force === true);
      if (opts.json) return printJson({ target, image, written });
      for (const p of written) out(`wrote ${p}`);
    });
}

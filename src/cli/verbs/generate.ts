import type { Command } from "commander";
import { chmodSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { KilnError } from "../../errors.js";
import { generate, generateHost, HOST_TARGETS, isHostTargetName, isTargetName, TARGET_NAMES, TARGETS, HOST_TARGET_NAMES, type GeneratedFile } from "../../generate/index.js";
import { hostInfo } from "../../ops/host-info.js";
import { resolveImageInfo } from "../../ops/image-info.js";
import { loadSpec } from "../../config/index.js";
import { context, out, printJson, specFile, type GlobalOptions } from "../context.js";

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
  const targets = [...TARGETS, ...HOST_TARGETS].map((t) => `  ${t.name.padEnd(15)} ${t.summary}`).join("\n");
  program
    .command("generate <target>")
    .description("write a platform's config from kiln.yaml and the baked image: the same strategy, health and image settings")
    .option("-o, --output <dir>", "directory to write the files into (needed when a target writes several)")
    .option("--force", "overwrite files that already exist in the output directory")
    .option("--image <ref>", "deploy this image, REPOSITORY@sha256:DIGEST, instead of NAME:VERSION from kiln's store")
    .option("--json", "print the files (or, with -o, what was written) as JSON")
    .addHelpText(
      "after",
      `\nTargets:\n${targets}\n\nOutput is deterministic: the same kiln.yaml and image give byte-identical files (times come from the\nimage's created time, never the clock). docs/generate-mapping.md maps each kiln.yaml field to each platform's.\n\nExamples:\n  kiln generate kubernetes > kubernetes.yaml\n  kiln generate packer -o deploy/packer\n  kiln generate aws-blue-green -o deploy/aws --image 123456789012.dkr.ecr.eu-west-1.amazonaws.com/hello@sha256:4413de28…\n  kiln generate haproxy -o deploy/haproxy --force\n\nsystemd runs kiln itself on this host (from kiln.yaml's provider and router, with this machine's\npaths to node, kiln and the workspace): a unit for the proxy and one for the controller, which\nsystemd restarts after a crash with a growing delay. Install them, then start both:\n  kiln generate systemd -o /etc/systemd/system\n  systemctl daemon-reload && systemctl enable --now kiln-hello-proxy kiln-hello-controller`,
    )
    .action(async (target: string, opts: { output?: string; force?: boolean; image?: string; json?: boolean }, cmd: Command) => {
      if (isHostTargetName(target)) {
        if (opts.image !== undefined) throw new KilnError("KILN_E_USAGE", `--image does not apply to \`kiln generate ${target}\``, { hint: "the units run kiln's controller, which deploys what `kiln deploy` names" });
        const ws = await context(cmd.optsWithGlobals<GlobalOptions>());
        return emit(target, generateHost(target, ws.loaded.spec, hostInfo(ws)), opts);
      }
      if (!isTargetName(target)) {
        throw new KilnError("KILN_E_USAGE", `unknown target "${target}"`, { hint: `use one of: ${[...TARGET_NAMES, ...HOST_TARGET_NAMES].join(", ")}` });
      }
      const loaded = loadSpec(specFile(cmd.optsWithGlobals<GlobalOptions>()));
      const image = await resolveImageInfo(loaded, { image: opts.image });
      return emit(target, generate(target, loaded.spec, image), opts, { image });
    });
}

/** One file to stdout, or every file into -o DIR; `extra` joins the --json output. */
function emit(target: string, files: GeneratedFile[], opts: { output?: string; force?: boolean; json?: boolean }, extra: Record<string, unknown> = {}): void {
  if (opts.output === undefined) {
    if (files.length !== 1) {
      throw new KilnError("KILN_E_USAGE", `\`kiln generate ${target}\` writes ${files.length} files (${files.map((f) => f.path).join(", ")})`, {
        hint: `pass -o DIR, e.g. kiln generate ${target} -o ${target === "systemd" ? "/etc/systemd/system" : `deploy/${target}`}`,
      });
    }
    if (opts.json) return printJson({ target, ...extra, files });
    process.stdout.write(files[0]!.content);
    return;
  }
  const written = writeGenerated(resolve(opts.output), files, opts.force === true);
  if (opts.json) return printJson({ target, ...extra, written });
  for (const p of written) out(`wrote ${p}`);
}

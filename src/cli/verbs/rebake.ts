import type { Command } from "commander";
import { KilnError } from "../../errors.js";
import { openStore } from "../../image/index.js";
import { rebakePatch } from "../../ops/rebake.js";
import { context, out, printJson, short, type GlobalOptions } from "../context.js";
import { imageEvents, progressFor, withProgress } from "../progress.js";

export function register(program: Command): void {
  program
    .command("rebake")
    .description("bake the next patch version of the current image with its inputs as they are now (base, runtime pin), recorded as a patch of it; bumps kiln.yaml's version")
    .requiredOption("--patch", "bump the patch number (1.4.2 → 1.4.3); the only kind of rebake there is")
    .option("--json", "print the result as JSON")
    .option("--strict", "refuse a base whose runtime is past its end of life (as kiln bake --strict)")
    .addHelpText(
      "after",
      `
The parent is the image kiln.yaml's version names (NAME:VERSION in the store). The new image
is baked from the same kiln.yaml with the base resolved again — an oci: layout's tag re-read
(refresh it with e.g. skopeo copy), node@N at kiln's pin, "node" from this host's files — and
carries the annotation dev.kiln.patch-of = the parent's digest (kiln images --tree shows it).
kiln.yaml's version is bumped (comments and layout kept) only once the bake succeeded. A base
that is still the parent's is refused: the patch would change nothing. Then deploy it as any
release: kiln deploy.

Examples:
  kiln outdated --packages-index Packages     # what is behind, and where it runs
  kiln rebake --patch                         # hello:1.0.0 → hello:1.0.1
  kiln deploy                                 # roll it out (rolling, blue-green or canary)`,
    )
    .action(async (opts: { patch?: boolean; json?: boolean; strict?: boolean }, cmd: Command) => {
      if (!opts.patch) throw new KilnError("KILN_E_USAGE", "kiln rebake needs --patch", { hint: "kiln rebake --patch" });
      const globals = cmd.optsWithGlobals<GlobalOptions>();
      const ctx = await context(globals);
      const started = Date.now();
      const progress = progressFor({ json: opts.json, quiet: globals.quiet });
      const r = await withProgress(progress, (p) => rebakePatch(ctx, { store: openStore(ctx.home), strict: !!opts.strict, onProgress: imageEvents(p) }));
      if (!opts.json) for (const w of r.bake.warnings ?? []) process.stderr.write(`warning: ${w}\n`);
      if (opts.json) return printJson({ ...r, durationMs: Date.now() - started });
      out(`${r.bake.ref} ${r.bake.digest}`);
      out(`  patch of ${r.parent.ref} ${short(r.parent.digest)}; kiln.yaml version ${r.version.from} → ${r.version.to}`);
      for (const c of r.changes) out(`  ${c.kind.padEnd(8)} ${c.subject} ${c.kind === "base" ? short(c.from) : c.from ?? "(none)"} → ${c.kind === "base" ? short(c.to) : c.to ?? "(gone)"}`);
      out(`  ${Date.now() - started} ms; next: kiln deploy`);
    });
}

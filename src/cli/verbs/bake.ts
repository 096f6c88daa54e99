import type { Command } from "commander";
import { bake, openStore } from "../../image/index.js";
import { recipeOf } from "../../ops/recipe.js";
import { context, out, printJson, type GlobalOptions } from "../context.js";
import { imageEvents, progressFor, withProgress } from "../progress.js";

export function register(program: Command): void {
  program
    .command("bake")
    .description("build the image kiln.yaml describes into the content-addressed store; prints its reference and digest")
    .option("--json", "print the result as JSON")
    .option("--strict", "refuse a base whose runtime is past its end of life (without it, a warning)")
    .addHelpText(
      "after",
      "\nThe same inputs always give the same digest (timestamps come from SOURCE_DATE_EPOCH, else the last commit, else the newest input file's mtime).\nA tag NAME:VERSION never moves: bump `version` in kiln.yaml to bake a change.\nLayers are gzip'd on every core (KILN_BAKE_THREADS=N to choose); the thread count never changes the digest. image.compression: none skips gzip for images only run here.\n\nExamples:\n  kiln bake\n  kiln bake --strict                      # in CI: an end-of-life runtime fails the build\n  SOURCE_DATE_EPOCH=1700000000 kiln bake --json\n  KILN_BAKE_THREADS=1 kiln bake           # same digest, one thread",
    )
    .action(async (opts: { json?: boolean; strict?: boolean }, cmd: Command) => {
      const globals = cmd.optsWithGlobals<GlobalOptions>();
      const ctx = await context(globals);
      const store = openStore(ctx.home);
      const started = Date.now();
      const progress = progressFor({ json: opts.json, quiet: globals.quiet });
      // Warnings are printed once, below; the progress skips them.
      const r = await withProgress(progress, (p) => bake(recipeOf(ctx.loaded), { store, strict: !!opts.strict, onProgress: imageEvents(p) }));
      if (!opts.json) for (const w of r.warnings ?? []) process.stderr.write(`warning: ${w}\n`);
      if (opts.json) return printJson({ ...r, durationMs: Date.now() - started });
      // "unchanged" only for a re-bake of the same tag and inputs; a new version built from cached layers is new.
      out(`${r.ref} ${r.digest}${r.unchanged ? (r.cached ? " (unchanged, from cache)" : " (unchanged)") : r.cached ? " (new image, layers reused from cache)" : ""}`);
      out(`  name ${r.timestampedName}, ${r.layers.length} layers, ${Date.now() - started} ms`);
    });
}

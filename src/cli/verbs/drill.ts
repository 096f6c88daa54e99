import type { Command } from "commander";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { KilnError } from "../../errors.js";
import { drillMarkdown, runDrill } from "../../ops/drill.js";
import { context, out, printJson, short, type GlobalOptions } from "../context.js";
import { mark, table } from "../output.js";

export function register(program: Command): void {
  program
    .command("drill")
    .description("rehearse the whole loop on your own service in one environment, under load: bake → deploy → rolling replacement → bad release rolled back by itself → blue-green → instant rollback → an instance killed and healed")
    .option("--path <path>", "the path the load generator requests on the environment's listen address", "/")
    .option("--concurrency <n>", "load generator connections", "4")
    .option("--markdown <file>", "where to write the Markdown report for a pull request (default: the environment's logs directory)")
    .option("--json", "print the report as JSON (schemaVersion 1)")
    .addHelpText(
      "after",
      [
        "",
        "Runs on the environment's own fleet (starting its proxy and controller if they are not up) and",
        "leaves it live on the release `kiln deploy` would make. Every release in the drill is the same",
        "image: replacements differ only by a variable KILN_DRILL (not in the last one), and the bad release",
        "by NODE_OPTIONS requiring a module that does not exist, so Node exits at start (an image whose process",
        "is not Node cannot be made to fail this way: that step then fails and says so). The result is recorded",
        "against that release (digest and config hash): `promotion: { requireDrill: true }` in kiln.yaml",
        "makes `kiln promote-release` require a passed drill.",
        "",
        "Exit status: 0 when every step passed with 0 failed requests, 1 otherwise, 2 on bad input.",
        "",
        "Examples:",
        "  kiln drill --env staging",
        "  kiln drill --env staging --path /api/health --markdown drill.md",
        "  kiln drill --json | jq '.steps[] | {name, failed}'",
      ].join("\n"),
    )
    .action(async (opts: { path: string; concurrency: string; markdown?: string; json?: boolean }, cmd: Command) => {
      const concurrency = Number(opts.concurrency);
      if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 256) throw new KilnError("KILN_E_USAGE", `--concurrency ${opts.concurrency}: expected 1 to 256 connections`, { hint: "e.g. --concurrency 4" });
      const ctx = await context(cmd.optsWithGlobals<GlobalOptions>());
      const report = await runDrill(ctx, { path: opts.path, concurrency, say: opts.json ? undefined : out });
      const md = opts.markdown ? resolve(opts.markdown) : join(ctx.paths.logs, `${report.id}.md`);
      mkdirSync(dirname(md), { recursive: true });
      writeFileSync(md, drillMarkdown(report));
      if (opts.json) printJson({ ...report, markdownFile: md });
      else {
        const t = table(["step", "outcome", "duration", "requests", "failed"]);
        for (const s of report.steps) t.push([s.name, s.outcome, `${(s.durationMs / 1000).toFixed(1)} s`, s.requests, s.failed]);
        t.push(["total", report.passed ? "passed" : "FAILED", `${(report.durationMs / 1000).toFixed(1)} s`, report.totals.requests, report.totals.failed]);
        out(t.toString());
        out(`${report.passed ? `${mark(true)} drill passed` : `${mark(false)} drill failed: ${report.reason}`} — ${report.release.ref} ${short(report.release.digest)}, config ${short(report.release.configHash)}${report.environment ? ` in ${report.environment}` : ""}`);
        out(`report: ${md}`);
      }
      process.exitCode = report.passed ? 0 : 1;
    });
}

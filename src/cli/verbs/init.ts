import type { Command } from "commander";
import { initProject } from "../../init/index.js";
import { out, printJson } from "../context.js";

export function register(program: Command): void {
  program
    .command("init [dir]")
    .description("write a commented kiln.yaml for an existing app: runtime, entry point, layers, health path, pinned packages")
    .option("--packages <file>", "Debian packages the service needs on a VM image, one a line; pinned to the versions found here")
    .option("--force", "replace an existing kiln.yaml")
    .option("--json", "print what was detected and written as JSON")
    .addHelpText(
      "after",
      "\nDetects, in this order: a Dockerfile's ENTRYPOINT/CMD (and EXPOSE, USER), package.json (scripts.start, main),\nserver.js/index.js, a static site (index.html: kiln init adds static-server.js, a tiny Node server), an executable.\nThe health path is the first of /healthz, /health, /up, /status found in the source (default /healthz).\nAn existing kiln.yaml is never replaced without --force (exit 2, nothing written).\n\nExamples:\n  kiln init\n  kiln init services/api --packages packages.txt\n  kiln init && kiln validate && kiln bake",
    )
    .action((dir: string | undefined, opts: { packages?: string; force?: boolean; json?: boolean }) => {
      const r = initProject(dir ?? ".", { force: opts.force === true, packagesFile: opts.packages });
      if (opts.json) return printJson({ dir: r.dir, name: r.plan.name, runtime: r.plan.runtime, summary: r.plan.summary, packages: r.packages, written: r.written });
      for (const line of r.plan.summary) out(`  ${line}`);
      for (const p of r.written) out(`wrote ${p}`);
      out("next: read it, then `kiln validate` and `kiln bake`");
    });
}

import type { Command } from "commander";
import { readFileSync } from "node:fs";
import { KilnError } from "../../errors.js";
import { jsonSchemaText, parseSpec } from "../../config/index.js";
import { unreachableLoopbackWarnings } from "../../config/network-allow.js";
import { out, printJson, type GlobalOptions } from "../output.js";
import { specFile } from "../spec-file.js";

export function register(program: Command): void {
  program
    .command("validate")
    .description("check kiln.yaml and report every problem with its file:line:col, key path and a hint; changes nothing")
    .option("--json", "print the result as JSON")
    .addHelpText("after", "\nExit status: 0 valid, 2 invalid.\n\nExamples:\n  kiln validate\n  kiln validate -f services/api/kiln.yaml --json")
    .action((opts: { json?: boolean }, cmd: Command) => {
      const file = specFile(cmd.optsWithGlobals<GlobalOptions>());
      const r = parseSpec(readFileSync(file, "utf8"), file);
      if ("errors" in r) {
        if (opts.json) {
          printJson({ valid: false, file, problems: r.errors });
          process.exitCode = 2;
          return;
        }
        throw new KilnError("KILN_E_SPEC", `${file}: ${r.errors.length} problem${r.errors.length === 1 ? "" : "s"}`, {
          details: r.errors.map((p) => ({ where: p.where, path: p.path, message: p.message, hint: p.hint })),
        });
      }
      // Valid, but an accessory on the host's loopback that a private instance cannot reach is a
      // deploy that will fail health checks: say so now (exit 0: mode host or a relay may be meant).
      const warnings = unreachableLoopbackWarnings(r.spec);
      // Every environment's effective file was checked; list them so a reader knows.
      if (opts.json) printJson({ valid: true, file, service: r.spec.name, version: r.spec.version, environments: r.environments, ...(warnings.length ? { warnings } : {}) });
      else {
        for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
        out(`${file}: valid (service ${r.spec.name}, version ${r.spec.version}${r.environments.length ? `, environments ${r.environments.join(", ")}` : ""})`);
      }
    });

  program
    .command("schema")
    .description("print the JSON Schema of kiln.yaml (the same definition validate uses), for editors")
    .addHelpText("after", "\nExample:\n  kiln schema > kiln.schema.json   # then point your editor's YAML plugin at it")
    .action(() => {
      process.stdout.write(jsonSchemaText());
    });
}

import type { Command } from "commander";
import { KilnError } from "../../errors.js";
// The export module alone, not the image index: `kiln export` loads neither the bake nor signing, SBOM or policy code.
import { exportImage } from "../../image/export.js";
import { openStore } from "../../image/store.js";
import { context, out, type GlobalOptions } from "../context.js";

export function register(program: Command): void {
  program
    .command("export <ref>")
    .description("write an image as a tarball other tools load: an OCI archive or a docker-archive")
    .requiredOption("-o, --output <file>", "tarball to write")
    .option("--format <format>", "oci or docker-archive", "oci")
    .addHelpText("after", "\nExamples:\n  kiln export hello:1.0.0 --format oci -o hello.oci.tar            # skopeo inspect oci-archive:hello.oci.tar\n  kiln export hello:1.0.0 --format docker-archive -o hello.tar     # docker load -i hello.tar")
    .action(async (ref: string, opts: { output: string; format: string }, cmd: Command) => {
      if (opts.format !== "oci" && opts.format !== "docker-archive") throw new KilnError("KILN_E_USAGE", `unknown format "${opts.format}"`, { hint: "use --format oci or --format docker-archive" });
      const ctx = await context(cmd.optsWithGlobals<GlobalOptions>());
      await exportImage(openStore(ctx.home), ref, opts.format, opts.output);
      out(`wrote ${opts.output} (${opts.format})`);
    });
}

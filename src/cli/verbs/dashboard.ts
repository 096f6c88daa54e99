import { spawn } from "node:child_process";
import type { Command } from "commander";
import { ControllerClient } from "../../server/client.js";
import { changeNote } from "../change.js";
import { context, out, printJson, type GlobalOptions } from "../context.js";

export function register(program: Command): void {
  program
    .command("dashboard")
    .description("print the live dashboard's URL (on 127.0.0.1, or controller.dashboardListen) with a one-time token; the controller must be up")
    .option("--read-only", "a session that sees everything and offers no actions")
    .option("--open", "also open it in the desktop's browser (xdg-open)")
    .option("--json", "print {url, readOnly} as JSON")
    .addHelpText("after", "\nThe token works once: the browser exchanges it for a session cookie. Run the verb again for another browser.\n\nExamples:\n  kiln dashboard --open\n  kiln dashboard --read-only")
    .action(async (opts: { readOnly?: boolean; open?: boolean; json?: boolean }, cmd: Command) => {
      const ctx = await context(cmd.optsWithGlobals<GlobalOptions>());
      const r = await new ControllerClient(ctx.paths.controllerSocket).dashboard(opts.readOnly === true, changeNote(undefined, ctx.loaded.environment));
      if (opts.open) {
        // Best effort: without a desktop the URL printed below is what counts.
        const child = spawn("xdg-open", [r.url], { stdio: "ignore", detached: true });
        child.on("error", () => undefined);
        child.unref();
      }
      if (opts.json) return printJson(r);
      out(`dashboard${r.readOnly ? " (read-only)" : ""}: ${r.url}`);
      out("the token in this URL works once; run `kiln dashboard` again for another browser");
    });
}

import type { Command } from "commander";
import { KilnError } from "../../errors.js";
import { ControllerClient } from "../../server/client.js";
import { MAINTENANCE_DEFAULTS } from "../../traffic/router.js";
import { changeNote } from "../change.js";
import { context, out, printJson, type GlobalOptions } from "../context.js";

export function register(program: Command): void {
  program
    .command("maintenance <on|off>")
    .description("answer every request with 503, Retry-After and a maintenance page (on), or route again (off); instances are left running")
    .option("--message <text>", `text shown on the page (default: "${MAINTENANCE_DEFAULTS.message}")`)
    .option("--retry-after <seconds>", `the Retry-After header (default ${MAINTENANCE_DEFAULTS.retryAfterS})`)
    .option("--reason <text>", "why: recorded with your identity in the audit trail (`kiln history`)")
    .option("--json", "print the mode the router applies as JSON")
    .addHelpText("after", '\nExamples:\n  kiln maintenance on --message "Back at 14:00 UTC" --retry-after 600\n  kiln maintenance off')
    .action(async (state: string, opts: { message?: string; retryAfter?: string; json?: boolean; reason?: string }, cmd: Command) => {
      if (state !== "on" && state !== "off") throw new KilnError("KILN_E_USAGE", `maintenance: expected "on" or "off", got "${state}"`, { hint: "kiln maintenance on | kiln maintenance off" });
      if (state === "off" && (opts.message !== undefined || opts.retryAfter !== undefined)) {
        throw new KilnError("KILN_E_USAGE", "--message and --retry-after go with `maintenance on`", { hint: "kiln maintenance off" });
      }
      const retry = opts.retryAfter === undefined ? undefined : Number(opts.retryAfter);
      if (retry !== undefined && !(/^\d+$/.test(opts.retryAfter!) && Number.isSafeInteger(retry))) {
        throw new KilnError("KILN_E_USAGE", `--retry-after: expected a whole number of seconds, got "${opts.retryAfter}"`, { hint: "e.g. --retry-after 600" });
      }
      if (opts.message !== undefined && opts.message.length > 2000) throw new KilnError("KILN_E_USAGE", "--message: at most 2000 characters", { hint: "a sentence or two" });
      const ctx = await context(cmd.optsWithGlobals<GlobalOptions>());
      const mode = state === "on" ? { ...(opts.message !== undefined ? { message: opts.message } : {}), ...(retry !== undefined ? { retryAfterS: retry } : {}) } : undefined;
      const r = await new ControllerClient(ctx.paths.controllerSocket).maintenance(mode, changeNote(opts.reason, ctx.loaded.environment));
      if (opts.json) return printJson(r);
      if (r.maintenance) out(`maintenance on: 503 with Retry-After ${r.maintenance.retryAfterS ?? MAINTENANCE_DEFAULTS.retryAfterS} (routing table v${r.tableVersion})`);
      else out(`maintenance off: routing again (routing table v${r.tableVersion})`);
    });
}

import type { Command } from "commander";
import { parseDuration } from "../../config/duration.js";
import { KilnError } from "../../errors.js";
import { readsThroughRestarts, watch } from "../../ops/deploy-flow.js";
import { eventLine } from "../../ops/performer.js";
import { performerFor } from "../../ops/performers.js";
import { chooseRollout } from "../../ops/rollout-watch.js";
import { context, out, type GlobalOptions } from "../context.js";
import { mark } from "../output.js";

const jsonLine = (v: unknown) => process.stdout.write(`${JSON.stringify(v)}\n`);

export function register(program: Command): void {
  const rollout = program.command("rollout").description("follow rollouts: `kiln rollout watch`");
  rollout
    .command("watch [id]")
    .description("follow a rollout until it ends (default: the one in progress, else the newest); exit 0 when its release went live, 1 when it failed or was rolled back")
    .option("--json", "one JSON object a line: the rollout, each event, connection changes, then the outcome")
    .option("--timeout <duration>", "give up (exit 1) when the rollout runs longer than this", "30m")
    .addHelpText(
      "after",
      "\nA watcher started during the automatic rollback of a failed deploy follows that deploy, and exits 1.\nIt waits out controller restarts (up to 90 s each) and keeps following the same rollout.\n\nExit status: 0 live, 1 rolled back, failed or still running at --timeout, 2 bad input (no such rollout).\n\nExamples:\n  kiln deploy --json > /dev/null & kiln rollout watch\n  kiln rollout watch 12 --json | jq -c 'select(.type == \"outcome\")'",
    )
    .action(async (id: string | undefined, opts: { json?: boolean; timeout: string }, cmd: Command) => {
      const wanted = id === undefined ? undefined : Number(id);
      if (wanted !== undefined && !(Number.isInteger(wanted) && wanted > 0)) throw new KilnError("KILN_E_USAGE", `rollout id: expected a whole number, got "${id}"`, { hint: "see the ids with `kiln history --json | jq '.rollouts[].id'`" });
      let timeoutMs: number;
      try {
        timeoutMs = parseDuration(opts.timeout);
      } catch {
        throw new KilnError("KILN_E_USAGE", `--timeout: expected a duration like 90s or 30m, got "${opts.timeout}"`, { hint: "e.g. kiln rollout watch --timeout 10m" });
      }
      const ctx = await context(cmd.optsWithGlobals<GlobalOptions>());
      if ((await performerFor(ctx)).name !== "controller") {
        throw new KilnError("KILN_E_USAGE", "`kiln rollout watch` follows kiln's controller; Swarm performs native rollouts itself", { hint: "use `kiln resume` to follow a native Swarm rollout until it settles" });
      }
      const client = ctx.client;
      await client.requireRunning();
      const say = (line: string) => (opts.json ? jsonLine({ type: "connection", message: line }) : process.stderr.write(`${line}\n`));
      const read = readsThroughRestarts({ onConnection: say });
      const [status, history, recent] = await Promise.all([read(() => client.status()), read(() => client.history()), read(() => client.recentEvents(200))]);
      const chosen = chooseRollout(history.rollouts, status.rollout, wanted);
      if (!chosen) {
        throw new KilnError("KILN_E_NOT_FOUND", wanted === undefined ? "no rollout yet: nothing to watch" : `no rollout ${wanted}`, { hint: wanted === undefined ? "start one with `kiln deploy`" : "see `kiln history`" });
      }
      const onEvent = (e: (typeof recent.events)[number]) => (opts.json ? jsonLine({ type: "event", ...e, at: new Date(e.at).toISOString() }) : out(`  ${eventLine(e)}`));
      if (opts.json) jsonLine({ type: "rollout", ...chosen });
      else out(`watching rollout ${chosen.id}: ${chosen.kind} to ${chosen.target} (${chosen.strategy}), ${chosen.state}`);
      // What it did so far, then everything newer as it happens.
      const backlog = recent.events.filter((e) => e.rollout !== undefined && e.rollout >= chosen.id);
      for (const e of backlog) onEvent(e);
      const after = recent.events.length ? recent.events[recent.events.length - 1]!.id : 0;
      const r = await watch(client, chosen, { afterEvent: after, timeoutMs, onEvent, onConnection: say });
      if (opts.json) jsonLine({ type: "outcome", outcome: r.outcome, release: r.release, reason: r.reason, rollouts: r.rollouts.map((x) => x.id) });
      else if (r.outcome === "live") out(`${mark(true)} ${r.release.ref} is live as ${r.release.id}`);
      else out(`${mark(false)} ${r.release.ref} ${r.outcome === "rolled-back" ? "failed and was rolled back" : "failed"}: ${r.reason ?? "unknown reason"}`);
      process.exitCode = r.outcome === "live" ? 0 : 1;
    });
}

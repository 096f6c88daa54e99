import type { Command } from "commander";
import { KilnError } from "../../errors.js";
import { context, out, printJson, short, strategyName, type GlobalOptions } from "../context.js";
import { buildDeployRequest, lastEventId, watch, type WatchResult } from "../../ops/deploy-flow.js";
import { isSwarm, swarmDeploy, swarmRollback, swarmScale } from "../swarm-flow.js";

const time = (at: number) => new Date(at).toISOString().slice(11, 19);

function report(r: WatchResult, json: boolean | undefined): void {
  if (json) printJson({ outcome: r.outcome, release: r.release, reason: r.reason, rollouts: r.rollouts });
  else if (r.outcome === "live") out(`✔ ${r.release.ref} is live as ${r.release.id} (${short(r.release.digest)})`);
  else if (r.outcome === "rolled-back") out(`✘ ${r.release.ref} failed and was rolled back: ${r.reason ?? "unknown reason"}`);
  else out(`✘ ${r.release.ref} failed: ${r.reason ?? "unknown reason"}`);
  process.exitCode = r.outcome === "live" ? 0 : 1;
}

export function register(program: Command): void {
  program
    .command("deploy [ref]")
    .description("replace the fleet with instances of an image (default: NAME:VERSION from kiln.yaml)")
    .option("--strategy <name>", "rolling, blue-green or canary (default: strategy.type in kiln.yaml)")
    .option("--json", "print the outcome as JSON instead of progress")
    .addHelpText(
      "after",
      "\nExit status: 0 when the release is live, 1 when it failed (and was rolled back), 2 on bad input.\n\nExamples:\n  kiln deploy                       # the image kiln.yaml names\n  kiln deploy hello:2.0.0 --strategy blue-green\n  kiln deploy hello:2.0.0 --strategy canary   # weight steps from strategy.canary, analysed against the stable release",
    )
    .action(async (ref: string | undefined, opts: { strategy?: string; json?: boolean }, cmd: Command) => {
      const strategy = opts.strategy === undefined ? undefined : strategyName(opts.strategy);
      const ctx = context(cmd.optsWithGlobals<GlobalOptions>());
      if (isSwarm(ctx)) return swarmDeploy(ctx, ref, { strategy, json: opts.json });
      const req = await buildDeployRequest(ctx, ref, strategy);
      const after = await lastEventId(ctx.client);
      const { release, rollout } = await ctx.client.deploy(req);
      if (!opts.json) out(`deploying ${req.ref} (${short(req.digest)}) as ${release.id} with ${rollout.strategy}`);
      const r = await watch(ctx.client, rollout, { afterEvent: after, onEvent: opts.json ? undefined : (e) => out(`  ${time(e.at)} ${e.message}`) });
      report(r, opts.json);
    });

  program
    .command("rollback")
    .description("return to the previous release: instantly if its fleet is still warm, otherwise by a fast replacement")
    .option("--json", "print the outcome as JSON")
    .addHelpText("after", "\nExample:\n  kiln rollback")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const ctx = context(cmd.optsWithGlobals<GlobalOptions>());
      if (isSwarm(ctx)) return swarmRollback(ctx, opts);
      const after = await lastEventId(ctx.client);
      const { release, rollout } = await ctx.client.rollback();
      if (!opts.json) out(`rolling back to ${release.id} (${release.ref}) with ${rollout.strategy === "blue-green" ? "an instant switch" : "a replacement"}`);
      const r = await watch(ctx.client, rollout, { afterEvent: after, onEvent: opts.json ? undefined : (e) => out(`  ${time(e.at)} ${e.message}`) });
      report(r, opts.json);
    });

  program
    .command("promote")
    .description("promote a blue-green release waiting for manual promotion")
    .option("--json", "print the rollout as JSON")
    .addHelpText("after", "\nExample:\n  kiln promote")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const ctx = context(cmd.optsWithGlobals<GlobalOptions>());
      const r = await ctx.client.promote();
      if (opts.json) printJson(r);
      else out(`promotion requested for ${r.target}`);
    });

  for (const [verb, what] of [
    ["pause", "pause the rollout in progress: it takes no further step until `kiln resume`"],
    ["resume", "resume a paused rollout"],
    ["abort", "stop the deploy in progress and return to the release that was live"],
  ] as const) {
    program
      .command(verb)
      .description(what)
      .option("--json", "print the rollout as JSON")
      .addHelpText("after", `\nExample:\n  kiln ${verb}`)
      .action(async (opts: { json?: boolean }, cmd: Command) => {
        const ctx = context(cmd.optsWithGlobals<GlobalOptions>());
        const r = await ctx.client[verb]();
        if (opts.json) printJson(r);
        else out(`${verb}: ${r.kind} to ${r.target} (${r.state})`);
      });
  }

  program
    .command("scale <instances>")
    .description("set the fleet size; the controller launches or drains instances of the live release")
    .option("--json", "print the result as JSON")
    .addHelpText("after", "\nExample:\n  kiln scale 5")
    .action(async (n: string, opts: { json?: boolean }, cmd: Command) => {
      const count = Number(n);
      if (!/^\d+$/.test(n) || count > 1000) throw new KilnError("KILN_E_USAGE", `cannot scale to "${n}"`, { hint: "give a whole number from 0 to 1000" });
      const ctx = context(cmd.optsWithGlobals<GlobalOptions>());
      if (isSwarm(ctx)) return swarmScale(ctx, count, opts);
      const r = await ctx.client.scale(count);
      if (opts.json) printJson(r);
      else out(`desired instances: ${r.instances}`);
    });
}

import type { Command } from "commander";
import { KilnError } from "../../errors.js";
import { buildDeployRequest } from "../../ops/deploy-flow.js";
import { requireCapability, type RolloutOutcome } from "../../ops/performer.js";
import { performerFor } from "../../ops/performers.js";
import { meshHint, type IngressProbe } from "../../ops/swarm/performer.js";
import { context, out, printJson, short, strategyName, type GlobalOptions } from "../context.js";

function report(r: RolloutOutcome, json: boolean | undefined, rollback = false): void {
  const swarm = r.details as { durationMs?: number; ingress?: IngressProbe } | undefined;
  if (json) printJson({ outcome: r.outcome, release: r.release, reason: r.reason, rollouts: r.rollouts, ...(r.details ? { swarm: r.details } : {}) });
  else {
    if (r.outcome === "live") out(`✔ ${r.release.ref} is live as ${r.release.id} (${short(r.release.digest)})${swarm?.durationMs !== undefined ? ` on Swarm after ${(swarm.durationMs / 1000).toFixed(1)} s` : ""}`);
    else if (r.outcome === "rolled-back") out(`✘ ${r.release.ref} failed and ${swarm ? "Swarm rolled it back" : "was rolled back"}: ${r.reason ?? "unknown reason"}`);
    else out(`✘ ${rollback ? "rollback to " : ""}${r.release.ref} failed: ${r.reason ?? "unknown reason"}`);
    if (swarm?.ingress && !swarm.ingress.answering) out(`warning: ${meshHint(swarm.ingress)}`);
  }
  process.exitCode = r.outcome === "live" ? 0 : 1;
}

const progress = (json: boolean | undefined) => (json ? undefined : (line: string) => out(line.startsWith("deploying") || line.startsWith("rolling back") || line.startsWith("resuming") ? line : `  ${line}`));

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
      const req = await buildDeployRequest(ctx, ref, strategy);
      report(await performerFor(ctx).deploy(req, { onProgress: progress(opts.json) }), opts.json);
    });

  program
    .command("rollback")
    .description("return to the previous release: instantly if its fleet is still warm, otherwise by a fast replacement")
    .option("--json", "print the outcome as JSON")
    .addHelpText("after", "\nExample:\n  kiln rollback")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const ctx = context(cmd.optsWithGlobals<GlobalOptions>());
      report(await performerFor(ctx).rollback({ onProgress: progress(opts.json) }), opts.json, true);
    });

  for (const [verb, what, example] of [
    ["promote", "promote a blue-green release waiting for manual promotion", "kiln promote"],
    ["pause", "pause the rollout in progress: it takes no further step until `kiln resume`", "kiln pause"],
    ["resume", "resume a paused rollout (on Swarm: follow a rollout an interrupted kiln left running until it settles)", "kiln resume"],
    ["abort", "stop the deploy in progress and return to the release that was live", "kiln abort"],
  ] as const) {
    program
      .command(verb)
      .description(what)
      .option("--json", "print the rollout as JSON")
      .addHelpText("after", `\nExit status: 2 when the fleet's rollout performer has no such step (the message says what to do instead).\n\nExample:\n  ${example}`)
      .action(async (opts: { json?: boolean }, cmd: Command) => {
        const ctx = context(cmd.optsWithGlobals<GlobalOptions>());
        const performer = performerFor(ctx);
        const r = verb === "resume" ? await requireCapability(performer, "resume")({ onProgress: progress(opts.json) }) : await requireCapability(performer, verb)();
        if (opts.json) printJson(r);
        else if (verb === "promote") out(`promotion requested for ${r.target}`);
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
      const r = await requireCapability(performerFor(ctx), "scale")(count);
      if (opts.json) printJson(r);
      else out(`desired instances: ${r.instances}${r.running !== undefined ? ` (${r.running} running)` : ""}`);
      if (r.running !== undefined && r.running !== count) process.exitCode = 1;
    });
}

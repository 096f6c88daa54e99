import type { Command } from "commander";
import { KilnError } from "../../errors.js";
import { buildDeployRequest } from "../../ops/deploy-flow.js";
import { hasHooks, hookContext, runHook, type HookOutcome, type ReleaseFacts } from "../../ops/hooks.js";
import { requireCapability, type RolloutOutcome, type RolloutPerformer } from "../../ops/performer.js";
import { performerFor } from "../../ops/performers.js";
import { meshHint, type IngressProbe } from "../../ops/swarm/performer.js";
import { changeNote, hookPrinter, liveDigest, postHook, withReason } from "../change.js";
import { context, out, printJson, short, strategyName, type GlobalOptions, type Context } from "../context.js";
import { mark } from "../output.js";
import { blobEvents, progressFor, withProgress } from "../progress.js";
import { unreachableLoopbackWarnings } from "../../config/network-allow.js";

const hookSummary = (h: HookOutcome) => ({ hook: h.hook, ok: h.ok, exitCode: h.exitCode, signal: h.signal, timedOut: h.timedOut, durationMs: h.durationMs });


function report(r: RolloutOutcome, json: boolean | undefined, rollback = false, hooks: HookOutcome[] = []): void {
  const swarm = r.details as { durationMs?: number; ingress?: IngressProbe } | undefined;
  if (json) printJson({ outcome: r.outcome, release: r.release, reason: r.reason, rollouts: r.rollouts, ...(r.details ? { swarm: r.details } : {}), ...(hooks.length ? { hooks: hooks.map(hookSummary) } : {}) });
  else {
    if (r.outcome === "live") out(`${mark(true)} ${r.release.ref} is live as ${r.release.id} (${short(r.release.digest)})${swarm?.durationMs !== undefined ? ` on Swarm after ${(swarm.durationMs / 1000).toFixed(1)} s` : ""}`);
    else if (r.outcome === "rolled-back") out(`${mark(false)} ${r.release.ref} failed and ${swarm ? "Swarm rolled it back" : "was rolled back"}: ${r.reason ?? "unknown reason"}`);
    else out(`${mark(false)} ${rollback ? "rollback to " : ""}${r.release.ref} failed: ${r.reason ?? "unknown reason"}`);
    if (swarm?.ingress && !swarm.ingress.answering) out(`warning: ${meshHint(swarm.ingress)}`);
  }
  process.exitCode = r.outcome === "live" && hooks.every((h) => h.ok) ? 0 : 1;
}

const progress = (json: boolean | undefined) => (json ? undefined : (line: string) => out(line.startsWith("deploying") || line.startsWith("rolling back") || line.startsWith("resuming") ? line : `  ${line}`));

export function register(program: Command): void {
  withReason(
    program
      .command("deploy [ref]")
      .description("replace the fleet with instances of an image (default: NAME:VERSION from kiln.yaml)")
      .option("--strategy <name>", "rolling, blue-green or canary (default: strategy.type in kiln.yaml)")
      .option("--json", "print the outcome as JSON instead of progress"),
  )
    .addHelpText(
      "after",
      "\nHooks (kiln.yaml `hooks`): pre-deploy runs first and a failure refuses the deploy (exit 1, nothing changed);\npost-deploy runs once the release is live, post-rollback after an automatic rollback (a failure: exit 1, the change stands).\n\nExit status: 0 when the release is live, 1 when it failed (and was rolled back) or a hook failed, 2 on bad input.\n\nExamples:\n  kiln deploy                       # the image kiln.yaml names\n  kiln deploy hello:2.0.0 --strategy blue-green --reason \"new login page\"\n  kiln deploy hello:2.0.0 --strategy canary   # weight steps from strategy.canary, analysed against the stable release",
    )
    .action(async (ref: string | undefined, opts: { strategy?: string; json?: boolean; reason?: string }, cmd: Command) => {
      const strategy = opts.strategy === undefined ? undefined : strategyName(opts.strategy);
      changeNote(opts.reason); // a bad --reason is refused before anything is read
      const globals = cmd.optsWithGlobals<GlobalOptions>();
      const ctx = await context(globals);
      for (const w of unreachableLoopbackWarnings(ctx.loaded.spec)) process.stderr.write(`warning: ${w}\n`);
      const note = changeNote(opts.reason, ctx.loaded.environment);
      // A registry reference is pulled first: its blobs are progress on stderr, like `kiln pull`'s.
      const pulling = progressFor({ json: opts.json, quiet: globals.quiet });
      const req = { ...(await withProgress(pulling, (p) => buildDeployRequest(ctx, ref, strategy, blobEvents(p, "pull")))), note };
      const performer = await performerFor(ctx);
      const { hooks } = ctx.loaded.spec;
      const facts: ReleaseFacts = {
        service: ctx.loaded.spec.name, env: note.env, version: req.version, ref: req.ref, digest: req.digest,
        previousDigest: hasHooks(hooks, ["pre-deploy", "post-deploy", "post-rollback"]) ? await liveDigest(performer) : undefined,
        strategy: strategy ?? ctx.loaded.spec.strategy.type, actor: note.actor, reason: note.reason, command: note.command,
      };
      const ran: HookOutcome[] = [];
      // A failing pre-deploy hook throws here: nothing has been asked of the controller.
      const pre = await runHook(hookContext(ctx, performer, hookPrinter(opts.json)), "pre-deploy", facts);
      if (pre) ran.push(pre);
      const r = await performer.deploy(req, { onProgress: progress(opts.json), note });
      const after = { ...facts, release: r.release.id, outcome: r.outcome };
      if (r.outcome === "live") await postHook(ctx, performer, opts.json, "post-deploy", after, ran);
      else if (r.outcome === "rolled-back") {
        const back = r.rollouts.find((x) => x.kind === "rollback");
        await postHook(ctx, performer, opts.json, "post-rollback", { ...after, rollback: "automatic", release: back?.target ?? r.release.id, digest: facts.previousDigest, previousDigest: req.digest }, ran);
      }
      report(r, opts.json, false, ran);
    });

  withReason(
    program
      .command("rollback")
      .description("return to the previous release: instantly if its fleet is still warm, otherwise by a fast replacement")
      .option("--json", "print the outcome as JSON"),
  )
    .addHelpText("after", '\nA rollback without --reason is recorded as "no reason given" (and says so).\nHook post-rollback (kiln.yaml `hooks`) runs once it finished.\n\nExample:\n  kiln rollback --reason "login errors since r7"')
    .action(async (opts: { json?: boolean; reason?: string }, cmd: Command) => {
      changeNote(opts.reason); // a bad --reason is refused before anything is read
      const ctx = await context(cmd.optsWithGlobals<GlobalOptions>());
      const note = changeNote(opts.reason, ctx.loaded.environment);
      const performer = await performerFor(ctx);
      if (note.reason === undefined) process.stderr.write('warning: rolling back without --reason: the audit trail records "no reason given"\n');
      const before = hasHooks(ctx.loaded.spec.hooks, ["post-rollback"]) ? await liveDigest(performer) : undefined;
      const r = await performer.rollback({ onProgress: progress(opts.json), note });
      const ran: HookOutcome[] = [];
      if (r.outcome === "live") {
        await postHook(ctx, performer, opts.json, "post-rollback", {
          service: ctx.loaded.spec.name, env: note.env, version: r.release.version, ref: r.release.ref, digest: r.release.digest, previousDigest: before,
          strategy: r.rollouts[0]?.strategy, actor: note.actor, reason: note.reason, command: note.command, release: r.release.id, outcome: r.outcome, rollback: "manual",
        }, ran);
      }
      report(r, opts.json, true, ran);
    });

  for (const [verb, what, example] of [
    ["promote", "promote a blue-green release waiting for manual promotion", "kiln promote"],
    ["pause", "pause the rollout in progress: it takes no further step until `kiln resume`", "kiln pause"],
    ["resume", "resume a paused rollout (on Swarm: follow a rollout an interrupted kiln left running until it settles)", "kiln resume"],
    ["abort", "stop the deploy in progress and return to the release that was live", "kiln abort"],
  ] as const) {
    withReason(
      program
        .command(verb)
        .description(what)
        .option("--json", "print the rollout as JSON"),
    )
      .addHelpText("after", `\nExit status: 2 when the fleet's rollout performer has no such step (the message says what to do instead).\n\nExample:\n  ${example}`)
      .action(async (opts: { json?: boolean; reason?: string }, cmd: Command) => {
        changeNote(opts.reason);
        const ctx = await context(cmd.optsWithGlobals<GlobalOptions>());
        const note = changeNote(opts.reason, ctx.loaded.environment);
        const performer = await performerFor(ctx);
        const r = verb === "resume" ? await requireCapability(performer, "resume")({ onProgress: progress(opts.json), note }) : await requireCapability(performer, verb)(note);
        if (opts.json) printJson(r);
        else if (verb === "promote") out(`promotion requested for ${r.target}`);
        else out(`${verb}: ${r.kind} to ${r.target} (${r.state})`);
      });
  }

  withReason(
    program
      .command("scale <instances>")
      .description("set the fleet size; the controller launches or drains instances of the live release")
      .option("--json", "print the result as JSON"),
  )
    .addHelpText("after", '\nExample:\n  kiln scale 5 --reason "launch day"')
    .action(async (n: string, opts: { json?: boolean; reason?: string }, cmd: Command) => {
      const count = Number(n);
      if (!/^\d+$/.test(n) || count > 1000) throw new KilnError("KILN_E_USAGE", `cannot scale to "${n}"`, { hint: "give a whole number from 0 to 1000" });
      changeNote(opts.reason); // a bad --reason is refused before anything is read
      const ctx = await context(cmd.optsWithGlobals<GlobalOptions>());
      const note = changeNote(opts.reason, ctx.loaded.environment);
      const r = await requireCapability(await performerFor(ctx), "scale")(count, note);
      if (opts.json) printJson(r);
      else out(`desired instances: ${r.instances}${r.running !== undefined ? ` (${r.running} running)` : ""}`);
      if (r.running !== undefined && r.running !== count) process.exitCode = 1;
    });
}

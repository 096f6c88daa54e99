import type { Command } from "commander";
import { KilnError } from "../../errors.js";
import { deploySecrets } from "../../ops/deploy-flow.js";
import { performerFor } from "../../ops/performers.js";
import { planPromotion } from "../../ops/promotion.js";
import { hasHooks, hookContext, runHook, type HookOutcome, type ReleaseFacts } from "../../ops/hooks.js";
import { changeNote, hookPrinter, liveDigest, postHook, withReason } from "../change.js";
import { out, printJson, short, specFile, type GlobalOptions } from "../context.js";
import { mark } from "../output.js";

export function register(program: Command): void {
  withReason(
    program
    .command("promote-release")
    .description("deploy to one environment the exact release (image digest and config hash) live in another, once kiln.yaml's promotion gates are met")
    .requiredOption("--to <env>", "the environment to deploy to")
    .option("--from <env>", "the environment whose live release is promoted (default: the one listed before --to)")
    .option("--json", "print the outcome as JSON instead of progress"),
  )
    .addHelpText(
      "after",
      [
        "",
        "The target runs the source's image digest and config hash (the configuration every environment",
        "shares); only its own overrides apply (instances, listen, provider, router, env values, strategy).",
        "Refused (exit 2, nothing changed) when nothing is live in the source, a rollout is running there,",
        "kiln.yaml's shared configuration changed since, or a gate in `promotion:` is not met",
        "(requireDrill: a passed `kiln drill` of that release; soak: time live without a rollback).",
        "Not `kiln promote`, which promotes a blue-green or canary release waiting inside one environment.",
        "",
        "Hooks (kiln.yaml `hooks`): pre-promotion runs once the gates pass, before the target is asked; its",
        "failure refuses the promotion (exit 1, nothing changed). post-deploy runs once the release is live in",
        "the target, post-rollback when the target rolled it back (a failure: exit 1, the change stands).",
        "",
        "Exit status: 0 when the release is live in the target, 1 when it failed there (and was rolled back) or a",
        "hook failed, 2 when refused.",
        "",
        "Examples:",
        '  kiln promote-release --from staging --to production --reason "soaked a day, drill passed"',
        "  kiln promote-release --to production --json   # from the environment listed before production",
      ].join("\n"),
    )
    .action(async (opts: { to: string; from?: string; json?: boolean; reason?: string }, cmd: Command) => {
      const globals = cmd.optsWithGlobals<GlobalOptions>();
      changeNote(opts.reason); // a bad --reason is refused before anything is read
      if (globals.env !== undefined) throw new KilnError("KILN_E_USAGE", "promote-release takes --from and --to, not --env", { hint: "e.g. kiln promote-release --from staging --to production" });
      const plan = planPromotion(specFile(globals), opts.from, opts.to);
      const { source, target, request } = plan;
      if (target.loaded.spec.provider !== "swarm" && !(await target.client.ping())) {
        throw new KilnError("KILN_E_CONTROLLER", `${target.loaded.environment}'s controller is not running`, { hint: `start it with \`kiln up --detach --env ${target.loaded.environment}\`; nothing was changed` });
      }
      const say = opts.json ? undefined : (line: string) => out(line.startsWith("deploying") ? line : `  ${line}`);
      const note = changeNote(opts.reason, target.loaded.environment);
      const performer = await performerFor(target);
      const { hooks } = target.loaded.spec;
      const facts: ReleaseFacts = {
        service: target.loaded.spec.name, env: note.env, fromEnv: source.environment, version: source.live.version, ref: request.ref, digest: request.digest,
        previousDigest: hasHooks(hooks, ["pre-promotion", "post-deploy", "post-rollback"]) ? await liveDigest(performer) : undefined,
        strategy: request.strategy ?? target.loaded.spec.strategy.type, actor: note.actor, reason: note.reason, command: note.command,
      };
      const ran: HookOutcome[] = [];
      // A failing pre-promotion hook throws here (KILN_E_HOOK): nothing has been asked of the target.
      const pre = await runHook(hookContext(target, performer, hookPrinter(opts.json)), "pre-promotion", facts);
      if (pre) ran.push(pre);
      say?.(`promoting ${source.live.id} (${request.ref}, ${short(request.digest)}, config ${short(request.configHash)}) from ${source.environment} to ${target.loaded.environment}`);
      // The target environment's own secrets, read now on the deployer's side as for a deploy.
      const secrets = await deploySecrets(target);
      const r = await performer.deploy({ ...request, ...(secrets ? { spec: { ...request.spec, secrets: secrets.release }, secretValues: secrets.values } : {}), note }, { onProgress: say, note });
      const after = { ...facts, release: r.release.id, outcome: r.outcome };
      if (r.outcome === "live") await postHook(target, performer, opts.json, "post-deploy", after, ran);
      else if (r.outcome === "rolled-back") {
        const back = r.rollouts.find((x) => x.kind === "rollback");
        await postHook(target, performer, opts.json, "post-rollback", { ...after, rollback: "automatic", release: back?.target ?? r.release.id, digest: facts.previousDigest, previousDigest: request.digest }, ran);
      }
      // Read back what the target recorded: the promise is the same digest and config hash.
      const recorded = (await performer.history()).releases.find((x) => x.id === r.release.id);
      const identical = recorded !== undefined && recorded.digest === source.live.digest && recorded.configHash === source.live.configHash;
      const result = {
        outcome: r.outcome,
        reason: r.reason,
        from: { environment: source.environment, release: source.live.id, digest: source.live.digest, configHash: source.live.configHash },
        to: { environment: target.loaded.environment, release: r.release.id, digest: recorded?.digest, configHash: recorded?.configHash, promotedFrom: recorded?.promotedFrom },
        identical,
        ...(ran.length ? { hooks: ran.map((h) => ({ hook: h.hook, ok: h.ok, exitCode: h.exitCode, signal: h.signal, timedOut: h.timedOut, durationMs: h.durationMs })) } : {}),
      };
      if (opts.json) printJson(result);
      else if (r.outcome === "live") out(`${mark(true)} ${r.release.id} live in ${target.loaded.environment}: the same digest ${short(source.live.digest)} and config hash ${short(source.live.configHash)} as ${source.environment}'s ${source.live.id}`);
      else out(`${mark(false)} promotion to ${target.loaded.environment} failed${r.outcome === "rolled-back" ? " and was rolled back" : ""}: ${r.reason ?? "unknown reason"}`);
      if (r.outcome === "live" && !identical) throw new KilnError("KILN_E_INTERNAL", `the release recorded in ${target.loaded.environment} does not carry ${source.environment}'s digest and config hash`);
      process.exitCode = r.outcome === "live" && ran.every((h) => h.ok) ? 0 : 1;
    });
}

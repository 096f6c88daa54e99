import type { Command } from "commander";
import { KilnError } from "../../errors.js";
import { performerFor } from "../../ops/performers.js";
import { planPromotion } from "../../ops/promotion.js";
import { out, printJson, short, specFile, type GlobalOptions } from "../context.js";

export function register(program: Command): void {
  program
    .command("promote-release")
    .description("deploy to one environment the exact release (image digest and config hash) live in another, once kiln.yaml's promotion gates are met")
    .requiredOption("--to <env>", "the environment to deploy to")
    .option("--from <env>", "the environment whose live release is promoted (default: the one listed before --to)")
    .option("--json", "print the outcome as JSON instead of progress")
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
        "Exit status: 0 when the release is live in the target, 1 when it failed there (and was rolled back), 2 when refused.",
        "",
        "Examples:",
        "  kiln promote-release --from staging --to production",
        "  kiln promote-release --to production --json   # from the environment listed before production",
      ].join("\n"),
    )
    .action(async (opts: { to: string; from?: string; json?: boolean }, cmd: Command) => {
      const globals = cmd.optsWithGlobals<GlobalOptions>();
      if (globals.env !== undefined) throw new KilnError("KILN_E_USAGE", "promote-release takes --from and --to, not --env", { hint: "e.g. kiln promote-release --from staging --to production" });
      const plan = planPromotion(specFile(globals), opts.from, opts.to);
      const { source, target, request } = plan;
      if (target.loaded.spec.provider !== "swarm" && !(await target.client.ping())) {
        throw new KilnError("KILN_E_CONTROLLER", `${target.loaded.environment}'s controller is not running`, { hint: `start it with \`kiln up --detach --env ${target.loaded.environment}\`; nothing was changed` });
      }
      const say = opts.json ? undefined : (line: string) => out(line.startsWith("deploying") ? line : `  ${line}`);
      say?.(`promoting ${source.live.id} (${request.ref}, ${short(request.digest)}, config ${short(request.configHash)}) from ${source.environment} to ${target.loaded.environment}`);
      const r = await performerFor(target).deploy(request, { onProgress: say });
      // Read back what the target recorded: the promise is the same digest and config hash.
      const recorded = (await performerFor(target).history()).releases.find((x) => x.id === r.release.id);
      const identical = recorded !== undefined && recorded.digest === source.live.digest && recorded.configHash === source.live.configHash;
      const result = {
        outcome: r.outcome,
        reason: r.reason,
        from: { environment: source.environment, release: source.live.id, digest: source.live.digest, configHash: source.live.configHash },
        to: { environment: target.loaded.environment, release: r.release.id, digest: recorded?.digest, configHash: recorded?.configHash, promotedFrom: recorded?.promotedFrom },
        identical,
      };
      if (opts.json) printJson(result);
      else if (r.outcome === "live") out(`✔ ${r.release.id} live in ${target.loaded.environment}: the same digest ${short(source.live.digest)} and config hash ${short(source.live.configHash)} as ${source.environment}'s ${source.live.id}`);
      else out(`✘ promotion to ${target.loaded.environment} failed${r.outcome === "rolled-back" ? " and was rolled back" : ""}: ${r.reason ?? "unknown reason"}`);
      if (r.outcome === "live" && !identical) throw new KilnError("KILN_E_INTERNAL", `the release recorded in ${target.loaded.environment} does not carry ${source.environment}'s digest and config hash`);
      process.exitCode = r.outcome === "live" ? 0 : 1;
    });
}

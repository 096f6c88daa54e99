import type { Command } from "commander";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { toReleaseSettings } from "../../controller/release-settings.js";
import { simulateRollout, type SimulationResult } from "../../controller/simulate.js";
import { capacityOf } from "../../derive/index.js";
import { KilnError } from "../../errors.js";
import type { StrategyName } from "../../rollout/types.js";
import { loadSpec, parseSpec, type Spec } from "../../config/index.js";
import { out, printJson, short, strategyName, type GlobalOptions } from "../output.js";

/**
 * What `plan` needs beyond `simulate` (the workspace, the performers, the Docker and Swarm
 * clients): loaded when `plan` runs, so `kiln simulate` starts without them.
 */
async function planModules() {
  const [{ context }, { buildDeployRequest }, { performerFor }, { SwarmPerformer }, { renderSwarmPlan }] = await Promise.all([
    import("../context.js"), import("../../ops/deploy-flow.js"), import("../../ops/performers.js"), import("../../ops/swarm/performer.js"), import("../render-swarm.js"),
  ]);
  return { context, buildDeployRequest, performerFor, SwarmPerformer, renderSwarmPlan };
}

const DEFAULT_START_MS = 500;

function strategyOf(v: string | undefined, spec: Spec): StrategyName {
  return strategyName(v ?? spec.strategy.type);
}

function intOption(name: string, v: string, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new KilnError("KILN_E_USAGE", `--${name} must be a whole number from ${min} to ${max}, got "${v}"`);
  return n;
}

function printSteps(r: SimulationResult): void {
  r.steps.forEach((s, i) => out(`${String(i + 1).padStart(3)}. t+${(s.atMs / 1000).toFixed(1).padStart(6)}s  ${s.kind.padEnd(13)} ${s.count ? `${s.count} ` : ""}${s.release ? `(${s.release}) ` : ""}— ${s.reason}`));
}

export function register(program: Command): void {
  program
    .command("plan [ref]")
    .description("show, as data, the steps a deploy would take against the current fleet (simulated with the real controller; nothing changes)")
    .option("--strategy <name>", "rolling, blue-green or canary (default: kiln.yaml)")
    .option("--start-ms <ms>", "assumed time for an instance to start answering", String(DEFAULT_START_MS))
    .option("--json", "print the plan as JSON (schemaVersion 1)")
    .addHelpText("after", "\nExamples:\n  kiln plan\n  kiln plan hello:2.0.0 --strategy blue-green --json")
    .action(async (ref: string | undefined, opts: { strategy?: string; startMs: string; json?: boolean }, cmd: Command) => {
      const { context, buildDeployRequest, performerFor, SwarmPerformer, renderSwarmPlan } = await planModules();
      const ctx = await context(cmd.optsWithGlobals<GlobalOptions>());
      const spec = ctx.loaded.spec;
      const strategy = strategyOf(opts.strategy, spec);
      const notes: string[] = [];
      let target: { ref: string; digest?: string; version: string };
      try {
        const req = await buildDeployRequest(ctx, ref, strategy);
        target = { ref: req.ref, digest: req.digest, version: req.version };
      } catch (e) {
        if (!(e instanceof KilnError && e.code === "KILN_E_NOT_FOUND") || ref !== undefined) throw e;
        target = { ref: `${spec.name}:${spec.version}`, version: spec.version };
      }
      const performer = await performerFor(ctx);
      if (performer instanceof SwarmPerformer) {
        if (!target.digest) notes.push(`${target.ref} is not baked yet: run \`kiln bake\` before deploying`);
        const plan = await performer.plan(target, strategy, notes);
        return opts.json ? printJson(plan) : renderSwarmPlan(plan);
      }
      const startMs = intOption("start-ms", opts.startMs, 0, 600_000);
      let from: { release: string; version: string; instances: number } | undefined;
      if (await ctx.client.ping()) {
        const s = await ctx.client.status();
        if (s.release) from = { release: s.release.id, version: s.release.version, instances: s.instances.filter((i) => i.release === s.release!.id && i.routing === "active").length };
      } else notes.push("the controller is not running: planned against an empty fleet");
      if (!target.digest) notes.push(`${target.ref} is not baked yet: run \`kiln bake\` before deploying`);
      notes.push(`assumes each instance starts answering ${startMs} ms after launch and passes its health checks`);
      const sim = await simulateRollout({ spec: toReleaseSettings(spec), current: from?.instances ?? 0, instances: spec.instances, strategy, failRate: 0, startMs, seed: 1 });
      const cap = capacityOf({ instances: spec.instances, strategy: { ...spec.strategy, type: strategy } });
      const plan = {
        schemaVersion: 1 as const,
        service: ctx.loaded.service,
        strategy,
        from: from ?? null,
        to: { ...target, instances: spec.instances },
        bounds: { maxTotal: cap.maxTotal, minHealthy: cap.minHealthy, surge: cap.surge },
        expectedDurationMs: sim.durationMs,
        minServing: sim.minServing,
        maxAlive: sim.maxAlive,
        steps: sim.steps,
        notes,
      };
      if (opts.json) return printJson(plan);
      out(`plan: ${from ? `${from.release} (${from.version}, ${from.instances} instances)` : "empty fleet"} → ${target.ref}${target.digest ? ` ${short(target.digest)}` : ""}, ${strategy}, ${spec.instances} instances`);
      out(`      never fewer than ${sim.minServing} serving, at most ${sim.maxAlive} alive, about ${(sim.durationMs / 1000).toFixed(1)} s`);
      printSteps(sim);
      for (const n of notes) out(`note: ${n}`);
    });

  program
    .command("simulate")
    .description("run the real controller on an in-memory fleet with a manual clock and print capacity over time per release")
    .option("--instances <n>", "fleet size", "10")
    .option("--current <n>", "instances of the current release before the deploy (default: same as --instances)")
    .option("--strategy <name>", "rolling, blue-green or canary (default: kiln.yaml, or rolling)")
    .option("--fail-rate <r>", "share of new instances that fail their health checks, 0–1", "0")
    .option("--start-ms <ms>", "time for an instance to start answering", String(DEFAULT_START_MS))
    .option("--seed <n>", "random seed for the per-instance failures", "1")
    .option("--json", "print the whole result as JSON")
    .addHelpText("after", "\nUses kiln.yaml's health and strategy settings when there is one (-f), else the defaults.\n\nExamples:\n  kiln simulate --instances 20 --strategy rolling --fail-rate 0\n  kiln simulate --instances 6 --strategy blue-green --fail-rate 0.2 --json\n  kiln simulate --instances 10 --strategy canary")
    .action(async (opts: { instances: string; current?: string; strategy?: string; failRate: string; startMs: string; seed: string; json?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const file = resolve(g.file ?? "kiln.yaml");
      const spec = existsSync(file) ? loadSpec(file).spec : (parseSpec("name: sim\nversion: sim\n", "<defaults>") as { spec: Spec }).spec;
      const instances = intOption("instances", opts.instances, 1, 10_000);
      const current = opts.current === undefined ? instances : intOption("current", opts.current, 0, 10_000);
      const failRate = Number(opts.failRate);
      if (!(failRate >= 0 && failRate <= 1)) throw new KilnError("KILN_E_USAGE", `--fail-rate must be between 0 and 1, got "${opts.failRate}"`);
      const strategy = strategyOf(opts.strategy, spec);
      const sim = await simulateRollout({ spec: { ...toReleaseSettings(spec), instances }, current, instances, strategy, failRate, startMs: intOption("start-ms", opts.startMs, 0, 600_000), seed: intOption("seed", opts.seed, 0, 2 ** 31) });
      if (opts.json) return printJson(sim);
      out(`${strategy}, ${current} → ${instances} instances, fail rate ${failRate}: ${sim.outcome}${sim.reason ? ` (${sim.reason})` : ""} after ${(sim.durationMs / 1000).toFixed(1)} s simulated`);
      out(`never fewer than ${sim.minServing} serving; at most ${sim.maxAlive} alive; ${sim.launches} launches`);
      const releases = [...new Set(sim.timeline.flatMap((p) => Object.keys(p.serving)))].sort();
      const traffic = sim.timeline.some((p) => p.traffic);
      out(`\n   t(s)  ${releases.map((r) => `${r} serving`.padStart(11)).join(" ")}  alive${traffic ? `  ${releases.map((r) => `${r} traffic`.padStart(11)).join(" ")}` : ""}`);
      for (const p of sim.timeline) {
        const shares = traffic ? `  ${releases.map((r) => `${p.traffic?.[r] ?? 0}%`.padStart(11)).join(" ")}` : "";
        out(`${(p.atMs / 1000).toFixed(1).padStart(7)}  ${releases.map((r) => String(p.serving[r] ?? 0).padStart(11)).join(" ")}  ${String(p.alive).padStart(5)}${shares}`);
      }
    });
}

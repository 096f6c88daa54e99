import type { Command } from "commander";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseDocument } from "yaml";
import { bake, openStore } from "../../image/index.js";
import { discardVolumes } from "../../providers/registry.js";
import type { StatusView } from "../../controller/types.js";
import { context, out, printJson, short, specFile, type Context, type GlobalOptions } from "../context.js";
import { mark, table } from "../output.js";
import { chooseProvider, chooseRouter, startDaemons, stopDaemons } from "../../ops/daemons.js";
import { buildDeployRequest } from "../../ops/deploy-flow.js";
import { deployAndWatch, expect, fleetServes, killAndHeal, rollbackAndWatch, StepRecorder, type RehearsalStep } from "../../ops/rehearsal.js";
import { recipeOf } from "../../ops/recipe.js";
import { freeLoopbackPort } from "../../net.js";

export type DemoStep = RehearsalStep;

/** The demo works on a copy of the example, editing it the way a developer would between releases. */
class Workspace {
  constructor(readonly dir: string) {}
  get specFile(): string {
    return join(this.dir, "kiln.yaml");
  }
  setSpec(edit: (doc: ReturnType<typeof parseDocument>) => void): void {
    const doc = parseDocument(readFileSync(this.specFile, "utf8"));
    edit(doc);
    writeFileSync(this.specFile, doc.toString());
  }
  setAppConfig(patch: Record<string, unknown>): void {
    const f = join(this.dir, "config", "app.json");
    const cur = JSON.parse(readFileSync(f, "utf8")) as Record<string, unknown>;
    writeFileSync(f, `${JSON.stringify({ ...cur, ...patch }, null, 2)}\n`);
  }
  release(version: string, healthy = true, extra: Record<string, unknown> = { delayMs: 0 }): void {
    this.setSpec((d) => d.set("version", version));
    this.setAppConfig({ version, healthy, ...extra });
  }
}

/**
 * The one line the demo says when it could not stop the previous run's instances, e.g.
 * provider docker, "could not list the instances of hello: the Docker Engine is unreachable (ENOENT)" →
 * "previous demo: skipped stopping its docker instances (could not list the instances of hello: the Docker Engine is unreachable (ENOENT)); going on. If any are left, remove them once docker is back: kiln down -f ws/kiln.yaml --provider docker"
 */
export function skippedCleanupLine(skipped: { provider: string; reason: string }, specFile: string): string {
  return `previous demo: skipped stopping its ${skipped.provider} instances (${skipped.reason}); going on. If any are left, remove them once ${skipped.provider} is back: kiln down -f ${specFile} --provider ${skipped.provider}`;
}

export function register(program: Command): void {
  program
    .command("demo")
    .description("bake → deploy → rolling → broken release auto-rolled back → blue-green → instant rollback → slow canary aborted by analysis → canary promoted → heal, under continuous load")
    .option("--json", "print the steps and totals as JSON")
    .option("--keep", "leave the fleet running at the end (stop it with `kiln down -f <workspace>/kiln.yaml`)")
    .option("--provider <name>", "what runs the instances: local or docker (default: the example's kiln.yaml provider)")
    .option("--router <kind>", "the data plane: builtin or haproxy (default: the example's kiln.yaml router)")
    .addHelpText(
      "after",
      "\nRuns on a copy of the example next to its kiln.yaml (.kiln/demo/), on a free port.\nExit status 0 when every step is ok with 0 failed requests.\n\nExamples:\n  kiln demo -f examples/hello/kiln.yaml --json\n  kiln demo -f examples/hello/kiln.yaml --provider docker\n  kiln demo -f examples/hello/kiln.yaml --router haproxy",
    )
    .action(async (opts: { json?: boolean; keep?: boolean; provider?: string; router?: string }, cmd: Command) => {
      const source = specFile(cmd.optsWithGlobals<GlobalOptions>());
      const say = opts.json ? (_: string) => undefined : out;
      const base = join(dirname(source), ".kiln", "demo");
      const ws = new Workspace(join(base, "workspace"));

      // A previous demo may have been interrupted: stop what it left, then start from a clean copy.
      // Its provider may be out of reach now (a docker demo, then the engine stopped): that part is
      // skipped with one line saying so, since the new run does not depend on it.
      if (existsSync(ws.specFile)) {
        const old = await context({ file: ws.specFile });
        const previous = await stopDaemons({ paths: old.paths, home: old.home, service: old.loaded.service, provider: chooseProvider({ paths: old.paths, spec: old.loaded.spec.provider }), swarm: old.loaded.spec.swarm, onProviderFailure: "skip" });
        if (previous.skipped) process.stderr.write(`${skippedCleanupLine(previous.skipped, ws.specFile)}\n`);
      }
      // Start from a clean copy of the example, but keep the image store (blobs, layer cache,
      // unpacked roots) so the runtime base is not rebuilt on every run.
      mkdirSync(ws.dir, { recursive: true });
      for (const entry of readdirSync(ws.dir)) if (entry !== ".kiln") rmSync(join(ws.dir, entry), { recursive: true, force: true });
      for (const entry of ["state.db", "state.db-wal", "state.db-shm", "instances", "volumes", "run", "logs"]) rmSync(join(ws.dir, ".kiln", entry), { recursive: true, force: true });
      // The demo re-bakes the same versions each run: forget the previous run's tags (blobs and the
      // layer cache stay), so an edited example bakes fresh instead of hitting an immutable tag.
      rmSync(join(ws.dir, ".kiln", "index.json"), { force: true });
      for (const entry of readdirSync(dirname(source))) {
        if (entry !== ".kiln") cpSync(join(dirname(source), entry), join(ws.dir, entry), { recursive: true });
      }
      const port = await freeLoopbackPort();
      ws.setSpec((d) => d.set("listen", `127.0.0.1:${port}`));
      const fresh = await context({ file: ws.specFile });
      const provider = chooseProvider({ flag: opts.provider, paths: fresh.paths, spec: fresh.loaded.spec.provider });
      ws.setSpec((d) => d.set("provider", provider)); // the workspace says what it runs on, for `kiln down -f` after --keep
      const router = chooseRouter({ flag: opts.router, paths: fresh.paths, spec: fresh.loaded.spec.router });
      ws.setSpec((d) => d.set("router", router));
      await discardVolumes(provider, fresh.home, fresh.loaded.service); // the counter starts from 0
      ws.release("1.0.0");

      const recorder = new StepRecorder(say);
      const steps = recorder.steps;
      const step = (name: string, fn: () => Promise<string>) => recorder.step(name, fn);
      let ctx: Context = await context({ file: ws.specFile });

      const bakeNow = async () => {
        ctx = await context({ file: ws.specFile });
        const r = await bake(recipeOf(ctx.loaded), { store: openStore(ctx.home) });
        return `${r.ref} ${short(r.digest)}${r.cached ? " (cached)" : ""}`;
      };
      const deployNow = async (strategy?: "rolling" | "blue-green" | "canary") => {
        ctx = await context({ file: ws.specFile });
        return deployAndWatch(ctx.client, await buildDeployRequest(ctx, undefined, strategy));
      };
      const status = (): Promise<StatusView> => ctx.client.status();
      const fleetOn = async (version: string) => fleetServes(await status(), (i) => i.version === version);

      try {
        await step("bake v1", async () => bakeNow());
        await step("deploy v1 (3 instances)", async () => {
          const up = await startDaemons({ paths: ctx.paths, specFile: ctx.loaded.file, listen: ctx.loaded.spec.listen, previewListen: ctx.loaded.spec.strategy.blueGreen.previewListen, home: ctx.home, provider, router, edge: ctx.loaded.spec.edge, health: ctx.loaded.spec.health, swarm: ctx.loaded.spec.swarm });
          const r = await deployNow();
          expect(r.outcome === "live", `v1 did not go live: ${r.reason}`);
          await recorder.startLoad({ url: `http://127.0.0.1:${port}/`, concurrency: 4, durationMs: 10 * 60_000 });
          return `live on http://127.0.0.1:${port} (${router === "haproxy" ? "HAProxy" : "proxy"} ${up.proxyPid}, controller ${up.controllerPid}, provider ${provider}, router ${router}); load started`;
        });
        await step("rolling v1 → v2", async () => {
          ws.release("2.0.0");
          await bakeNow();
          const r = await deployNow("rolling");
          expect(r.outcome === "live", `v2 did not go live: ${r.reason}`);
          expect(await fleetOn("2.0.0"), "fleet is not all on 2.0.0");
          return `${r.release.id} live, 3/3 instances on 2.0.0`;
        });
        await step("broken v3 → automatic rollback", async () => {
          ws.release("3.0.0", false);
          await bakeNow();
          const r = await deployNow("rolling");
          expect(r.outcome === "rolled-back", `expected an automatic rollback, got ${r.outcome}`);
          expect(await fleetOn("2.0.0"), "fleet is not back on 2.0.0");
          return `${r.release.id} failed (${r.reason}); fleet back on 2.0.0`;
        });
        await step("blue-green v4", async () => {
          ws.release("4.0.0");
          await bakeNow();
          const r = await deployNow("blue-green");
          expect(r.outcome === "live", `v4 did not go live: ${r.reason}`);
          expect(await fleetOn("4.0.0"), "fleet is not all on 4.0.0");
          const warm = (await status()).instances.filter((i) => i.routing === "standby" && i.version === "2.0.0");
          expect(warm.length === 3, `expected 3 warm v2 instances, found ${warm.length}`);
          return `${r.release.id} live; 3 v2 instances kept warm`;
        });
        await step("instant rollback", async () => {
          const warm = new Set((await status()).instances.filter((i) => i.routing === "standby").map((i) => i.id));
          const r = await rollbackAndWatch(ctx.client);
          const flipMs = r.ms;
          expect(r.outcome === "live", `rollback did not finish: ${r.reason}`);
          const serving = (await status()).instances.filter((i) => i.inRotation);
          expect(serving.length === 3 && serving.every((i) => warm.has(i.id)), "traffic is not on the warm v2 fleet");
          return `traffic back on the warm v2 fleet in ${flipMs} ms, no new instance`;
        });
        await step("slow canary v5 → analysis aborts it", async () => {
          // Healthy, but every request takes 1.5 s: only the proxy's per-release latency shows it.
          ws.release("5.0.0", true, { delayMs: 1500 });
          await bakeNow();
          const r = await deployNow("canary");
          expect(r.outcome === "rolled-back", `expected the analysis to abort the canary, got ${r.outcome}`);
          expect(/p99/.test(r.reason ?? ""), `expected a latency breach, got: ${r.reason}`);
          expect(await fleetOn("2.0.0"), "fleet is not back on 2.0.0");
          return `${r.release.id} aborted by analysis (${r.reason}); all traffic back on 2.0.0`;
        });
        await step("canary v6 → promoted", async () => {
          ws.release("6.0.0");
          await bakeNow();
          const r = await deployNow("canary");
          expect(r.outcome === "live", `v6 did not go live: ${r.reason}`);
          expect(await fleetOn("6.0.0"), "fleet is not all on 6.0.0");
          return `${r.release.id} live after 34 % and 67 % steps passed analysis`;
        });
        await step("kill an instance → healed", async () => {
          const k = await killAndHeal(ctx.client, provider);
          expect(k.healed, "the fleet was not healed within 60 s");
          return `${k.victim} killed; replaced from v6`;
        });
      } finally {
        const totals = await recorder.stopLoad();
        if (!opts.keep) await stopDaemons({ paths: ctx.paths, home: ctx.home, service: ctx.loaded.service, provider, swarm: ctx.loaded.spec.swarm });
        const failedSteps = steps.filter((s) => s.outcome !== "ok").length;
        const result = {
          steps: steps.map(({ name, outcome, durationMs, requests, failed, detail }) => ({ name, outcome, durationMs, requests, failed, detail })),
          totals: { requests: totals?.requests ?? 0, failed: totals?.failed ?? 0 },
          counter: { max: totals?.maxCounter ?? null, wentBackwards: totals?.counterWentBackwards ?? false },
          workspace: ws.dir,
          provider,
        };
        if (opts.json) printJson(result);
        else {
          const t = table(["step", "outcome", "duration", "requests", "failed"]);
          for (const s of result.steps) t.push([s.name, s.outcome, `${(s.durationMs / 1000).toFixed(1)} s`, s.requests, s.failed]);
          t.push(["total", failedSteps ? `${failedSteps} failed` : "ok", "", result.totals.requests, result.totals.failed]);
          out(t.toString());
          out(`counter: max ${result.counter.max ?? "-"}, ${result.counter.wentBackwards ? "WENT BACKWARDS" : "never went backwards"}`);
        }
        process.exitCode = failedSteps === 0 && result.totals.failed === 0 && !result.counter.wentBackwards ? 0 : 1;
      }
    });
}

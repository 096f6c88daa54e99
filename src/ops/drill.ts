// `kiln drill`: the seed's rehearsal on the user's own service, in one environment — bake, deploy,
// a rolling replacement, a bad release rolled back by itself, blue-green, an instant rollback, an
// instance killed and healed — under continuous load on a path the user names. Every release is
// the same image: the replacements differ only by a marker variable (`KILN_DRILL`), and the bad
// release by a NODE_OPTIONS that makes Node exit at start, so nothing of the user's image changes.
// (Not a health path nothing answers: the router health-checks every instance with the rollout
// target's health settings, so the good fleet would fail those checks too and drop requests.)
// The environment ends on the release `kiln deploy` would make (same digest, config hash and env
// values), and the result is recorded against it so `kiln promote-release` can require it.

import { randomBytes } from "node:crypto";
import type { DeployRequest } from "../controller/types.js";
import { KilnError } from "../errors.js";
import { bake, openStore } from "../image/index.js";
import { StateDb, type DrillRecord } from "../state/db.js";
import { chooseProvider, chooseRouter, startDaemons } from "./daemons.js";
import { buildDeployRequest } from "./deploy-flow.js";
import { recipeOf } from "./recipe.js";
import { deployAndWatch, expect, fleetServes, killAndHeal, rollbackAndWatch, StepRecorder, type RehearsalStep } from "./rehearsal.js";
import type { Workspace } from "./workspace.js";

/**
 * The env variable that tells the drill's intermediate releases apart. Not in kiln's reserved
 * `_kiln_` namespace, which providers refuse to pass to an instance; the release the drill ends
 * on has the service's own env values only.
 */
export const DRILL_MARKER = "KILN_DRILL";
/** What makes the bad release's Node process exit at start: a module that does not exist, required first. */
export const FAILING_NODE_OPTIONS = "--require=/_kiln_drill/exit-at-start.js";

export interface DrillReport {
  schemaVersion: 1;
  id: string;
  service: string;
  environment: string | null;
  /** the release the drill tested and left live: what promotion takes */
  release: { id?: string; ref: string; digest: string; configHash: string };
  target: string;
  passed: boolean;
  startedAt: string;
  durationMs: number;
  steps: RehearsalStep[];
  totals: { requests: number; failed: number };
  /** why the drill did not pass, in one sentence, when it did not */
  reason?: string;
}

/**
 * Where the drill's load goes: the environment's listen port over loopback. A listen address that
 * is not loopback or a wildcard cannot be reached that way: the drill refuses it.
 *
 *   ("127.0.0.1:8080", "/") → "http://127.0.0.1:8080/"     ("0.0.0.0:80", "/api") → "http://127.0.0.1:80/api"
 *   ("[::]:8080", "/") → "http://[::1]:8080/"              ("localhost:8080", "/x?y=1") → "http://127.0.0.1:8080/x?y=1"
 *   ("10.0.0.5:8080", "/") → undefined
 */
export function loadTarget(listen: string, path: string): string | undefined {
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(listen);
  if (!m) return undefined;
  const host = m[1]!.toLowerCase();
  const port = m[2]!;
  const v4 = host === "localhost" || host === "0.0.0.0" || /^127\.\d+\.\d+\.\d+$/.test(host);
  const v6 = host === "[::]" || host === "[::1]";
  if (!v4 && !v6) return undefined;
  return `http://${v4 ? "127.0.0.1" : "[::1]"}:${port}${path}`;
}

/** One release of the drill: the real one with a marker (or a changed health path, or strategy). */
function variant(base: DeployRequest, marker: string | undefined, patch: { env?: Record<string, string>; strategy?: "rolling" | "blue-green" } = {}): DeployRequest {
  const env = { ...base.spec.env, ...patch.env };
  if (marker !== undefined) env[DRILL_MARKER] = marker;
  const strategy = structuredClone(base.spec.strategy);
  // The rehearsal needs what it rehearses: an automatic rollback, a blue-green switch without a
  // manual gate, and the previous fleet kept warm long enough for the instant rollback.
  strategy.rolling.autoRollback = true;
  strategy.blueGreen.autoRollback = true;
  strategy.blueGreen.promotion = "auto";
  strategy.blueGreen.keepPreviousFor = Math.max(strategy.blueGreen.keepPreviousFor, 5 * 60_000);
  return {
    ...base,
    spec: { ...base.spec, env, strategy },
    strategy: patch.strategy ?? "rolling",
  };
}

export interface DrillOptions {
  /** the path the load generator requests, e.g. "/" */
  path: string;
  concurrency?: number;
  say?: (line: string) => void;
  now?: () => number;
}

export async function runDrill(ws: Workspace, opts: DrillOptions): Promise<DrillReport> {
  const { loaded } = ws;
  const spec = loaded.spec;
  const where = loaded.environment ? `environment ${loaded.environment}` : "the service";
  if (spec.provider === "swarm") {
    throw new KilnError("KILN_E_USAGE", `kiln drill does not drive provider swarm (${where})`, { hint: "Swarm performs its rollouts itself; drill an environment whose provider is local or docker" });
  }
  if (!opts.path.startsWith("/")) throw new KilnError("KILN_E_USAGE", `--path must start with "/", got ${JSON.stringify(opts.path)}`, { hint: "e.g. kiln drill --path /" });
  const target = loadTarget(spec.listen, opts.path);
  if (!target) {
    throw new KilnError("KILN_E_USAGE", `kiln drill sends its load over loopback, but ${where} listens on ${spec.listen}`, {
      hint: "drill an environment that listens on 127.0.0.1, localhost, 0.0.0.0 or [::]",
    });
  }
  const now = opts.now ?? Date.now;
  const say = opts.say ?? (() => undefined);
  const startedAt = now();
  const id = `drill-${new Date(startedAt).toISOString().replace(/[-:.TZ]/g, "").slice(0, 14)}-${randomBytes(3).toString("hex")}`;
  const recorder = new StepRecorder(say);
  const provider = chooseProvider({ paths: ws.paths, spec: spec.provider });
  const router = chooseRouter({ paths: ws.paths, spec: spec.router });
  const client = ws.client;
  let base: DeployRequest | undefined;
  let final: { id?: string } = {};
  let reason: string | undefined;

  // Each step needs the fleet the one before left: after a failure the rest are skipped.
  const plan: Array<[string, () => Promise<string>]> = [
    [
      "bake",
      async () => {
        const r = await bake(recipeOf(loaded), { store: openStore(ws.home) });
        base = await buildDeployRequest(ws, undefined);
        return `${r.ref} ${r.digest.slice(0, 19)}${r.cached ? " (cached)" : ""}`;
      },
    ],
    [
      "deploy",
      async () => {
        const up = await startDaemons({ paths: ws.paths, specFile: loaded.file, environment: loaded.environment, listen: spec.listen, previewListen: spec.strategy.blueGreen.previewListen, home: ws.home, provider, router, edge: spec.edge, health: spec.health });
        const r = await deployAndWatch(client, variant(base!, "deploy"));
        expect(r.outcome === "live", `the first release did not go live: ${r.reason ?? r.outcome} — check that health.path (${spec.health.path}) answers 2xx on your service, and its logs (kiln logs${loaded.environment ? ` --env ${loaded.environment}` : ""})`);
        await recorder.startLoad({ url: target, concurrency: opts.concurrency ?? 4, durationMs: 20 * 60_000 });
        return `${r.release.id} live on ${spec.listen} (${up.alreadyUp ? "daemons already up" : "daemons started"}, provider ${provider}, router ${router}); load on ${target}`;
      },
    ],
    [
      "rolling replacement",
      async () => {
        const r = await deployAndWatch(client, variant(base!, undefined));
        expect(r.outcome === "live", `the replacement did not go live: ${r.reason ?? r.outcome}`);
        expect(fleetServes(await client.status(), (i) => i.release === r.release.id), `the fleet is not all on ${r.release.id}`);
        final = { id: r.release.id };
        return `${r.release.id} (the release kiln.yaml describes) live on every instance`;
      },
    ],
    [
      "bad release → automatic rollback",
      async () => {
        const r = await deployAndWatch(client, variant(base!, "bad", { env: { NODE_OPTIONS: FAILING_NODE_OPTIONS } }));
        expect(
          r.outcome === "rolled-back",
          r.outcome === "live"
            ? `the bad release went live: kiln makes it fail with NODE_OPTIONS=${FAILING_NODE_OPTIONS}, which the image's process does not read (is it not Node?)`
            : `expected an automatic rollback, got ${r.outcome}: ${r.reason}`,
        );
        expect(fleetServes(await client.status(), (i) => i.release === final.id), `the fleet is not back on ${final.id}`);
        return `${r.release.id} (exits at start) failed: ${r.reason}; fleet back on ${final.id}`;
      },
    ],
    [
      "blue-green",
      async () => {
        const r = await deployAndWatch(client, variant(base!, "blue-green", { strategy: "blue-green" }));
        expect(r.outcome === "live", `the blue-green release did not go live: ${r.reason ?? r.outcome}`);
        const s = await client.status();
        expect(fleetServes(s, (i) => i.release === r.release.id), `the fleet is not all on ${r.release.id}`);
        const warm = s.instances.filter((i) => i.routing === "standby" && i.release === final.id).length;
        expect(warm === s.desiredInstances, `expected ${s.desiredInstances} warm instances of ${final.id}, found ${warm}`);
        return `${r.release.id} live; ${warm} instances of ${final.id} kept warm`;
      },
    ],
    [
      "instant rollback",
      async () => {
        const warm = new Set((await client.status()).instances.filter((i) => i.routing === "standby").map((i) => i.id));
        const r = await rollbackAndWatch(client);
        expect(r.outcome === "live" && r.release.id === final.id, `the rollback did not return to ${final.id}: ${r.reason ?? r.outcome}`);
        const serving = (await client.status()).instances.filter((i) => i.inRotation);
        expect(serving.length > 0 && serving.every((i) => warm.has(i.id)), "traffic is not on the warm fleet (instances were replaced instead)");
        return `traffic back on ${final.id}'s warm fleet in ${r.ms} ms, no new instance`;
      },
    ],
    [
      "kill an instance → healed",
      async () => {
        const k = await killAndHeal(client, provider);
        expect(k.healed, `the fleet was not healed within 60 s of killing ${k.victim}`);
        return `${k.victim} killed; the fleet healed in ${k.ms} ms`;
      },
    ],
  ];

  let totals: { requests: number; failed: number } = { requests: 0, failed: 0 };
  try {
    let failedAt: string | undefined;
    for (const [name, fn] of plan) {
      if (failedAt !== undefined) recorder.skip(name, `${failedAt} failed`);
      else if (!(await recorder.step(name, fn))) failedAt = name;
    }
  } finally {
    const t = await recorder.stopLoad();
    if (t) totals = { requests: t.requests, failed: t.failed };
  }
  const steps = recorder.steps;
  const failedStep = steps.find((s) => s.outcome !== "ok");
  const lossy = steps.filter((s) => s.failed > 0);
  const passed = failedStep === undefined && totals.failed === 0;
  if (failedStep) reason = `${failedStep.name}: ${failedStep.detail}`;
  else if (totals.failed > 0) reason = `${totals.failed} of ${totals.requests} requests failed (${lossy.map((s) => `${s.name}: ${s.failed}`).join(", ") || "after the last step"})`;

  const release = { ...(final.id ? { id: final.id } : {}), ref: base?.ref ?? `${spec.name}:${spec.version}`, digest: base?.digest ?? "", configHash: loaded.configHash };
  const report: DrillReport = {
    schemaVersion: 1,
    id,
    service: loaded.service,
    environment: loaded.environment ?? null,
    release,
    target,
    passed,
    startedAt: new Date(startedAt).toISOString(),
    durationMs: now() - startedAt,
    steps,
    totals,
    ...(reason ? { reason } : {}),
  };
  // Recorded against the release it tested, when it got as far as knowing it.
  if (base) recordDrill(ws, report, startedAt, now());
  return report;
}

function recordDrill(ws: Workspace, r: DrillReport, startedAt: number, finishedAt: number): void {
  const db = new StateDb(ws.state?.location ?? ws.paths.stateDb);
  try {
    const rec: DrillRecord = {
      id: r.id,
      service: r.service,
      ...(r.environment ? { environment: r.environment } : {}),
      digest: r.release.digest,
      configHash: r.release.configHash,
      passed: r.passed,
      startedAt,
      finishedAt,
      report: r,
    };
    db.addDrill(rec);
  } finally {
    db.close();
  }
}

/** The report as Markdown for a pull request: a verdict, the release, one table row per step. */
export function drillMarkdown(r: DrillReport): string {
  const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");
  const lines = [
    `## kiln drill: ${r.passed ? "passed ✅" : "failed ❌"}`,
    "",
    `- service: \`${r.service}\`${r.environment ? `, environment \`${r.environment}\`` : ""}`,
    `- release: \`${r.release.ref}\`${r.release.id ? ` (${r.release.id})` : ""}, digest \`${r.release.digest || "-"}\`, config hash \`${r.release.configHash}\``,
    `- load: ${r.totals.requests} requests to ${r.target}, ${r.totals.failed} failed`,
    `- duration: ${(r.durationMs / 1000).toFixed(1)} s (started ${r.startedAt}, drill ${r.id})`,
    ...(r.reason ? [`- reason: ${cell(r.reason)}`] : []),
    "",
    "| step | outcome | duration | requests | failed | detail |",
    "|---|---|---:|---:|---:|---|",
    ...r.steps.map((s) => `| ${cell(s.name)} | ${s.outcome === "ok" ? "✅ ok" : s.outcome === "skipped" ? "⏭ skipped" : "❌ failed"} | ${(s.durationMs / 1000).toFixed(1)} s | ${s.requests} | ${s.failed} | ${cell(s.detail)} |`),
    "",
  ];
  return lines.join("\n");
}

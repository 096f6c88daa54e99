// `kiln promote-release --from staging --to production`: deploy to one environment the exact
// release (image digest and config hash) live in another. Nothing is re-baked or re-resolved from
// a tag: the source's live release row names the digest, and kiln.yaml's shared configuration
// must still hash to the source's config hash, so what production runs is what staging ran,
// plus only production's own overrides (instances, listen, provider, router, env, strategy).

import { existsSync } from "node:fs";
import { toReleaseSettings } from "../controller/release-settings.js";
import type { DeployRequest } from "../controller/types.js";
import { formatDuration } from "../config/index.js";
import type { PromotionSpec } from "../config/types.js";
import { KilnError } from "../errors.js";
import { StateDb, type DrillRecord, type PromotedFrom, type Release, type RolloutRecord } from "../state/db.js";
import { openWorkspace, type Workspace } from "./workspace.js";

/** What the source environment's state says, read once. */
export interface SourceFacts {
  environment: string;
  service: string;
  live?: Release;
  /** the rollout running in the source environment, if any */
  active?: RolloutRecord;
  /** drills of the live release (same digest and config hash), newest first */
  drills: DrillRecord[];
  /** when the live release last became live (its own go-live, or a later rollback to it); epoch ms */
  liveSince?: number;
}

export type PromotionCheck = { ok: true; release: Release } | { ok: false; reasons: string[] };

/**
 * Whether the source's live release may be promoted: every gate that fails is listed.
 * `configHash` is the shared configuration kiln.yaml hashes to now.
 *
 *   nothing live in staging                          → refused: "nothing is live in staging"
 *   staging's live r4 mid-rollout (r5 deploying)     → refused: "a rollout is running in staging"
 *   r4 live, kiln.yaml's shared config edited since  → refused: config hash differs
 *   r4 live, requireDrill, last drill of r4 failed   → refused: "no passed drill"
 *   r4 live 4 min, soak 10m                          → refused: "live for 4m, soak is 10m"
 *   r4 live 12 min, drill passed, hash equal         → ok: promote r4
 */
export function checkPromotion(src: SourceFacts, policy: PromotionSpec, configHash: string, now: number): PromotionCheck {
  const reasons: string[] = [];
  const live = src.live;
  if (!live || live.status !== "live") return { ok: false, reasons: [`nothing is live in ${src.environment}: deploy there first (kiln deploy --env ${src.environment})`] };
  if (src.active) reasons.push(`a ${src.active.kind} is running in ${src.environment} (rollout ${src.active.id}, to ${src.active.target}): wait until it settles`);
  if (live.configHash !== configHash) {
    reasons.push(
      `${src.environment}'s live ${live.id} runs config ${live.configHash.slice(0, 19)}, but kiln.yaml's shared configuration now hashes to ${configHash.slice(0, 19)}: deploy the edited kiln.yaml to ${src.environment} first, so what is promoted is what ran there`,
    );
  }
  if (policy.requireDrill) {
    const last = src.drills[0];
    if (!src.drills.some((d) => d.passed)) {
      reasons.push(
        last
          ? `promotion.requireDrill: the drill of ${live.id} in ${src.environment} did not pass (${new Date(last.finishedAt).toISOString()}): run \`kiln drill --env ${src.environment}\` until it does`
          : `promotion.requireDrill: ${live.id} (${live.digest.slice(0, 19)}) has no drill in ${src.environment}: run \`kiln drill --env ${src.environment}\``,
      );
    }
  }
  if (policy.soak !== undefined) {
    const since = src.liveSince ?? live.liveAt ?? now;
    const age = Math.max(0, now - since);
    if (age < policy.soak) reasons.push(`promotion.soak: ${live.id} has been live in ${src.environment} for ${formatDuration(age)}, the soak is ${formatDuration(policy.soak)}: wait ${formatDuration(policy.soak - age)}`);
  }
  return reasons.length ? { ok: false, reasons } : { ok: true, release: live };
}

/** The source environment's facts from its state database (it may be stopped: state is the record). */
export function readSourceFacts(ws: Workspace): SourceFacts {
  const environment = ws.loaded.environment!;
  const service = ws.loaded.service;
  const location = ws.state?.location ?? ws.paths.stateDb;
  if (ws.state?.backend !== "postgres" && !existsSync(location)) return { environment, service, drills: [] };
  const db = new StateDb(location);
  try {
    const liveId = db.getFact(service, "live");
    const live = liveId ? db.getRelease(liveId) : undefined;
    const active = db.activeRollout(service);
    const drills = live ? db.drills(service, { digest: live.digest, configHash: live.configHash }) : [];
    // A rollback back to the live release restarts its soak: it was not live in between.
    const rolledBackTo = live ? db.listRollouts(service).filter((r) => r.kind === "rollback" && r.target === live.id && r.state === "done" && r.finishedAt !== undefined) : [];
    const liveSince = Math.max(live?.liveAt ?? 0, ...rolledBackTo.map((r) => r.finishedAt!)) || undefined;
    return { environment, service, live, active, drills, liveSince };
  } finally {
    db.close();
  }
}

export interface PromotionPlan {
  source: SourceFacts & { live: Release };
  target: Workspace;
  request: DeployRequest;
}

/**
 * Check the gates and build the target's deploy request, or throw (exit 2) naming every gate that
 * is not met. Nothing is changed here.
 */
export function planPromotion(file: string, from: string | undefined, to: string, now = Date.now()): PromotionPlan {
  const target = openWorkspace(file, to);
  const envs = target.loaded.environments;
  if (envs.length < 2) throw new KilnError("KILN_E_USAGE", "promote-release needs two environments in kiln.yaml", { hint: "declare `environments:` (e.g. staging and production) in kiln.yaml" });
  const fromName = from ?? envs[envs.indexOf(to) - 1];
  if (fromName === undefined) throw new KilnError("KILN_E_USAGE", `${to} is the first environment: there is none before it to promote from`, { hint: `name the source: kiln promote-release --from ENV --to ${to}` });
  const source = openWorkspace(file, fromName);
  if (source.loaded.environment === target.loaded.environment) throw new KilnError("KILN_E_USAGE", `--from and --to are both ${to}`, { hint: "promote from one environment to another, e.g. --from staging --to production" });
  // Both workspaces read the same kiln.yaml: its shared part hashes the same for both.
  const facts = readSourceFacts(source);
  const check = checkPromotion(facts, target.loaded.spec.promotion, target.loaded.configHash, now);
  if (!check.ok) {
    throw new KilnError("KILN_E_POLICY", `cannot promote from ${fromName} to ${to}`, {
      details: check.reasons.map((message) => ({ where: fromName, message })),
      hint: "nothing was changed",
    });
  }
  const rel = check.release;
  const promotedFrom: PromotedFrom = { environment: fromName, service: facts.service, release: rel.id, digest: rel.digest, configHash: rel.configHash };
  return {
    source: { ...facts, live: rel },
    target,
    request: {
      ref: rel.ref,
      version: rel.version,
      digest: rel.digest,
      configHash: rel.configHash,
      // The target's own overrides apply (instances, env values, strategy): its effective kiln.yaml.
      spec: toReleaseSettings(target.loaded.spec),
      promotedFrom,
    },
  };
}

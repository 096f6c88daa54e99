// The deploy policy (kiln.yaml `policy`): which supply-chain facts an image
// must show before kiln deploys it. evaluatePolicy is pure — facts and the
// clock come in — and gatherPolicyFacts reads them from the store (signatures
// verified with gpg, the SBOM, the runtime label, the created time).

import type { PolicySpec } from "../config/types.js";
import { KilnError } from "../errors.js";
import { readImage } from "./images.js";
import { nodeSupport } from "./node-releases.js";
import { listReferrers } from "./referrers.js";
import { RUNTIME_LABEL } from "./runtime.js";
import { SBOM_MEDIA_TYPE } from "./sbom.js";
import { checkSignatures, type SignatureCheck } from "./sign.js";
import type { Store } from "./store.js";
import { ANNOTATION } from "./types.js";

export type PolicyRule = "signedBy" | "requireSbom" | "runtimeSupported" | "maxImageAgeDays";

export interface PolicyFacts {
  digest: string;
  /** signatures checked against the policy's keys (undefined when no key is required) */
  signatures?: SignatureCheck;
  hasSbom: boolean;
  runtime?: { name: string; version: string };
  /** ISO 8601 */
  created?: string;
}

export interface RuleResult {
  rule: PolicyRule;
  ok: boolean;
  reason: string;
}

export interface PolicyVerdict {
  ok: boolean;
  digest: string;
  /** one row per rule the policy sets; none when the policy is empty */
  rules: RuleResult[];
}

const days = (ms: number) => `${(ms / 86_400_000).toFixed(ms < 86_400_000 * 10 ? 1 : 0)} days`;

/**
 * The verdict of `policy` on an image's facts at `now`. Only the rules the
 * policy sets are judged.
 *
 * - signedBy [A], a signature by A accepted           → signedBy ok "signed by A for REG/REPO:TAG"
 * - signedBy [A], no signature                        → signedBy fails "the image carries no signature"
 * - signedBy [A], only a signature by B (rejected)    → signedBy fails "no signature by a trusted key (…: signed by a key that is not trusted)"
 * - requireSbom, no SBOM                              → requireSbom fails
 * - runtimeSupported, node 20.20.2 on 2026-12-02      → fails "node 20.20.2 reached its end of life on 2026-04-30"
 * - maxImageAgeDays 30, created 40 days before now   → fails "created 40 days ago … (limit 30 days)"
 * - an empty policy                                   → ok, no rules
 */
export function evaluatePolicy(policy: PolicySpec, facts: PolicyFacts, now: Date): PolicyVerdict {
  const rules: RuleResult[] = [];
  if (policy.signedBy.length > 0) {
    const s = facts.signatures ?? { accepted: [], rejected: [] };
    const good = s.accepted.find((a) => policy.signedBy.includes(a.fingerprint));
    if (good) rules.push({ rule: "signedBy", ok: true, reason: `signed by ${good.fingerprint} for ${good.identity}` });
    else if (s.rejected.length === 0) rules.push({ rule: "signedBy", ok: false, reason: `the image carries no signature; required: one by ${policy.signedBy.join(" or ")}` });
    else rules.push({ rule: "signedBy", ok: false, reason: `no signature by a trusted key (${s.rejected.map((r) => `${r.artifact.slice(0, 19)}…: ${r.reason}`).join("; ")}); required: one by ${policy.signedBy.join(" or ")}` });
  }
  if (policy.requireSbom) {
    rules.push(facts.hasSbom ? { rule: "requireSbom", ok: true, reason: "the image carries its SBOM" } : { rule: "requireSbom", ok: false, reason: "the image carries no SBOM (bake it with this kiln, or pull it with its referrers)" });
  }
  if (policy.runtimeSupported) {
    if (!facts.runtime) rules.push({ rule: "runtimeSupported", ok: false, reason: "the image records no runtime (dev.kiln.runtime.* labels), so its support cannot be checked" });
    else {
      const s = nodeSupport(facts.runtime.version, now.toISOString().slice(0, 10));
      const what = `${facts.runtime.name} ${facts.runtime.version}`;
      if (s.status === "end-of-life") rules.push({ rule: "runtimeSupported", ok: false, reason: `${what} reached its end of life on ${s.endOfLife}` });
      else if (s.status === "unknown") rules.push({ rule: "runtimeSupported", ok: false, reason: `${what}: kiln has no end-of-life date for this release line` });
      else rules.push({ rule: "runtimeSupported", ok: true, reason: `${what} is supported until ${s.endOfLife}` });
    }
  }
  if (policy.maxImageAgeDays !== undefined) {
    const limit = policy.maxImageAgeDays * 86_400_000;
    const created = facts.created === undefined ? NaN : Date.parse(facts.created);
    if (Number.isNaN(created)) rules.push({ rule: "maxImageAgeDays", ok: false, reason: "the image records no created time" });
    else {
      const age = now.getTime() - created;
      rules.push(
        age <= limit
          ? { rule: "maxImageAgeDays", ok: true, reason: `created ${days(Math.max(0, age))} ago (limit ${days(limit)})` }
          : { rule: "maxImageAgeDays", ok: false, reason: `created ${days(age)} ago, on ${facts.created} (limit ${days(limit)}): bake it again` },
      );
    }
  }
  return { ok: rules.every((r) => r.ok), digest: facts.digest, rules };
}

/** Whether the policy sets any rule (an empty one costs no I/O). */
export function policyIsEmpty(policy: PolicySpec): boolean {
  return policy.signedBy.length === 0 && !policy.requireSbom && !policy.runtimeSupported && policy.maxImageAgeDays === undefined;
}

/**
 * The facts the policy needs, from the store. `pulledFrom`: the image came
 * from this registry repository, and only signatures for it count.
 */
export async function gatherPolicyFacts(store: Store, digest: string, policy: PolicySpec, keyring: string, pulledFrom?: { registry: string; repository: string }): Promise<PolicyFacts> {
  const { manifest, config } = await readImage(store, digest);
  const labels = config.config?.Labels ?? {};
  const facts: PolicyFacts = { digest, hasSbom: (await listReferrers(store, digest, SBOM_MEDIA_TYPE)).length > 0 };
  const created = (manifest as { annotations?: Record<string, string> }).annotations?.[ANNOTATION.created] ?? config.created;
  if (created) facts.created = created;
  const rv = labels[RUNTIME_LABEL.version];
  if (rv) facts.runtime = { name: labels[RUNTIME_LABEL.name] ?? "node", version: rv };
  if (policy.signedBy.length > 0) facts.signatures = await checkSignatures(store, digest, keyring, policy.signedBy, pulledFrom);
  return facts;
}

/** Refuse a deploy the verdict fails: KILN_E_POLICY (exit 2) naming each failed rule and why. */
export function assertPolicy(verdict: PolicyVerdict, ref: string): void {
  if (verdict.ok) return;
  const failed = verdict.rules.filter((r) => !r.ok);
  throw new KilnError("KILN_E_POLICY", `${ref} fails the deploy policy: ${failed.map((r) => `${r.rule}: ${r.reason}`).join("; ")}`, {
    hint: failed.some((r) => r.rule === "signedBy") ? "sign it (kiln sign) with a key kiln.yaml policy.signedBy names, or deploy an image that is" : "fix the image (bake again) or the policy in kiln.yaml",
    details: failed.map((r) => ({ where: verdict.digest, path: `policy.${r.rule}`, message: r.reason })),
  });
}

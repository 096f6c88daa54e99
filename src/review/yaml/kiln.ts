// kiln.yaml: loaded with the spec module's own parser (so defaults are exactly kiln's),
// located with the YAML tree. kiln's rollout arithmetic already avoids the surge rounding
// trap (rollout/capacity.ts gives any max above 100% at least one surge instance), so KR012
// does not apply here; the other replacement rules do.

import { parseSpec, type Spec } from "../../config/index.js";
import { underMount, varLibPaths } from "../common/located-checks.js";
import { isSecretName, looksLikeLiteralSecret } from "../common/secrets.js";
import { entry, get, type LNode } from "../located.js";
import type { Pos, RawFinding } from "../types.js";

export type KilnCheck = { findings: RawFinding[] } | { error: { where: string; message: string } };

export function checkKiln(text: string, file: string, doc: LNode | undefined): KilnCheck {
  const r = parseSpec(text, file);
  if ("errors" in r) {
    const e = r.errors[0]!;
    return { error: { where: e.where, message: `${e.path ? `${e.path}: ` : ""}${e.message}${r.errors.length > 1 ? ` (and ${r.errors.length - 1} more; run kiln validate -f ${file})` : ""}` } };
  }
  const spec = r.spec;
  // Where a key is written, falling back to its nearest written ancestor (defaults are not written).
  const at = (...path: string[]): Pos => {
    for (let n = path.length; n > 0; n--) {
      const e = entry(get(doc, ...path.slice(0, n - 1)), path[n - 1]!);
      if (e) return n === path.length ? e.value.pos : e.keyPos;
    }
    return { line: 1, col: 1 };
  };
  return { findings: rules(spec, at) };
}

function rules(spec: Spec, at: (...path: string[]) => Pos): RawFinding[] {
  const out: RawFinding[] = [];
  const { rolling, blueGreen } = spec.strategy;
  if (spec.strategy.type === "rolling") {
    if (rolling.minHealthyPercent < 50) {
      out.push({
        ruleId: "KR010",
        pos: at("strategy", "rolling", "minHealthyPercent"),
        message: `minHealthyPercent ${rolling.minHealthyPercent} lets a rollout take ${rolling.minHealthyPercent === 0 ? "every instance" : "most instances"} out of service at once`,
      });
    }
    if (rolling.maxHealthyPercent === 100) {
      const msg =
        rolling.minHealthyPercent === 100
          ? "maxHealthyPercent 100 with minHealthyPercent 100 leaves no room: the rollout must drop below full capacity, one instance at a time, to replace anything"
          : spec.instances === 1
            ? "maxHealthyPercent 100 with 1 instance: the only instance is stopped before its replacement is healthy, so every deploy is an outage"
            : "maxHealthyPercent 100: no new instance starts before an old one stops, so every replacement reduces capacity";
      out.push({ ruleId: "KR011", pos: at("strategy", "rolling", "maxHealthyPercent"), message: msg, fix: "set maxHealthyPercent: 200 (or at least 100 + 100/instances) so a replacement starts and passes its health checks first" });
    }
    if (rolling.instanceWarmup === 0) {
      out.push({ ruleId: "KR013", pos: at("strategy", "rolling", "instanceWarmup"), message: "instanceWarmup 0: a new instance replaces an old one the moment it first passes a health check" });
    }
    if (!rolling.autoRollback) {
      out.push({ ruleId: "KR014", pos: at("strategy", "rolling", "autoRollback"), message: "autoRollback false: a failed rollout leaves the fleet split between two releases" });
    }
  } else {
    if (blueGreen.keepPreviousFor === 0) {
      out.push({ ruleId: "KR019", pos: at("strategy", "blueGreen", "keepPreviousFor"), message: "keepPreviousFor 0: the blue fleet is stopped at the moment of promotion, so a rollback needs a full new rollout" });
    }
    if (!blueGreen.autoRollback) {
      out.push({ ruleId: "KR014", pos: at("strategy", "blueGreen", "autoRollback"), message: "autoRollback false: a green fleet that fails is left in place" });
    }
  }
  if (spec.drainTimeout === 0) {
    out.push({ ruleId: "KR018", pos: at("drainTimeout"), message: "drainTimeout 0: an instance is stopped without letting its in-flight requests finish" });
  }
  const mounts = spec.volumes.map((v) => v.path);
  for (const [scope, env] of [["env", spec.env], ["image.env", spec.image.env]] as const) {
    for (const [k, v] of Object.entries(env)) {
      const path = scope === "env" ? ["env", k] : ["image", "env", k];
      if (isSecretName(k) && looksLikeLiteralSecret(v)) {
        out.push({
          ruleId: "KR062",
          pos: at(...path),
          message: scope === "image.env" ? `${k} is a literal secret baked into the image config` : `${k} is a literal secret in kiln.yaml`,
        });
      }
      for (const p of varLibPaths(v)) {
        if (!underMount(p, mounts)) out.push({ ruleId: "KR053", pos: at(...path), message: `${k}=${v} points under ${p}, which no declared volume covers: the data is lost when the instance is replaced` });
      }
    }
  }
  return out;
}

// EC2 Auto Scaling instance refresh preferences, shared by CloudFormation, Terraform and
// `aws autoscaling start-instance-refresh`. Defaults per the RefreshPreferences API:
// MinHealthyPercentage 90, no MaxHealthyPercentage (terminate first), InstanceWarmup from
// the group, AutoRollback false.

import { entry, num, bool, type LNode } from "../located.js";
import type { Pos, RawFinding } from "../types.js";

export interface RefreshContext {
  /** how the preferences are written, for messages */
  where: string;
  style: "cli" | "cfn" | "tf";
  /** true when the group has a warm-up of its own (DefaultInstanceWarmup / HealthCheckGracePeriod > 0); undefined when unknown */
  defaultWarmup: boolean | undefined;
  /** the group's desired (or minimum) capacity, when literal */
  desired?: number;
  /** where to report a missing preferences block */
  at?: Pos;
  /** CloudFormation's AutoScalingInstanceRefresh update policy has no AutoRollback: a failed refresh fails the stack update, which CloudFormation rolls back */
  rollbackElsewhere?: boolean;
}

const NAMES = {
  min: { cli: "MinHealthyPercentage", cfn: "MinHealthyPercentage", tf: "min_healthy_percentage" },
  max: { cli: "MaxHealthyPercentage", cfn: "MaxHealthyPercentage", tf: "max_healthy_percentage" },
  warmup: { cli: "InstanceWarmup", cfn: "InstanceWarmup", tf: "instance_warmup" },
  rollback: { cli: "AutoRollback", cfn: "AutoRollback", tf: "auto_rollback" },
} as const;

export function checkRefreshPreferences(prefs: LNode | undefined, ctx: RefreshContext): RawFinding[] {
  const out: RawFinding[] = [];
  const e = (k: keyof typeof NAMES) => entry(prefs, NAMES[k][ctx.style]);
  const n = (k: keyof typeof NAMES) => NAMES[k][ctx.style];
  const here = prefs?.pos ?? ctx.at ?? { line: 1, col: 1 };
  const minE = e("min");
  const maxE = e("max");
  const min = num(minE?.value);
  const max = num(maxE?.value);
  if (min !== undefined && min < 50) {
    out.push({
      ruleId: "KR010",
      pos: minE!.value.pos,
      message: `${n("min")} ${min} lets the instance refresh take ${min === 0 ? "the whole fleet" : `${100 - min}% of the fleet`} out of service at once`,
    });
  }
  if (min === 100 && max === undefined) {
    out.push({
      ruleId: "KR011",
      pos: minE!.value.pos,
      message: `${n("min")} 100 without ${n("max")}: the refresh terminates an instance before launching its replacement, one instance at a time`,
      fix: `add ${n("max")} 200 (or at least 110 for large groups) so replacements launch before old instances terminate`,
    });
  }
  if (max !== undefined && max > 100 && ctx.desired !== undefined && ctx.desired > 0 && Math.floor((ctx.desired * (max - 100)) / 100) === 0) {
    out.push({
      ruleId: "KR012",
      pos: maxE!.value.pos,
      message: `${n("max")} ${max} of a desired capacity of ${ctx.desired} is ${((ctx.desired * max) / 100).toFixed(2).replace(/\.?0+$/, "")} instances, which rounds down to ${ctx.desired}: no surge instance is launched and the refresh terminates first`,
    });
  }
  const warmE = e("warmup");
  const warm = num(warmE?.value);
  if (warmE && warm === 0) {
    out.push({ ruleId: "KR013", pos: warmE.value.pos, message: `${n("warmup")} 0: a new instance counts as ready the moment it passes its first health check` });
  } else if (!warmE && ctx.defaultWarmup === false) {
    out.push({
      ruleId: "KR013",
      pos: here,
      message: `no ${n("warmup")}, and the group has no DefaultInstanceWarmup or HealthCheckGracePeriod: new instances count as ready immediately`,
    });
  }
  const rbE = e("rollback");
  if (ctx.rollbackElsewhere) return out;
  if (rbE && bool(rbE.value) === false) {
    out.push({ ruleId: "KR014", pos: rbE.value.pos, message: `${n("rollback")} is false: a failed refresh leaves the group half on the new launch template` });
  } else if (!rbE) {
    out.push({ ruleId: "KR014", pos: here, message: `${ctx.where} does not set ${n("rollback")}, which defaults to false: a failed refresh is not rolled back` });
  }
  return out;
}

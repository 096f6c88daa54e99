// CloudFormation (YAML with short-form tags, or JSON): Auto Scaling groups and their update
// policies, launch templates, security groups, target groups, ECS services and task
// definitions, CodeDeploy blue/green, parameters.

import { checkImageRef } from "../common/image-ref.js";
import { containerScript, runtimeScriptFindings, scanSecrets, scriptMap } from "../common/located-checks.js";
import { checkRefreshPreferences } from "../common/refresh.js";
import { isSecretName, looksLikeLiteralSecret } from "../common/secrets.js";
import { bool, entries, entry, get, items, num, str, type LNode } from "../located.js";
import type { RawFinding } from "../types.js";

export function checkCloudFormation(doc: LNode, lineStartCol: (line: number) => number): RawFinding[] {
  const out: RawFinding[] = [...scanSecrets(doc)];
  for (const p of entries(get(doc, "Parameters"))) {
    const def = entry(p.value, "Default");
    const v = str(def?.value);
    if (isSecretName(p.key) && def && v !== undefined && looksLikeLiteralSecret(v)) {
      out.push({ ruleId: "KR062", pos: def.value.pos, message: `parameter ${p.key} has a literal default secret, visible to anyone who can read the template` });
    }
  }
  for (const r of entries(get(doc, "Resources"))) {
    const type = str(get(r.value, "Type")) ?? "";
    const props = get(r.value, "Properties");
    const at = r.keyPos;
    switch (type) {
      case "AWS::AutoScaling::AutoScalingGroup":
        out.push(...autoScalingGroup(r.key, r.value, props, at));
        break;
      case "AWS::EC2::LaunchTemplate":
        out.push(...instanceData(get(props, "LaunchTemplateData"), `launch template ${r.key}`, lineStartCol));
        break;
      case "AWS::AutoScaling::LaunchConfiguration":
      case "AWS::EC2::Instance":
        out.push(...instanceData(props, `${type === "AWS::EC2::Instance" ? "instance" : "launch configuration"} ${r.key}`, lineStartCol));
        break;
      case "AWS::EC2::SecurityGroup":
        for (const rule of items(get(props, "SecurityGroupIngress"))) out.push(...ingress(rule));
        break;
      case "AWS::EC2::SecurityGroupIngress":
        if (props) out.push(...ingress(props));
        break;
      case "AWS::ElasticLoadBalancingV2::TargetGroup":
        for (const a of items(get(props, "TargetGroupAttributes"))) {
          if (str(get(a, "Key")) === "deregistration_delay.timeout_seconds" && num(get(a, "Value")) === 0) {
            out.push({ ruleId: "KR018", pos: get(a, "Value")!.pos, message: `target group ${r.key} has a deregistration delay of 0: in-flight requests are cut when a target is removed` });
          }
        }
        break;
      case "AWS::ECS::Service":
        out.push(...ecsService(r.key, props, at));
        break;
      case "AWS::ECS::TaskDefinition":
        for (const c of items(get(props, "ContainerDefinitions"))) {
          const img = get(c, "Image");
          const s = str(img) ?? (img?.tag === "!Sub" && img.kind === "scalar" ? String(img.value) : undefined);
          if (img && s !== undefined) out.push(...checkImageRef(s, img.pos));
          const script = containerScript(get(c, "EntryPoint"), get(c, "Command"));
          if (script) out.push(...runtimeScriptFindings(script.text, scriptMap(script.node), `container ${str(get(c, "Name")) ?? ""} in ${r.key}`.replace("  ", " ")));
        }
        break;
      case "AWS::CodeDeploy::DeploymentGroup":
        out.push(...codeDeploy(r.key, props, at));
        break;
    }
  }
  return out;
}

function autoScalingGroup(name: string, res: LNode, props: LNode | undefined, at: { line: number; col: number }): RawFinding[] {
  const out: RawFinding[] = [];
  const desired = num(get(props, "DesiredCapacity")) ?? num(get(props, "MinSize"));
  const hasLB = get(props, "TargetGroupARNs") !== undefined || get(props, "LoadBalancerNames") !== undefined;
  const hct = entry(props, "HealthCheckType");
  if (hasLB && (!hct || str(hct.value) === "EC2")) {
    out.push({
      ruleId: "KR021",
      pos: hct ? hct.value.pos : at,
      message: `${name} is behind a load balancer but uses ${hct ? "HealthCheckType EC2" : "the default HealthCheckType (EC2)"}: instances failing the load balancer's health check are never replaced`,
    });
  }
  const lt = get(props, "LaunchTemplate");
  const version = get(lt, "Version");
  const v = str(version);
  if (version && v !== undefined && /^\$(Latest|Default)$/.test(v)) {
    out.push({ ruleId: "KR024", pos: version.pos, message: `${name} launches "${v}" of its launch template, which moves whenever a version is created` });
  }
  const policy = get(res, "UpdatePolicy");
  const rolling = entry(policy, "AutoScalingRollingUpdate");
  const replacing = get(policy, "AutoScalingReplacingUpdate");
  const refresh = entry(policy, "AutoScalingInstanceRefresh");
  const warmup = num(get(props, "DefaultInstanceWarmup")) ?? 0;
  const grace = num(get(props, "HealthCheckGracePeriod")) ?? 0;
  if (refresh) {
    out.push(
      ...checkRefreshPreferences(get(refresh.value, "Preferences"), {
        where: `${name}'s AutoScalingInstanceRefresh`,
        style: "cfn",
        defaultWarmup: warmup > 0 || grace > 0,
        desired,
        at: refresh.keyPos,
        rollbackElsewhere: true,
      }),
    );
  }
  if ((lt || get(props, "LaunchConfigurationName") || get(props, "MixedInstancesPolicy")) && !rolling && !refresh && bool(get(replacing, "WillReplace")) !== true) {
    out.push({
      ruleId: "KR022",
      pos: at,
      message: `${name} has no UpdatePolicy: a new launch template version only reaches instances launched later, so the fleet keeps running the old image`,
    });
  }
  if (rolling) {
    const minE = entry(rolling.value, "MinInstancesInService");
    const min = minE ? num(minE.value) : 0;
    if (min !== undefined && (min === 0 ? desired === undefined || desired > 0 : desired !== undefined && min * 2 < desired)) {
      out.push({
        ruleId: "KR010",
        pos: minE ? minE.value.pos : rolling.keyPos,
        message: `${name}: ${minE ? `MinInstancesInService ${min}` : "MinInstancesInService is not set (0)"}${desired !== undefined ? ` of ${desired}` : ""} lets the rolling update take ${min === 0 ? "every instance" : "most instances"} out of service at once`,
        fix: `set MinInstancesInService to at least ${desired !== undefined ? Math.max(1, Math.ceil(desired * 0.9) === desired ? desired - 1 : Math.ceil(desired * 0.9)) : "your desired capacity minus one"} and MaxBatchSize 1`,
      });
    }
    if (bool(get(rolling.value, "WaitOnResourceSignals")) !== true) {
      out.push({
        ruleId: "KR020",
        pos: rolling.keyPos,
        message: `${name}'s AutoScalingRollingUpdate does not wait on resource signals: each batch counts as done when launched, healthy or not`,
      });
    }
  }
  const imp = entry(props, "InstanceMaintenancePolicy");
  if (imp) {
    const minE = entry(imp.value, "MinHealthyPercentage");
    const maxE = entry(imp.value, "MaxHealthyPercentage");
    const min = num(minE?.value);
    const max = num(maxE?.value);
    if (min !== undefined && min < 50) {
      out.push({ ruleId: "KR010", pos: minE!.value.pos, message: `${name}: MinHealthyPercentage ${min} lets replacements take ${min === 0 ? "the whole group" : `${100 - min}% of the group`} out of service at once` });
    }
    if (min === 100 && (max === undefined || max === 100)) {
      out.push({ ruleId: "KR011", pos: minE!.value.pos, message: `${name}: MinHealthyPercentage 100 with ${max === undefined ? "no MaxHealthyPercentage" : "MaxHealthyPercentage 100"} terminates before launching` });
    }
    if (max !== undefined && max > 100 && desired !== undefined && desired > 0 && Math.floor((desired * (max - 100)) / 100) === 0) {
      out.push({
        ruleId: "KR012",
        pos: maxE!.value.pos,
        message: `${name}: MaxHealthyPercentage ${max} of ${desired} instance${desired === 1 ? "" : "s"} rounds down to ${desired}: no replacement launches before an old instance terminates`,
      });
    }
  }
  // The seed article's shape: an InstanceRefresh block with Preferences next to the group's properties.
  const prefs = get(props, "InstanceRefresh", "Preferences") ?? get(res, "InstanceRefresh", "Preferences");
  if (prefs) {
    out.push(...checkRefreshPreferences(prefs, { where: `${name}'s refresh preferences`, style: "cfn", defaultWarmup: warmup > 0 || grace > 0, desired }));
  }
  return out;
}

const ROOT_DEVICES = new Set(["/dev/xvda", "/dev/sda1", "/dev/sda", "/dev/nvme0n1"]);

function instanceData(data: LNode | undefined, what: string, lineStartCol: (line: number) => number): RawFinding[] {
  const out: RawFinding[] = [];
  const key = entry(data, "KeyName");
  if (key) out.push({ ruleId: "KR041", pos: key.value.pos, message: `${what} attaches an SSH key pair (KeyName)` });
  for (const m of items(get(data, "BlockDeviceMappings"))) {
    const dev = str(get(m, "DeviceName"));
    if (dev === undefined || ROOT_DEVICES.has(dev) || !get(m, "Ebs")) continue;
    const del = bool(get(m, "Ebs", "DeleteOnTermination"));
    out.push({
      ruleId: "KR052",
      pos: get(m, "DeviceName")!.pos,
      message:
        del === false
          ? `${what} adds data volume ${dev} with DeleteOnTermination false: each replaced instance leaves an orphaned volume and its data behind`
          : `${what} adds data volume ${dev}, deleted with its instance: whatever is written there is lost at every replacement`,
    });
  }
  const ud = get(data, "UserData");
  if (ud) {
    const script = userDataScript(ud);
    if (script) out.push(...runtimeScriptFindings(script.text, scriptMap(script.node, lineStartCol), `user data of ${what}`));
  }
  return out;
}

/** The script inside Fn::Base64 / !Base64, !Sub, Fn::Sub [template, vars] or Fn::Join. */
function userDataScript(n: LNode): { text: string; node: LNode } | undefined {
  let cur: LNode | undefined = n;
  for (let guard = 0; guard < 5 && cur; guard++) {
    if (cur.kind === "scalar") return typeof cur.value === "string" ? { text: cur.value, node: cur } : undefined;
    if (cur.kind === "seq" && cur.tag === "!Sub") cur = cur.items[0];
    else if (cur.kind === "seq" && cur.tag === "!Join") return joined(cur.items[1], cur);
    else if (cur.kind === "map" && entry(cur, "Fn::Base64")) cur = get(cur, "Fn::Base64");
    else if (cur.kind === "map" && entry(cur, "Fn::Sub")) {
      const s: LNode | undefined = get(cur, "Fn::Sub");
      cur = s?.kind === "seq" ? s.items[0] : s;
    } else if (cur.kind === "map" && entry(cur, "Fn::Join")) return joined(get(cur, "Fn::Join", 1), cur);
    else return undefined;
  }
  return undefined;
}

function joined(parts: LNode | undefined, at: LNode): { text: string; node: LNode } | undefined {
  if (parts?.kind !== "seq") return undefined;
  // positions inside a joined list are approximate: report at the Join itself
  return { text: parts.items.map((p) => (p.kind === "scalar" && typeof p.value === "string" ? p.value : "X")).join(""), node: { kind: "map", pos: at.pos, entries: [] } };
}

function ingress(rule: LNode): RawFinding[] {
  const cidr = get(rule, "CidrIp") ?? get(rule, "CidrIpv6");
  const c = str(cidr);
  if (c !== "0.0.0.0/0" && c !== "::/0") return [];
  const proto = String(str(get(rule, "IpProtocol")) ?? "tcp");
  const from = num(get(rule, "FromPort"));
  const to = num(get(rule, "ToPort")) ?? from;
  const all = proto === "-1" || (from === -1 && to === -1);
  if (!all && !(proto === "tcp" || proto === "6")) return [];
  if (!all && !(from !== undefined && to !== undefined && from <= 22 && 22 <= to)) return [];
  return [{ ruleId: "KR040", pos: cidr!.pos, message: `ingress ${all ? "on every port" : from === to ? "on port 22" : `on ports ${from}–${to}`} from ${c} opens SSH to the whole internet` }];
}

function ecsService(name: string, props: LNode | undefined, at: { line: number; col: number }): RawFinding[] {
  const out: RawFinding[] = [];
  const dc = get(props, "DeploymentConfiguration");
  const minE = entry(dc, "MinimumHealthyPercent");
  const maxE = entry(dc, "MaximumPercent");
  const min = num(minE?.value);
  const max = num(maxE?.value);
  if (min !== undefined && min < 50) {
    out.push({ ruleId: "KR010", pos: minE!.value.pos, message: `${name}: MinimumHealthyPercent ${min} lets a deployment stop ${min === 0 ? "every task" : "most tasks"} before new ones are healthy` });
  }
  if (max === 100) {
    out.push({
      ruleId: "KR011",
      pos: maxE!.value.pos,
      message: `${name}: MaximumPercent 100 leaves no room to start new tasks first${min === 100 ? ", and with MinimumHealthyPercent 100 a deployment cannot start any" : ": old tasks stop before new ones are healthy"}`,
    });
  }
  const cb = get(dc, "DeploymentCircuitBreaker");
  const rb = bool(get(cb, "Rollback"));
  if (rb !== true) {
    out.push({
      ruleId: "KR014",
      pos: cb ? (get(cb, "Rollback")?.pos ?? cb.pos) : (dc?.pos ?? at),
      message: `${name}: ${cb ? "the deployment circuit breaker does not roll back" : "no DeploymentCircuitBreaker with Rollback: true"}: a failing deployment keeps retrying the bad task definition`,
    });
  }
  return out;
}

function codeDeploy(name: string, props: LNode | undefined, at: { line: number; col: number }): RawFinding[] {
  const out: RawFinding[] = [];
  const bg = get(props, "BlueGreenDeploymentConfiguration");
  const term = get(bg, "TerminateBlueInstancesOnDeploymentSuccess");
  if (str(get(term, "Action")) === "TERMINATE") {
    const wait = entry(term, "TerminationWaitTimeInMinutes");
    if (!wait || num(wait.value) === 0) {
      out.push({
        ruleId: "KR019",
        pos: wait ? wait.value.pos : get(term, "Action")!.pos,
        message: `${name} terminates the blue instances ${wait ? "immediately (TerminationWaitTimeInMinutes 0)" : "without a TerminationWaitTimeInMinutes"} after traffic moves to green`,
      });
    }
  }
  const arc = get(props, "AutoRollbackConfiguration");
  if (bg && bool(get(arc, "Enabled")) !== true) {
    out.push({ ruleId: "KR014", pos: arc ? (get(arc, "Enabled")?.pos ?? arc.pos) : at, message: `${name} does not roll back automatically when a deployment fails` });
  }
  return out;
}

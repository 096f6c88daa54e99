// Terraform (AWS provider): Auto Scaling groups and instance refresh, launch templates and
// configurations, security groups, target groups, ECS services, CodeDeploy, AMI lookups,
// remote-exec provisioners.

import { checkImageRef } from "../common/image-ref.js";
import { runtimeScriptFindings } from "../common/located-checks.js";
import { checkRefreshPreferences } from "../common/refresh.js";
import type { LNode } from "../located.js";
import { parseShell } from "../shell/ast.js";
import { runtimeConfig } from "../shell/packages.js";
import type { Pos, RawFinding } from "../types.js";
import { amiLookup, attrScript, blockLabel, hclSecrets, sshOpen } from "./common.js";
import { attr, attrNode, attrStr, attrTrue, blocksOf, type HclBlock, type HclBody } from "./parse.js";

export function checkTerraform(body: HclBody, text: string): RawFinding[] {
  const lines = text.split("\n");
  const out: RawFinding[] = [...hclSecrets(body)];
  for (const d of blocksOf(body, "data")) {
    if (d.labels[0] === "aws_ami") out.push(...amiLookup(d.body, blockLabel(d), d.pos));
  }
  for (const r of blocksOf(body, "resource")) {
    const [type = "", name = ""] = r.labels;
    const label = `${type}.${name}`;
    const b = r.body;
    switch (type) {
      case "aws_autoscaling_group":
        out.push(...asg(r, label));
        break;
      case "aws_launch_configuration":
        if (!createBeforeDestroy(b)) {
          out.push({ ruleId: "KR023", pos: r.pos, message: `${label} is immutable: any change replaces it, and without create_before_destroy Terraform destroys it first, while the group still uses it` });
        }
        out.push(...instanceLike(b, label, lines));
        break;
      case "aws_launch_template":
      case "aws_instance":
        out.push(...instanceLike(b, label, lines));
        break;
      case "aws_security_group":
        for (const ing of blocksOf(b, "ingress")) {
          const a = attr(ing.body, "cidr_blocks") ?? attr(ing.body, "ipv6_cidr_blocks");
          const cidrs = [...listValue(attr(ing.body, "cidr_blocks")?.value), ...listValue(attr(ing.body, "ipv6_cidr_blocks")?.value)];
          if (sshOpen(attr(ing.body, "from_port")?.value, attr(ing.body, "to_port")?.value, attr(ing.body, "protocol")?.value, cidrs)) {
            out.push({ ruleId: "KR040", pos: a?.valuePos ?? ing.pos, message: `${label} allows SSH (port 22) from ${cidrs.find((c) => c === "0.0.0.0/0" || c === "::/0")}` });
          }
        }
        break;
      case "aws_security_group_rule": {
        if (attrStr(attr(b, "type")) !== "ingress") break;
        const a = attr(b, "cidr_blocks") ?? attr(b, "ipv6_cidr_blocks");
        const cidrs = [...listValue(attr(b, "cidr_blocks")?.value), ...listValue(attr(b, "ipv6_cidr_blocks")?.value)];
        if (sshOpen(attr(b, "from_port")?.value, attr(b, "to_port")?.value, attr(b, "protocol")?.value, cidrs)) {
          out.push({ ruleId: "KR040", pos: a?.valuePos ?? r.pos, message: `${label} allows SSH (port 22) from the whole internet` });
        }
        break;
      }
      case "aws_vpc_security_group_ingress_rule": {
        const a = attr(b, "cidr_ipv4") ?? attr(b, "cidr_ipv6");
        if (a && sshOpen(attr(b, "from_port")?.value, attr(b, "to_port")?.value, attr(b, "ip_protocol")?.value, [a.value])) {
          out.push({ ruleId: "KR040", pos: a.valuePos, message: `${label} allows SSH (port 22) from ${String(a.value)}` });
        }
        break;
      }
      case "aws_lb_target_group":
      case "aws_alb_target_group": {
        const d = attr(b, "deregistration_delay");
        if (d && Number(d.value) === 0) out.push({ ruleId: "KR018", pos: d.valuePos, message: `${label} has a deregistration delay of 0: in-flight requests are cut when a target is removed` });
        break;
      }
      case "aws_ecs_service":
        out.push(...ecsService(r, label));
        break;
      case "aws_ecs_task_definition": {
        const cd = attr(b, "container_definitions");
        if (cd) {
          // jsonencode([...]) is an expression; the image strings are read from its source.
          for (const m of cd.raw.matchAll(/"?image"?\s*[=:]\s*"([^"]+)"/g)) {
            out.push(...checkImageRef(m[1]!, offsetPos(cd.raw, m.index! + m[0].indexOf(`"${m[1]}"`), cd.valuePos)));
          }
        }
        break;
      }
      case "aws_codedeploy_deployment_group":
        out.push(...codeDeploy(r, label));
        break;
    }
    for (const p of blocksOf(b, "provisioner")) {
      if (p.labels[0] !== "remote-exec") continue;
      const inline = attr(p.body, "inline");
      const cmds = listValue(inline?.value);
      cmds.forEach((cmd, i) => {
        if (typeof cmd !== "string") return;
        const parsed = parseShell(cmd, "remote-exec");
        if ("error" in parsed) return;
        const at = inline!.elems[i] ?? inline!.valuePos;
        for (const rc of runtimeConfig(parsed.file)) {
          out.push({ ruleId: "KR033", pos: at, message: `remote-exec on ${label} ${rc.what} after the instance is running` });
        }
      });
    }
  }
  return out;
}

function listValue(v: unknown): unknown[] {
  return Array.isArray(v) ? v : v === undefined ? [] : [v];
}

function offsetPos(raw: string, offset: number, start: Pos): Pos {
  const before = raw.slice(0, offset);
  const nl = before.lastIndexOf("\n");
  const lines = before.match(/\n/g)?.length ?? 0;
  return lines === 0 ? { line: start.line, col: start.col + offset } : { line: start.line + lines, col: offset - nl };
}

function createBeforeDestroy(b: HclBody): boolean {
  return blocksOf(b, "lifecycle").some((l) => attrTrue(attr(l.body, "create_before_destroy")));
}

function bodyNode(b: HclBody, pos: Pos): LNode {
  return { kind: "map", pos, entries: b.attrs.map((a) => ({ key: a.name, keyPos: a.pos, value: attrNode(a) })) };
}

function asg(r: HclBlock, label: string): RawFinding[] {
  const out: RawFinding[] = [];
  const b = r.body;
  const num = (n: string) => {
    const v = attr(b, n)?.value;
    return typeof v === "number" ? v : typeof v === "string" && /^\d+$/.test(v) ? Number(v) : undefined;
  };
  const desired = num("desired_capacity") ?? num("min_size");
  const hasLB = attr(b, "target_group_arns") !== undefined || attr(b, "load_balancers") !== undefined || blocksOf(b, "traffic_source").length > 0;
  const hct = attr(b, "health_check_type");
  if (hasLB && (!hct || attrStr(hct) === "EC2")) {
    out.push({
      ruleId: "KR021",
      pos: hct?.valuePos ?? r.pos,
      message: `${label} is behind a load balancer but uses ${hct ? 'health_check_type "EC2"' : 'the default health_check_type ("EC2")'}: instances failing the load balancer's health check are never replaced`,
    });
  }
  const lts = blocksOf(b, "launch_template");
  for (const lt of lts) {
    const v = attr(lt.body, "version");
    const s = attrStr(v);
    if (v && s !== undefined && /^\$(Latest|Default)$/.test(s)) {
      out.push({ ruleId: "KR024", pos: v.valuePos, message: `${label} launches "${s}" of its launch template, which moves whenever a version is created` });
    }
  }
  const nameAttr = attr(b, "name");
  const nameFollowsLaunch = nameAttr !== undefined && /aws_launch_(configuration|template)\./.test(nameAttr.raw);
  const refresh = blocksOf(b, "instance_refresh")[0];
  const launches = lts.length > 0 || attr(b, "launch_configuration") !== undefined || blocksOf(b, "mixed_instances_policy").length > 0;
  if (nameFollowsLaunch && !createBeforeDestroy(b)) {
    out.push({
      ruleId: "KR023",
      pos: nameAttr!.valuePos,
      message: `${label}'s name follows its launch configuration, so every image change replaces the group, and without create_before_destroy the old group is destroyed first`,
    });
  }
  if (launches && !refresh && !nameFollowsLaunch) {
    out.push({
      ruleId: "KR022",
      pos: r.pos,
      message: `${label} has no instance_refresh: a new launch template version only reaches instances launched later, so the fleet keeps running the old image`,
    });
  }
  if (refresh) {
    const prefs = blocksOf(refresh.body, "preferences")[0];
    const grace = num("health_check_grace_period");
    const warm = num("default_instance_warmup");
    // Terraform's health_check_grace_period defaults to 300 seconds.
    const defaultWarmup = (warm ?? 0) > 0 || (grace ?? 300) > 0;
    out.push(
      ...checkRefreshPreferences(prefs ? bodyNode(prefs.body, prefs.pos) : undefined, {
        where: `${label}'s instance_refresh`,
        style: "tf",
        defaultWarmup,
        desired,
        at: refresh.pos,
      }),
    );
  }
  return out;
}

const ROOT_DEVICES = new Set(["/dev/xvda", "/dev/sda1", "/dev/sda", "/dev/nvme0n1"]);

function instanceLike(b: HclBody, label: string, lines: readonly string[]): RawFinding[] {
  const out: RawFinding[] = [];
  const key = attr(b, "key_name");
  if (key) out.push({ ruleId: "KR041", pos: key.valuePos, message: `${label} attaches an SSH key pair (key_name)` });
  for (const ebs of blocksOf(b, "ebs_block_device")) {
    const dev = attr(ebs.body, "device_name");
    out.push(dataVolume(label, attrStr(dev) ?? "?", attr(ebs.body, "delete_on_termination")?.value, dev?.valuePos ?? ebs.pos));
  }
  for (const m of blocksOf(b, "block_device_mappings")) {
    const dev = attr(m.body, "device_name");
    const d = attrStr(dev);
    const ebs = blocksOf(m.body, "ebs")[0];
    if (!ebs || d === undefined || ROOT_DEVICES.has(d)) continue;
    out.push(dataVolume(label, d, attr(ebs.body, "delete_on_termination")?.value, dev!.valuePos));
  }
  const ud = attr(b, "user_data") ?? attr(b, "user_data_base64");
  if (ud) {
    const script = attrScript(ud, lines);
    if (script) out.push(...runtimeScriptFindings(script.text, script.map, `user data of ${label}`));
  }
  return out;
}

function dataVolume(label: string, dev: string, del: unknown, pos: Pos): RawFinding {
  const kept = del === false || del === "false";
  return {
    ruleId: "KR052",
    pos,
    message: kept
      ? `${label} adds data volume ${dev} with delete_on_termination false: each replaced instance leaves an orphaned volume and its data behind`
      : `${label} adds data volume ${dev}, deleted with its instance: whatever is written there is lost at every replacement`,
  };
}

function ecsService(r: HclBlock, label: string): RawFinding[] {
  const out: RawFinding[] = [];
  const b = r.body;
  const minA = attr(b, "deployment_minimum_healthy_percent");
  const maxA = attr(b, "deployment_maximum_percent");
  const min = minA ? Number(minA.value) : undefined;
  const max = maxA ? Number(maxA.value) : undefined;
  if (min !== undefined && Number.isFinite(min) && min < 50) {
    out.push({ ruleId: "KR010", pos: minA!.valuePos, message: `${label}: deployment_minimum_healthy_percent ${min} lets a deployment stop ${min === 0 ? "every task" : "most tasks"} before new ones are healthy` });
  }
  if (max === 100) {
    out.push({ ruleId: "KR011", pos: maxA!.valuePos, message: `${label}: deployment_maximum_percent 100 leaves no room to start new tasks before old ones stop` });
  }
  const cb = blocksOf(b, "deployment_circuit_breaker")[0];
  const rb = cb ? attr(cb.body, "rollback") : undefined;
  if (!attrTrue(rb)) {
    out.push({ ruleId: "KR014", pos: rb?.valuePos ?? cb?.pos ?? r.pos, message: `${label}: ${cb ? "the deployment circuit breaker does not roll back" : "no deployment_circuit_breaker with rollback = true"}: a failing deployment keeps the bad task definition` });
  }
  return out;
}

function codeDeploy(r: HclBlock, label: string): RawFinding[] {
  const out: RawFinding[] = [];
  const bg = blocksOf(r.body, "blue_green_deployment_config")[0];
  if (!bg) return out;
  const term = blocksOf(bg.body, "terminate_blue_instances_on_deployment_success")[0];
  if (term && attrStr(attr(term.body, "action")) === "TERMINATE") {
    const wait = attr(term.body, "termination_wait_time_in_minutes");
    if (!wait || Number(wait.value) === 0) {
      out.push({
        ruleId: "KR019",
        pos: wait?.valuePos ?? attr(term.body, "action")!.valuePos,
        message: `${label} terminates the blue instances ${wait ? "immediately (termination_wait_time_in_minutes = 0)" : "without a termination_wait_time_in_minutes"} after traffic moves to green`,
      });
    }
  }
  const arc = blocksOf(r.body, "auto_rollback_configuration")[0];
  if (!arc || !attrTrue(attr(arc.body, "enabled"))) {
    out.push({ ruleId: "KR014", pos: arc?.pos ?? r.pos, message: `${label} does not roll back automatically when a deployment fails` });
  }
  return out;
}

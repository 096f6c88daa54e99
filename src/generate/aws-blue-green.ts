// kiln.yaml → blue-green on AWS: two Auto Scaling groups, each with its own
// target group, behind one ALB listener whose forward action weighs the two
// (cloudformation.yaml), and shift.sh, which moves traffic the way kiln's
// blue-green strategy does: wait until the whole new fleet is healthy, switch,
// read the listener back, keep the old fleet warm for keepPreviousFor (rolling
// back at once if the new one turns unhealthy), and only then scale it to 0.

import type { Spec } from "../config/index.js";
import { cfnCommonParameters, cfnLaunchTemplate, cfnSecurityGroups, cfnTags, cfnTargetGroup, getAtt, ref, type Cfn } from "./aws-common.js";
import { albHealthCheck, awsRefresh, headerLines, seconds } from "./derive.js";
import type { GeneratedFile, ImageInfo } from "./types.js";
import { hashComments, yamlDocument } from "./yaml-out.js";

const COLORS = ["Blue", "Green"] as const;

/** This target is blue-green whatever kiln.yaml's strategy says: its blueGreen settings apply. */
function blueGreenOf(spec: Spec): Spec {
  return { ...spec, strategy: { ...spec.strategy, type: "blue-green" } };
}

function blueGreenSettings(spec: Spec) {
  const bg = spec.strategy.blueGreen;
  return {
    instances: spec.instances,
    deadline: seconds(bg.deadline),
    keep: seconds(bg.keepPreviousFor),
    autoRollback: bg.autoRollback,
    promotion: bg.promotion,
  };
}

function cloudFormation(spec: Spec, image: ImageInfo): string {
  const n = spec.instances;
  const refresh = awsRefresh(blueGreenOf(spec));
  const hc = albHealthCheck(spec);
  const resources: Record<string, Cfn> = { ...cfnSecurityGroups(spec) };
  resources.LoadBalancer = {
    Type: "AWS::ElasticLoadBalancingV2::LoadBalancer",
    Properties: { Type: "application", Scheme: "internet-facing", Subnets: ref("SubnetIds"), SecurityGroups: [getAtt("LoadBalancerSecurityGroup", "GroupId")] },
  };
  for (const c of COLORS) resources[`${c}TargetGroup`] = cfnTargetGroup(spec, ref("VpcId"));
  resources.Listener = {
    Type: "AWS::ElasticLoadBalancingV2::Listener",
    Properties: {
      LoadBalancerArn: ref("LoadBalancer"),
      Port: ref("ListenerPort"),
      Protocol: "HTTP",
      DefaultActions: [
        {
          Type: "forward",
          ForwardConfig: {
            TargetGroups: COLORS.map((c) => ({ TargetGroupArn: ref(`${c}TargetGroup`), Weight: ref(`${c}Weight`) })),
            TargetGroupStickinessConfig: { Enabled: false },
          },
        },
      ],
    },
  };
  for (const c of COLORS) {
    resources[`${c}LaunchTemplate`] = cfnLaunchTemplate(spec, image, ref(`${c}ImageId`));
    resources[`${c}AutoScalingGroup`] = {
      Type: "AWS::AutoScaling::AutoScalingGroup",
      // A color is redeployed only while it is idle; should its image change while it runs, every instance is
      // still replaced (launch first), never left on the old image beside new ones.
      UpdatePolicy: {
        AutoScalingInstanceRefresh: {
          Strategy: "Rolling",
          Preferences: { MinHealthyPercentage: 100, MaxHealthyPercentage: 200, InstanceWarmup: refresh.instanceWarmup, SkipMatching: true },
        },
      },
      Properties: {
        MinSize: ref(`${c}Capacity`),
        MaxSize: ref(`${c}Capacity`),
        DesiredCapacity: ref(`${c}Capacity`),
        VPCZoneIdentifier: ref("SubnetIds"),
        TargetGroupARNs: [ref(`${c}TargetGroup`)],
        HealthCheckType: "ELB",
        HealthCheckGracePeriod: seconds(spec.health.grace),
        LaunchTemplate: { LaunchTemplateId: ref(`${c}LaunchTemplate`), Version: getAtt(`${c}LaunchTemplate`, "LatestVersionNumber") },
        Tags: [...cfnTags(spec, image, true), { Key: "kiln:color", Value: c.toLowerCase(), PropagateAtLaunch: true }],
      },
    };
  }
  const parameters: Record<string, Cfn> = {};
  for (const c of COLORS) {
    parameters[`${c}ImageId`] = {
      Type: "AWS::EC2::Image::Id",
      Description: `AMI of the ${c.toLowerCase()} fleet (baked from ${spec.name}.pkr.hcl; this release: ${image.timestampedName}).`,
    };
    parameters[`${c}Capacity`] = {
      Type: "Number",
      Default: c === "Blue" ? n : 0,
      MinValue: 0,
      Description: `Instances in the ${c.toLowerCase()} fleet: ${n} while it serves or stands by, 0 once retired.`,
    };
    parameters[`${c}Weight`] = {
      Type: "Number",
      Default: c === "Blue" ? 100 : 0,
      MinValue: 0,
      MaxValue: 999,
      Description: "Listener weight. shift.sh changes it directly; on a stack update pass what `shift.sh status` prints.",
    };
  }
  const template = {
    AWSTemplateFormatVersion: "2010-09-09",
    Description: `${spec.name} ${spec.version}: blue-green fleets behind one weighted listener (kiln image ${image.digest})`,
    Parameters: { ...parameters, ...cfnCommonParameters(spec) },
    Resources: resources,
    Outputs: {
      LoadBalancerDNSName: { Value: getAtt("LoadBalancer", "DNSName") },
      ListenerArn: { Value: ref("Listener") },
      ...Object.fromEntries(
        COLORS.flatMap((c) => [
          [`${c}TargetGroupArn`, { Value: ref(`${c}TargetGroup`) }],
          [`${c}AutoScalingGroupName`, { Value: ref(`${c}AutoScalingGroup`) }],
        ]),
      ),
    },
  };
  return yamlDocument(template, {
    header: [
      ...headerLines(spec, image, "aws-blue-green"),
      "",
      "A release: bake an AMI, update the stack so the idle color runs it at full size (e.g. GreenImageId=ami-new",
      `GreenCapacity=${n}), then \`./shift.sh promote green\`: it waits for ${n} healthy green targets, switches the`,
      "listener, and watches green while blue stays warm for kiln's keepPreviousFor; `./shift.sh rollback` switches back",
      "at once, `./shift.sh retire` scales blue to 0 once the window has passed. Nothing here allows SSH.",
      ...hc.notes.map((x) => `Note: health check ${x}.`),
    ],
  });
}

/** The kiln values the script runs with; each may be overridden from the environment (e.g. a shorter keep window in a drill). */
function settingLines(s: ReturnType<typeof blueGreenSettings>, hc: ReturnType<typeof albHealthCheck>): string {
  const rows: [string, string | number | boolean, string][] = [
    ["INSTANCES", s.instances, "kiln instances"],
    ["DEADLINE_SECONDS", s.deadline, "kiln strategy.blueGreen.deadline"],
    ["KEEP_PREVIOUS_SECONDS", s.keep, "kiln strategy.blueGreen.keepPreviousFor"],
    ["AUTO_ROLLBACK", s.autoRollback, "kiln strategy.blueGreen.autoRollback"],
    ["UNHEALTHY_THRESHOLD", hc.unhealthyThreshold, "kiln health.unhealthyThreshold"],
    ["CHECK_EVERY", hc.intervalSeconds, "seconds: the target groups' health check interval"],
  ];
  const lines = rows.map(([k, v]) => `${k}="\${${k}:-${v}}"`);
  const width = Math.max(...lines.map((l) => l.length));
  return lines.map((l, i) => `${l.padEnd(width)}  # ${rows[i]![2]}`).join("\n");
}

function shiftScript(spec: Spec, image: ImageInfo): string {
  const s = blueGreenSettings(spec);
  const hc = albHealthCheck(spec);
  const header = hashComments([
    ...headerLines(spec, image, "aws-blue-green"),
    "",
    "Blue-green traffic shift for the stack made from cloudformation.yaml, the way kiln does it:",
    "  ./shift.sh promote COLOR   wait (up to the deadline) until every instance of COLOR is registered and",
    "                             healthy, switch the listener to it, read the listener back, then watch COLOR",
    "                             for keepPreviousFor, switching back if it turns unhealthy (autoRollback)",
    "  ./shift.sh rollback        switch back to the other fleet at once (inside the keep window it is warm)",
    "  ./shift.sh retire          after keepPreviousFor, and only while the live fleet is healthy: scale the other",
    "                             fleet to 0 (before that it refuses: the window is what makes rollback instant)",
    "  ./shift.sh status          healthy targets, the switch time, and the parameters to pass on a stack update",
    `promotion: ${s.promotion} — ${s.promotion === "auto" ? "run promote right after the stack update that started the new fleet" : "run promote when you decide to (kiln promote)"}.`,
    "Needs the AWS CLI v2. STACK names the CloudFormation stack.",
    ...(spec.strategy.type === "blue-green" ? [] : ["kiln.yaml's strategy is rolling: this target uses its strategy.blueGreen settings."]),
  ]);
  return `#!/usr/bin/env bash
${header}
set -euo pipefail

STACK="\${STACK:-${spec.name}-blue-green}"
${settingLines(s, hc)}

die() {
  echo "shift.sh: $*" >&2
  exit 1
}

usage() {
  sed -n '2,/^$/s/^# \\{0,1\\}//p' "$0" >&2
  exit 2
}

# The stack's outputs, read once: the listener, and each color's target group and Auto Scaling group.
load_stack() {
  local key value
  while read -r key value; do
    case "$key" in
      ListenerArn) LISTENER_ARN="$value" ;;
      BlueTargetGroupArn) BLUE_TG="$value" ;;
      GreenTargetGroupArn) GREEN_TG="$value" ;;
      BlueAutoScalingGroupName) BLUE_ASG="$value" ;;
      GreenAutoScalingGroupName) GREEN_ASG="$value" ;;
    esac
  done < <(aws cloudformation describe-stacks --stack-name "$STACK" \\
    --query "Stacks[0].Outputs[].[OutputKey,OutputValue]" --output text)
  if [ -z "\${LISTENER_ARN:-}" ] || [ -z "\${BLUE_TG:-}" ] || [ -z "\${GREEN_TG:-}" ] || [ -z "\${BLUE_ASG:-}" ] || [ -z "\${GREEN_ASG:-}" ]; then
    die "stack $STACK lacks the outputs of cloudformation.yaml (set STACK to its name)"
  fi
}

check_color() {
  case "$1" in
    blue | green) ;;
    *) die "unknown color '$1' (blue or green)" ;;
  esac
}

other_color() {
  if [ "$1" = blue ]; then echo green; else echo blue; fi
}

capitalized() {
  if [ "$1" = blue ]; then echo Blue; else echo Green; fi
}

target_group() {
  if [ "$1" = blue ]; then echo "$BLUE_TG"; else echo "$GREEN_TG"; fi
}

auto_scaling_group() {
  if [ "$1" = blue ]; then echo "$BLUE_ASG"; else echo "$GREEN_ASG"; fi
}

# count_targets TG [STATE]: targets registered in TG (in STATE: healthy, unhealthy, …)
count_targets() {
  local filter=""
  if [ -n "\${2:-}" ]; then filter="[?TargetHealth.State=='$2']"; fi
  aws elbv2 describe-target-health --target-group-arn "$1" \\
    --query "length(TargetHealthDescriptions$filter)" --output text
}

# The color whose target group has the listener's weight.
live_color() {
  local live_tg
  live_tg="$(aws elbv2 describe-listeners --listener-arns "$LISTENER_ARN" \\
    --query "Listeners[0].DefaultActions[0].ForwardConfig.TargetGroups[?Weight > \\\`0\\\`].TargetGroupArn | [0]" --output text)"
  if [ "$live_tg" = "$(target_group blue)" ]; then
    echo blue
  elif [ "$live_tg" = "$(target_group green)" ]; then
    echo green
  else
    die "the listener forwards to neither fleet"
  fi
}

# wait_healthy COLOR: every one of INSTANCES targets registered (up to the deadline), then all of them
# in service. Returns non-zero when they are not.
wait_healthy() {
  local tg deadline
  tg="$(target_group "$1")"
  deadline=$(($(date +%s) + DEADLINE_SECONDS))
  while [ "$(count_targets "$tg")" -lt "$INSTANCES" ]; do
    if [ "$(date +%s)" -ge "$deadline" ]; then return 1; fi
    sleep "$CHECK_EVERY"
  done
  # The AWS CLI waiter polls every 15 s, 40 times at most.
  aws elbv2 wait target-in-service --target-group-arn "$tg"
}

# switch_to COLOR: all traffic to COLOR, only if all its targets are in service (a rollback too: never onto a
# broken fleet); then read the listener back: the switch is done only when it says so.
switch_to() {
  local actions
  aws elbv2 wait target-in-service --target-group-arn "$(target_group "$1")" || die "$1 is not healthy: traffic not switched"
  actions="$(printf '[{"Type":"forward","ForwardConfig":{"TargetGroups":[{"TargetGroupArn":"%s","Weight":100},{"TargetGroupArn":"%s","Weight":0}]}}]' \\
    "$(target_group "$1")" "$(target_group "$(other_color "$1")")")"
  aws elbv2 modify-listener --listener-arn "$LISTENER_ARN" --default-actions "$actions" >/dev/null
  [ "$(live_color)" = "$1" ] || die "the listener does not read back $1 after the switch"
  aws elbv2 add-tags --resource-arns "$LISTENER_ARN" --tags "Key=kiln:switched-at,Value=$(date +%s)"
  echo "traffic: 100% $1"
}

switched_at() {
  aws elbv2 describe-tags --resource-arns "$LISTENER_ARN" \\
    --query "TagDescriptions[0].Tags[?Key=='kiln:switched-at'].Value | [0]" --output text
}

promote() {
  local new="$1" old unhealthy_checks=0 keep_until
  check_color "$new"
  old="$(other_color "$new")"
  [ "$(live_color)" != "$new" ] || die "$new already takes the traffic"
  echo "waiting up to \${DEADLINE_SECONDS}s for $INSTANCES registered $new instances, then for all of them to be healthy"
  wait_healthy "$new" || die "$new is not healthy: traffic stays on $old, nothing changed"
  switch_to "$new"
  echo "$old stays up for \${KEEP_PREVIOUS_SECONDS}s: './shift.sh rollback' switches back at once"
  keep_until=$(($(date +%s) + KEEP_PREVIOUS_SECONDS))
  while [ "$(date +%s)" -lt "$keep_until" ]; do
    if [ "$(live_color)" != "$new" ]; then
      echo "traffic was switched away from $new"
      return 0
    fi
    if [ "$AUTO_ROLLBACK" = true ] && [ "$(count_targets "$(target_group "$new")" unhealthy)" -gt 0 ]; then
      unhealthy_checks=$((unhealthy_checks + 1))
    else
      unhealthy_checks=0
    fi
    if [ "$unhealthy_checks" -ge "$UNHEALTHY_THRESHOLD" ]; then
      switch_to "$old"
      die "$new turned unhealthy: rolled back to $old (still warm)"
    fi
    sleep "$CHECK_EVERY"
  done
  echo "the keep window has passed: './shift.sh retire' scales $old to 0"
}

# Scale the fleet that takes no traffic to 0, once the keep window has passed and the live one is healthy.
retire() {
  local live idle since
  live="$(live_color)"
  idle="$(other_color "$live")"
  since="$(switched_at)"
  case "$since" in
    '' | None | *[!0-9]*) die "no switch recorded on the listener: nothing to retire" ;;
  esac
  if [ "$(date +%s)" -lt $((since + KEEP_PREVIOUS_SECONDS)) ]; then
    die "$idle is kept until $((since + KEEP_PREVIOUS_SECONDS - $(date +%s)))s from now (keepPreviousFor), for an instant rollback"
  fi
  wait_healthy "$live" || die "$live is not healthy: keeping $idle"
  aws autoscaling update-auto-scaling-group --auto-scaling-group-name "$(auto_scaling_group "$idle")" \\
    --min-size 0 --max-size 0 --desired-capacity 0
  echo "$idle retired (scaled to 0); on the next stack update pass $(capitalized "$idle")Capacity=0 $(capitalized "$live")Weight=100 $(capitalized "$idle")Weight=0"
}

# Switch back to the other fleet: instant while it is still warm (the keep window).
rollback() {
  local live previous
  live="$(live_color)"
  previous="$(other_color "$live")"
  # Never switch to a fleet that is not there: it must be complete and healthy.
  if [ "$(count_targets "$(target_group "$previous")" healthy)" -lt "$INSTANCES" ]; then
    die "$previous is not complete and healthy (retired?): deploy the previous AMI to $previous instead"
  fi
  switch_to "$previous"
}

status() {
  local live color
  live="$(live_color)"
  for color in blue green; do
    echo "$color: $(count_targets "$(target_group "$color")" healthy) of $(count_targets "$(target_group "$color")") healthy$([ "$color" = "$live" ] && echo ", live")"
  done
  echo "switched at: $(switched_at)"
  echo "stack update parameters: $(capitalized "$live")Weight=100 $(capitalized "$(other_color "$live")")Weight=0"
}

case "\${1:-}" in
  promote | retire | rollback | status) load_stack ;;
  *) usage ;;
esac
case "$1" in
  promote) promote "\${2:-}" ;;
  retire) retire ;;
  rollback) rollback ;;
  status) status ;;
esac
`;
}

export function emitAwsBlueGreen(spec: Spec, image: ImageInfo): GeneratedFile[] {
  return [
    { path: "cloudformation.yaml", content: cloudFormation(spec, image) },
    { path: "shift.sh", content: shiftScript(spec, image), mode: 0o755 },
  ];
}

// kiln.yaml → an Auto Scaling group behind an ALB that replaces instances the
// way kiln's strategy does, as CloudFormation (cloudformation.yaml) and as
// Terraform (main.tf). A new release is a new AMI id: updating ImageId /
// image_id makes a new launch template version, and the instance refresh
// (with kiln's min/max healthy, warmup and auto-rollback) replaces the fleet.

import type { Spec } from "../config/index.js";
import {
  cfnCommonParameters,
  cfnLaunchTemplate,
  cfnSecurityGroups,
  cfnTags,
  cfnTargetGroup,
  fillFs,
  getAtt,
  ref,
  userDataLines,
  volumeVariable,
  type Cfn,
} from "./aws-common.js";
import { listenPort } from "../derive/index.js";
import { albHealthCheck, awsRefresh, headerLines, platformCapacity, platformLimits, seconds } from "./derive.js";
import { attr, blank, block, comment, escapeString, obj, raw, renderHcl, type HclItem } from "./hcl.js";
import type { GeneratedFile, ImageInfo } from "./types.js";
import { yamlDocument } from "./yaml-out.js";

function strategyLine(spec: Spec): string {
  const cap = platformCapacity(spec);
  if (spec.strategy.type === "blue-green") return `strategy blue-green, approximated by an instance refresh that launches all ${cap.instances} new instances first`;
  const r = spec.strategy.rolling;
  return `strategy rolling: ${cap.instances} instances, min ${r.minHealthyPercent} % / max ${r.maxHealthyPercent} % healthy (surge ${cap.surge}, at least ${cap.minHealthy} serving)`;
}

function cloudFormation(spec: Spec, image: ImageInfo): string {
  const cap = platformCapacity(spec);
  const refresh = awsRefresh(spec);
  const hc = albHealthCheck(spec);
  const template = {
    AWSTemplateFormatVersion: "2010-09-09",
    Description: `${spec.name} ${spec.version}: Auto Scaling group replaced by instance refresh (kiln image ${image.digest})`,
    Parameters: {
      ImageId: {
        Type: "AWS::EC2::Image::Id",
        Description: `AMI baked from ${spec.name}.pkr.hcl (kiln generate packer): artifact_id in packer-manifest.json, named ${image.timestampedName}. A new release is a new AMI id here.`,
      },
      ...cfnCommonParameters(spec),
    },
    Resources: {
      ...cfnSecurityGroups(spec),
      LoadBalancer: {
        Type: "AWS::ElasticLoadBalancingV2::LoadBalancer",
        Properties: { Type: "application", Scheme: "internet-facing", Subnets: ref("SubnetIds"), SecurityGroups: [getAtt("LoadBalancerSecurityGroup", "GroupId")] },
      },
      TargetGroup: cfnTargetGroup(spec, ref("VpcId")),
      Listener: {
        Type: "AWS::ElasticLoadBalancingV2::Listener",
        Properties: {
          LoadBalancerArn: ref("LoadBalancer"),
          Port: ref("ListenerPort"),
          Protocol: "HTTP",
          DefaultActions: [{ Type: "forward", TargetGroupArn: ref("TargetGroup") }],
        },
      },
      LaunchTemplate: cfnLaunchTemplate(spec, image, ref("ImageId")),
      AutoScalingGroup: {
        Type: "AWS::AutoScaling::AutoScalingGroup",
        UpdatePolicy: {
          AutoScalingInstanceRefresh: {
            Strategy: "Rolling",
            Preferences: {
              MinHealthyPercentage: refresh.minHealthyPercentage,
              MaxHealthyPercentage: refresh.maxHealthyPercentage,
              InstanceWarmup: refresh.instanceWarmup,
              CheckpointPercentages: refresh.checkpointPercentages,
              CheckpointDelay: refresh.checkpointDelay,
              SkipMatching: refresh.skipMatching,
              BakeTime: refresh.bakeTime,
              ScaleInProtectedInstances: "Refresh",
              StandbyInstances: "Terminate",
            },
          },
        },
        Properties: {
          MinSize: String(cap.instances),
          MaxSize: String(cap.maxTotal),
          DesiredCapacity: String(cap.instances),
          VPCZoneIdentifier: ref("SubnetIds"),
          TargetGroupARNs: [ref("TargetGroup")],
          HealthCheckType: "ELB",
          HealthCheckGracePeriod: seconds(spec.health.grace),
          DefaultInstanceWarmup: seconds(platformLimits(spec).warmup),
          LaunchTemplate: { LaunchTemplateId: ref("LaunchTemplate"), Version: getAtt("LaunchTemplate", "LatestVersionNumber") },
          InstanceMaintenancePolicy: { MinHealthyPercentage: refresh.minHealthyPercentage, MaxHealthyPercentage: refresh.maxHealthyPercentage },
          Tags: cfnTags(spec, image, true),
        },
      },
    },
    Outputs: {
      LoadBalancerDNSName: { Value: getAtt("LoadBalancer", "DNSName") },
      AutoScalingGroupName: { Value: ref("AutoScalingGroup") },
      TargetGroupArn: { Value: ref("TargetGroup") },
    },
  };
  const asg = ["Resources", "AutoScalingGroup"];
  const prefs = [...asg, "UpdatePolicy", "AutoScalingInstanceRefresh", "Preferences"];
  const tg = ["Resources", "TargetGroup", "Properties"];
  const limits = spec.strategy.type === "blue-green" ? spec.strategy.blueGreen : spec.strategy.rolling;
  return yamlDocument(template, {
    header: [
      ...headerLines(spec, image, "aws-asg"),
      "",
      `${strategyLine(spec)}.`,
      "Deploy a release: aws cloudformation deploy --template-file cloudformation.yaml --stack-name STACK \\",
      "  --parameter-overrides ImageId=ami-... VpcId=vpc-... SubnetIds=subnet-a,subnet-b",
      `Rollback: ${limits.autoRollback ? "automatic (kiln autoRollback: true) — a failed refresh fails the stack update, and CloudFormation rolls back to the previous launch template" : "off in kiln.yaml (autoRollback: false): deploy with --disable-rollback to match; otherwise CloudFormation still rolls a failed update back"}.`,
      `Deadline: kiln's ${Math.round(limits.deadline / 1000)} s rollout deadline has no CloudFormation equivalent (the stack waits for the refresh up to its own timeout).`,
      ...[...refresh.notes, ...hc.notes.map((n) => `health check ${n}`)].map((n) => `Note: ${n}.`),
    ],
    notes: [
      { path: [...prefs, "MinHealthyPercentage"], text: `kiln strategy.rolling.minHealthyPercent` },
      { path: [...prefs, "MaxHealthyPercentage"], text: `kiln strategy.rolling.maxHealthyPercent (launch-first surge of ${cap.surge})` },
      { path: [...prefs, "InstanceWarmup"], text: "kiln strategy.rolling.instanceWarmup, seconds" },
      { path: [...prefs, "CheckpointPercentages"], text: "kiln does not pause mid-rollout: one checkpoint, at the end" },
      { path: [...prefs, "CheckpointDelay"], text: "no wait at it" },
      { path: [...prefs, "SkipMatching"], text: "instances already on the release are not replaced (as in kiln)" },
      { path: [...prefs, "BakeTime"], text: spec.strategy.type === "blue-green" ? "kiln strategy.blueGreen.keepPreviousFor, seconds" : "kiln's rollout ends when the last old instance is drained" },
      { path: [...asg, "Properties", "MaxSize"], text: "fleet + surge" },
      { path: [...asg, "Properties", "HealthCheckGracePeriod"], text: "kiln health.grace, seconds" },
      { path: [...tg, "HealthCheckPath"], text: "kiln health.path" },
      { path: [...tg, "HealthCheckIntervalSeconds"], text: "kiln health.interval" },
      { path: [...tg, "HealthCheckTimeoutSeconds"], text: "kiln health.timeout" },
      { path: [...tg, "HealthyThresholdCount"], text: "kiln health.healthyThreshold" },
      { path: [...tg, "UnhealthyThresholdCount"], text: "kiln health.unhealthyThreshold" },
      { path: [...tg, "Matcher"], text: "any 2xx is healthy, as in kiln" },
      { path: [...tg, "TargetGroupAttributes"], text: "kiln drainTimeout: in-flight requests finish before an instance goes" },
    ],
  });
}

// ---------------------------------------------------------------------------
// Terraform

export function tfTags(spec: Spec, image: ImageInfo) {
  return obj([
    ["Name", image.timestampedName],
    ["kiln:service", spec.name],
    ["kiln:version", spec.version],
    ["kiln:image-digest", image.digest],
  ]);
}

/** Variables and the shared resources (security groups, user data) of both AWS Terraform files. */
export function tfCommon(spec: Spec, image: ImageInfo): { variables: HclItem[]; userData: HclItem } {
  const variables: HclItem[] = [
    block("variable", ["image_id"], [
      attr("type", raw("string")),
      attr("description", `AMI baked from ${spec.name}.pkr.hcl (artifact_id in packer-manifest.json, named ${image.timestampedName}). A new release is a new AMI id here.`),
    ]),
    blank,
    block("variable", ["vpc_id"], [attr("type", raw("string"))]),
    blank,
    block("variable", ["subnet_ids"], [attr("type", raw("list(string)")), attr("description", "Two availability zones at least.")]),
    blank,
    block("variable", ["instance_type"], [attr("type", raw("string")), attr("default", "t3.small")]),
    blank,
    block("variable", ["listener_port"], [attr("type", raw("number")), attr("default", listenPort(spec))]),
  ];
  for (const v of spec.volumes) {
    variables.push(
      blank,
      block("variable", [volumeVariable(v.name)], [
        attr("type", raw("string")),
        attr("description", `EFS file system mounted at ${v.path} (volume "${v.name}"), shared by old and new instances. The image needs nfs-common.`),
      ]),
    );
  }
  const lines = userDataLines(spec).map((l) =>
    raw(`"${fillFs(escapeString(l), (v) => `\${var.${volumeVariable(v)}}.efs.\${data.aws_region.current.name}.amazonaws.com`)}"`),
  );
  const userData = block("locals", [], [
    comment("Launch inputs: the declared environment (kiln.yaml env, PORT) and the external volumes; nothing else."),
    attr("user_data", lines),
  ]);
  return { variables, userData };
}

export function tfSecurityGroups(spec: Spec): HclItem[] {
  return [
    block("resource", ["aws_security_group", "lb"], [
      attr("name_prefix", `${spec.name}-lb-`),
      attr("description", `${spec.name}: clients to the load balancer`),
      attr("vpc_id", raw("var.vpc_id")),
      blank,
      block("ingress", [], [
        attr("protocol", "tcp"),
        attr("from_port", raw("var.listener_port")),
        attr("to_port", raw("var.listener_port")),
        attr("cidr_blocks", ["0.0.0.0/0"]),
      ]),
      blank,
      block("egress", [], [attr("protocol", "-1"), attr("from_port", 0), attr("to_port", 0), attr("cidr_blocks", ["0.0.0.0/0"])]),
    ]),
    blank,
    comment("Instances take traffic from the load balancer on the app port only: no SSH ingress, instances are never entered."),
    block("resource", ["aws_security_group", "instances"], [
      attr("name_prefix", `${spec.name}-instances-`),
      attr("description", `${spec.name}: load balancer to instances on port ${spec.image.port}`),
      attr("vpc_id", raw("var.vpc_id")),
      blank,
      block("ingress", [], [
        attr("protocol", "tcp"),
        attr("from_port", spec.image.port),
        attr("to_port", spec.image.port),
        attr("security_groups", [raw("aws_security_group.lb.id")]),
      ]),
      blank,
      block("egress", [], [attr("protocol", "-1"), attr("from_port", 0), attr("to_port", 0), attr("cidr_blocks", ["0.0.0.0/0"])]),
    ]),
  ];
}

export function tfTargetGroup(spec: Spec, name: string): HclItem {
  const hc = albHealthCheck(spec);
  return block("resource", ["aws_lb_target_group", name], [
    attr("name_prefix", `${spec.name.slice(0, 5)}-`),
    attr("vpc_id", raw("var.vpc_id")),
    attr("protocol", "HTTP"),
    attr("port", spec.image.port),
    attr("target_type", "instance"),
    comment("kiln drainTimeout: in-flight requests finish before an instance goes"),
    attr("deregistration_delay", seconds(spec.drainTimeout)),
    blank,
    comment("kiln health: path, interval, timeout, thresholds; any 2xx is healthy"),
    block("health_check", [], [
      attr("enabled", true),
      attr("protocol", "HTTP"),
      attr("port", "traffic-port"),
      attr("path", hc.path),
      attr("interval", hc.intervalSeconds),
      attr("timeout", hc.timeoutSeconds),
      attr("healthy_threshold", hc.healthyThreshold),
      attr("unhealthy_threshold", hc.unhealthyThreshold),
      attr("matcher", "200-299"),
    ]),
  ]);
}

export function tfLaunchTemplate(spec: Spec, image: ImageInfo, name: string, imageId: string): HclItem {
  return block("resource", ["aws_launch_template", name], [
    attr("name_prefix", `${spec.name}-`),
    attr("image_id", raw(imageId)),
    attr("instance_type", raw("var.instance_type")),
    attr("vpc_security_group_ids", [raw("aws_security_group.instances.id")]),
    attr("user_data", raw('base64encode(join("\\n", local.user_data))')),
    blank,
    block("metadata_options", [], [attr("http_tokens", "required"), attr("http_endpoint", "enabled")]),
    blank,
    block("tag_specifications", [], [attr("resource_type", "instance"), attr("tags", tfTags(spec, image))]),
  ]);
}

export function tfProviderBlocks(): HclItem[] {
  return [
    block("terraform", [], [
      block("required_providers", [], [attr("aws", obj([["source", "hashicorp/aws"], ["version", ">= 5.30"]]))]),
    ]),
    blank,
    block("provider", ["aws"], []),
    blank,
    block("data", ["aws_region", "current"], []),
  ];
}

function terraform(spec: Spec, image: ImageInfo): string {
  const cap = platformCapacity(spec);
  const refresh = awsRefresh(spec);
  const hc = albHealthCheck(spec);
  const { variables, userData } = tfCommon(spec, image);
  const tags: HclItem[] = [];
  for (const [k, v] of tfTags(spec, image).entries) {
    tags.push(blank, block("tag", [], [attr("key", k), attr("value", v), attr("propagate_at_launch", true)]));
  }
  const items: HclItem[] = [
    ...headerLines(spec, image, "aws-asg").map((l) => comment(l)),
    comment(""),
    comment(`${strategyLine(spec)}.`),
    comment("Deploy a release: terraform apply -var image_id=ami-... -var vpc_id=vpc-... -var 'subnet_ids=[\"subnet-a\",\"subnet-b\"]'"),
    comment("Terraform returns once the instance refresh has started; it does not wait for it (or for kiln's deadline)."),
    ...[...refresh.notes, ...hc.notes.map((n) => `health check ${n}`)].map((n) => comment(`Note: ${n}.`)),
    blank,
    ...tfProviderBlocks(),
    blank,
    ...variables,
    blank,
    userData,
    blank,
    ...tfSecurityGroups(spec),
    blank,
    block("resource", ["aws_lb", "app"], [
      attr("name_prefix", `${spec.name.slice(0, 5)}-`),
      attr("load_balancer_type", "application"),
      attr("subnets", raw("var.subnet_ids")),
      attr("security_groups", [raw("aws_security_group.lb.id")]),
    ]),
    blank,
    tfTargetGroup(spec, "app"),
    blank,
    block("resource", ["aws_lb_listener", "app"], [
      attr("load_balancer_arn", raw("aws_lb.app.arn")),
      attr("port", raw("var.listener_port")),
      attr("protocol", "HTTP"),
      blank,
      block("default_action", [], [attr("type", "forward"), attr("target_group_arn", raw("aws_lb_target_group.app.arn"))]),
    ]),
    blank,
    tfLaunchTemplate(spec, image, "app", "var.image_id"),
    blank,
    block("resource", ["aws_autoscaling_group", "app"], [
      attr("name_prefix", `${spec.name}-`),
      attr("min_size", cap.instances),
      comment("fleet + surge"),
      attr("max_size", cap.maxTotal),
      attr("desired_capacity", cap.instances),
      attr("vpc_zone_identifier", raw("var.subnet_ids")),
      attr("target_group_arns", [raw("aws_lb_target_group.app.arn")]),
      attr("health_check_type", "ELB"),
      comment("kiln health.grace and instanceWarmup, seconds"),
      attr("health_check_grace_period", seconds(spec.health.grace)),
      attr("default_instance_warmup", seconds(platformLimits(spec).warmup)),
      blank,
      comment("A numbered version (not $Latest), so a failed refresh can roll back to the previous one."),
      block("launch_template", [], [attr("id", raw("aws_launch_template.app.id")), attr("version", raw("aws_launch_template.app.latest_version"))]),
      blank,
      block("instance_maintenance_policy", [], [
        attr("min_healthy_percentage", refresh.minHealthyPercentage),
        attr("max_healthy_percentage", refresh.maxHealthyPercentage),
      ]),
      blank,
      comment("kiln's strategy as an instance refresh. BakeTime has no argument here (CloudFormation and the"),
      comment(`StartInstanceRefresh API take it): kiln's value is ${refresh.bakeTime} s.`),
      block("instance_refresh", [], [
        attr("strategy", "Rolling"),
        blank,
        block("preferences", [], [
          attr("min_healthy_percentage", refresh.minHealthyPercentage),
          attr("max_healthy_percentage", refresh.maxHealthyPercentage),
          attr("instance_warmup", raw(`"${refresh.instanceWarmup}"`)),
          attr("checkpoint_percentages", refresh.checkpointPercentages),
          attr("checkpoint_delay", raw(`"${refresh.checkpointDelay}"`)),
          attr("skip_matching", refresh.skipMatching),
          attr("auto_rollback", refresh.autoRollback),
          attr("scale_in_protected_instances", "Refresh"),
          attr("standby_instances", "Terminate"),
        ]),
      ]),
      ...tags,
    ]),
    blank,
    block("output", ["load_balancer_dns_name"], [attr("value", raw("aws_lb.app.dns_name"))]),
    blank,
    block("output", ["autoscaling_group_name"], [attr("value", raw("aws_autoscaling_group.app.name"))]),
  ];
  return renderHcl(items);
}

export function emitAwsAsg(spec: Spec, image: ImageInfo): GeneratedFile[] {
  return [
    { path: "cloudformation.yaml", content: cloudFormation(spec, image) },
    { path: "main.tf", content: terraform(spec, image) },
  ];
}

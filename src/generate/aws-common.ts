// Pieces both AWS targets share: the instances' launch inputs (user data), the
// security groups (no SSH anywhere), the target group health check, and
// CloudFormation's long-form intrinsic functions (plain YAML, no custom tags,
// so any YAML reader can load the template).

import type { Spec } from "../config/index.js";
import { listenPort } from "../derive/index.js";
import { albHealthCheck, launchEnv, seconds } from "./derive.js";
import type { ImageInfo } from "./types.js";

export type Cfn = Record<string, unknown>;

export const ref = (name: string): Cfn => ({ Ref: name });
export const getAtt = (resource: string, attribute: string): Cfn => ({ "Fn::GetAtt": [resource, attribute] });
export const sub = (text: string): Cfn => ({ "Fn::Sub": text });

/** CloudFormation parameter name of a declared volume's EFS file system: "data" → "DataFileSystemId". */
export function volumeParameter(volumeName: string): string {
  return `${volumeName.split("-").map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join("")}FileSystemId`;
}

/** Terraform variable name of a declared volume's EFS file system: "data" → "data_file_system_id". */
export function volumeVariable(volumeName: string): string {
  return `${volumeName.replace(/-/g, "_")}_file_system_id`;
}

/** A value for a systemd EnvironmentFile line. */
function envLine(key: string, value: string): string {
  return `${key}="${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`;
}

/** Stands for a volume's file system host in user data lines until the target language's reference replaces it. */
export function fsPlaceholder(volumeName: string): string {
  return `\u0000fs:${volumeName}\u0000`;
}

/** Replace the placeholders fsPlaceholder left (after the line was escaped for its language). */
export function fillFs(line: string, fsRef: (volumeName: string) => string): string {
  return line.replace(/\u0000fs:([a-z0-9-]+)\u0000/g, (_, v: string) => fsRef(v));
}

/**
 * The user data script, as lines, with fsPlaceholder(volume) where a volume's
 * EFS host goes: the caller escapes each line for its language, then fills them.
 */
export function userDataLines(spec: Spec): string[] {
  const env = launchEnv(spec);
  return [
    "#!/bin/sh",
    "# The only launch inputs are the declared environment and the external volumes:",
    "# everything else is in the image, and nothing is changed after launch.",
    "set -eu",
    "install -d -m 0755 /run/kiln",
    `cat > /run/kiln/${spec.name}.env <<'ENV'`,
    ...Object.keys(env).map((k) => envLine(k, env[k]!)),
    "ENV",
    ...spec.volumes.map((v) => `mount -t nfs4 -o nfsvers=4.1,hard,timeo=600,retrans=2,noresvport ${fsPlaceholder(v.name)}:/ ${v.path}`),
    `systemctl start ${spec.name}.service`,
  ];
}

/** Escape literal text for Fn::Sub ("${" → "${!"). */
export function subLiteral(text: string): string {
  return text.replace(/\$\{/g, "${!");
}

export function cfnUserData(spec: Spec): Cfn {
  const lines = userDataLines(spec).map((l) => fillFs(subLiteral(l), (v) => `\${${volumeParameter(v)}}.efs.\${AWS::Region}.amazonaws.com`));
  return { "Fn::Base64": sub(`${lines.join("\n")}\n`) };
}

export function cfnTags(spec: Spec, image: ImageInfo, propagate?: boolean): Cfn[] {
  const tags: [string, string][] = [
    ["Name", image.timestampedName],
    ["kiln:service", spec.name],
    ["kiln:version", spec.version],
    ["kiln:image-digest", image.digest],
  ];
  return tags.map(([Key, Value]) => (propagate === undefined ? { Key, Value } : { Key, Value, PropagateAtLaunch: propagate }));
}

export function cfnTargetGroup(spec: Spec, vpcRef: Cfn): Cfn {
  const hc = albHealthCheck(spec);
  return {
    Type: "AWS::ElasticLoadBalancingV2::TargetGroup",
    Properties: {
      VpcId: vpcRef,
      Protocol: "HTTP",
      Port: spec.image.port,
      TargetType: "instance",
      HealthCheckEnabled: true,
      HealthCheckProtocol: "HTTP",
      HealthCheckPort: "traffic-port",
      HealthCheckPath: hc.path,
      HealthCheckIntervalSeconds: hc.intervalSeconds,
      HealthCheckTimeoutSeconds: hc.timeoutSeconds,
      HealthyThresholdCount: hc.healthyThreshold,
      UnhealthyThresholdCount: hc.unhealthyThreshold,
      Matcher: { HttpCode: "200-299" },
      TargetGroupAttributes: [{ Key: "deregistration_delay.timeout_seconds", Value: String(seconds(spec.drainTimeout)) }],
    },
  };
}

/** Load balancer and instance security groups: the instances take traffic only from the load balancer, on the app port. */
export function cfnSecurityGroups(spec: Spec): Record<string, Cfn> {
  return {
    LoadBalancerSecurityGroup: {
      Type: "AWS::EC2::SecurityGroup",
      Properties: {
        GroupDescription: `${spec.name}: clients to the load balancer`,
        VpcId: ref("VpcId"),
        SecurityGroupIngress: [{ IpProtocol: "tcp", FromPort: ref("ListenerPort"), ToPort: ref("ListenerPort"), CidrIp: "0.0.0.0/0" }],
      },
    },
    InstanceSecurityGroup: {
      Type: "AWS::EC2::SecurityGroup",
      Properties: {
        GroupDescription: `${spec.name}: load balancer to instances on port ${spec.image.port} only (no SSH: instances are never entered)`,
        VpcId: ref("VpcId"),
        SecurityGroupIngress: [
          { IpProtocol: "tcp", FromPort: spec.image.port, ToPort: spec.image.port, SourceSecurityGroupId: getAtt("LoadBalancerSecurityGroup", "GroupId") },
        ],
      },
    },
  };
}

export function cfnLaunchTemplate(spec: Spec, image: ImageInfo, imageRef: Cfn): Cfn {
  return {
    Type: "AWS::EC2::LaunchTemplate",
    Properties: {
      LaunchTemplateData: {
        ImageId: imageRef,
        InstanceType: ref("InstanceType"),
        SecurityGroupIds: [getAtt("InstanceSecurityGroup", "GroupId")],
        MetadataOptions: { HttpTokens: "required", HttpEndpoint: "enabled" },
        UserData: cfnUserData(spec),
        TagSpecifications: [{ ResourceType: "instance", Tags: cfnTags(spec, image) }],
      },
    },
  };
}

export function cfnCommonParameters(spec: Spec): Record<string, Cfn> {
  const out: Record<string, Cfn> = {
    VpcId: { Type: "AWS::EC2::VPC::Id", Description: "VPC of the load balancer and the instances." },
    SubnetIds: { Type: "List<AWS::EC2::Subnet::Id>", Description: "Subnets (two availability zones at least) for the load balancer and the instances." },
    InstanceType: { Type: "String", Default: "t3.small" },
    ListenerPort: { Type: "Number", Default: listenPort(spec), Description: "Port the load balancer listens on (kiln.yaml listen)." },
  };
  for (const v of spec.volumes) {
    out[volumeParameter(v.name)] = {
      Type: "String",
      Description: `EFS file system mounted at ${v.path} (volume "${v.name}"): state lives outside the image, shared by old and new instances. The image needs nfs-common.`,
    };
  }
  return out;
}

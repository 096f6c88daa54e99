// Public API of generate/: kiln.yaml + the baked image → a platform's config
// files, as data. Every emitter is a pure function of (spec, image): same input,
// byte-identical output; the CLI verb does the writing.

import type { Spec } from "../config/index.js";
import { emitArgoRollouts } from "./argo-rollouts.js";
import { emitAwsAsg } from "./aws-asg.js";
import { emitAwsBlueGreen } from "./aws-blue-green.js";
import { emitHaproxy } from "./haproxy.js";
import { emitKubernetes } from "./kubernetes.js";
import { emitNomad } from "./nomad.js";
import { emitPacker } from "./packer.js";
import { emitSwarm } from "./swarm.js";
import { emitSystemd } from "./systemd.js";
import { HOST_TARGET_NAMES, TARGET_NAMES, type GeneratedFile, type HostInfo, type HostTarget, type HostTargetName, type ImageInfo, type Target, type TargetName } from "./types.js";

export const TARGETS: readonly Target[] = [
  { name: "packer", summary: "Packer HCL2 template (amazon-ebs + docker) that bakes the same service as a VM image", emit: emitPacker },
  { name: "aws-asg", summary: "CloudFormation + Terraform: Auto Scaling group, ALB, instance refresh with kiln's rollout", emit: emitAwsAsg },
  { name: "aws-blue-green", summary: "CloudFormation blue/green fleets on a weighted listener + shift.sh (promote, rollback)", emit: emitAwsBlueGreen },
  { name: "kubernetes", summary: "Deployment + Service (+ PersistentVolumeClaims), image by digest", emit: emitKubernetes },
  { name: "argo-rollouts", summary: "Argo Rollouts Rollout (blueGreen or canary) + Services", emit: emitArgoRollouts },
  { name: "swarm", summary: "Docker Swarm stack file with update_config/rollback_config", emit: emitSwarm },
  { name: "nomad", summary: "Nomad job with an update block", emit: emitNomad },
  { name: "haproxy", summary: "HAProxy config: frontend on listen, backend with kiln's health checks", emit: emitHaproxy },
];

/** Targets that run kiln's own daemons on this host: they need its paths, not an image. */
export const HOST_TARGETS: readonly HostTarget[] = [
  { name: "systemd", summary: "systemd units for this host: the proxy and the controller, restarted by systemd with a backoff", emit: emitSystemd },
];

export function isHostTargetName(s: string): s is HostTargetName {
  return (HOST_TARGET_NAMES as readonly string[]).includes(s);
}

/** The files a host target writes for this spec and host, sorted by path. */
export function generateHost(target: HostTargetName, spec: Spec, host: HostInfo): GeneratedFile[] {
  const t = HOST_TARGETS.find((x) => x.name === target)!;
  return [...t.emit(spec, host)].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

export function isTargetName(s: string): s is TargetName {
  return (TARGET_NAMES as readonly string[]).includes(s);
}

/** The files `target` needs for this spec and image, sorted by path. */
export function generate(target: TargetName, spec: Spec, image: ImageInfo): GeneratedFile[] {
  const t = TARGETS.find((x) => x.name === target)!;
  return [...t.emit(spec, image)].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

export { HOST_TARGET_NAMES, TARGET_NAMES, type GeneratedFile, type HostInfo, type HostTarget, type HostTargetName, type ImageInfo, type Target, type TargetName } from "./types.js";
export { execWord, SYSTEM_PATH } from "./systemd.js";
export { PACKAGES_LABEL, formatPackagesLabel, parsePackagesLabel, isPackageName, isPackageVersion, type PinnedPackage } from "./packages.js";
export { awsRefresh, kubernetesRolling, swarmUpdate, nomadUpdate, albHealthCheck, goDuration } from "./derive.js";

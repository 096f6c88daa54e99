// Types of the generate module: what an emitter reads (the normalized spec and
// the identity of the baked image) and what it returns (files as data; the CLI
// verb does the writing).

import type { Spec } from "../config/index.js";

/** The baked image a generated config deploys, identified by digest, never by tag. */
export interface ImageInfo {
  /** where platforms pull it from, without tag or digest: "hello", "registry.example.com/team/hello" */
  repository: string;
  /** manifest digest, "sha256:<64 hex>" */
  digest: string;
  /** "<repository>@<digest>" */
  reference: string;
  /** RFC 3339 UTC, whole seconds: the image's created annotation (or SOURCE_DATE_EPOCH / commit time) */
  created: string;
  /** "<name>-<version>-<YYYYMMDDhhmmss>" from created */
  timestampedName: string;
  /** git commit the image was baked from, when known */
  revision?: string;
}

export interface GeneratedFile {
  /** relative path inside the output directory, "/"-separated */
  path: string;
  content: string;
  /** file mode to write with (scripts are 0o755); default 0o644 */
  mode?: number;
}

/** A pure function from kiln.yaml and the image to the target platform's files. */
export type Emitter = (spec: Spec, image: ImageInfo) => GeneratedFile[];

export const TARGET_NAMES = [
  "packer",
  "aws-asg",
  "aws-blue-green",
  "kubernetes",
  "argo-rollouts",
  "swarm",
  "nomad",
  "haproxy",
] as const;

export type TargetName = (typeof TARGET_NAMES)[number];

export interface Target {
  name: TargetName;
  /** one line for `kiln generate --help` */
  summary: string;
  emit: Emitter;
}

/**
 * What a host target (`kiln generate systemd`) runs instead of an image: the daemons' command
 * lines with absolute paths, where they write, and the environment they need. The CLI resolves
 * it from kiln.yaml, $KILN_HOME and this machine; the emitter stays a pure function of it.
 */
export interface HostInfo {
  /** unit names start with it: "kiln-hello", "kiln-hello-production" */
  unitPrefix: string;
  /** kiln.yaml's directory */
  workingDirectory: string;
  /** the user the daemons run as; absent: root (no User= line) */
  user?: string;
  /** the built-in proxy; absent with router haproxy, whose HAProxy the controller starts and keeps */
  proxy?: { argv: string[]; log: string };
  controller: { argv: string[]; log: string };
  /** directories the daemons write to: $KILN_HOME and its sockets' directory */
  writablePaths: string[];
  /** fixed environment, in order: PATH, DOCKER_HOST… */
  environment: { name: string; value: string }[];
  /** variables only an EnvironmentFile should hold (webhook signing keys…), named in a comment */
  secretNames: string[];
  /** where those secrets are read from (optional file) */
  environmentFile: string;
  /** units the controller starts after and wants (docker.service for provider docker) */
  wants: string[];
}

/** A pure function from kiln.yaml and this host's paths to unit files. */
export type HostEmitter = (spec: Spec, host: HostInfo) => GeneratedFile[];

/** Targets that run kiln itself on a host, rather than the image on a platform. */
export const HOST_TARGET_NAMES = ["systemd"] as const;
export type HostTargetName = (typeof HOST_TARGET_NAMES)[number];

export interface HostTarget {
  name: HostTargetName;
  summary: string;
  emit: HostEmitter;
}

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

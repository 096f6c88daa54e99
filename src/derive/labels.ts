// kiln's label vocabulary: the names it writes on containers, Swarm services and tasks,
// volumes, audit sandboxes and generated images, and reads back to adopt what it started.

export const LABEL = {
  /** "kiln" on what kiln created (Swarm services, tasks, volumes): kiln never touches what it did not create */
  managedBy: "dev.kiln.managed-by",
  service: "dev.kiln.service",
  release: "dev.kiln.release",
  version: "dev.kiln.version",
  /** the kiln image's manifest digest, "sha256:…" */
  digest: "dev.kiln.image-digest",
  configHash: "dev.kiln.config-hash",
  instance: "dev.kiln.instance",
  /** on helper containers and volumes, so they are never mistaken for instances */
  role: "dev.kiln.role",
  /** on a volume: the kiln.yaml volume name it holds */
  volume: "dev.kiln.volume",
  /** on an audit sandbox container: the digest under audit */
  audit: "dev.kiln.audit",
  /** on an image built from a kiln image (Packer): the kiln image's digest */
  sourceDigest: "dev.kiln.source-digest",
  /** in kiln.yaml image.labels: the pinned Debian packages (`kiln init --packages`) */
  packages: "dev.kiln.packages",
} as const;

/** Names older kiln versions wrote, read so that what they started is still adopted. */
export const LEGACY_LABEL = {
  /** the Docker provider's digest label before one vocabulary (containers started then still carry it) */
  digest: "dev.kiln.digest",
} as const;

/** The image digest a container or task carries, under today's name or the legacy one. */
export function digestLabel(labels: Record<string, string> | undefined): string | undefined {
  return labels?.[LABEL.digest] ?? labels?.[LEGACY_LABEL.digest];
}

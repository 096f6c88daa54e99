// The one seam between the controller and whatever runs instances.
// A provider launches an instance from an image digest and never changes it
// afterwards: there is deliberately no exec/ssh/update member.

import type { ResourceLimits } from "../config/resources.js";

export interface VolumeMount {
  /** declared volume name (kiln.yaml `volumes[].name`) */
  name: string;
  /** absolute path inside the instance */
  path: string;
}

export interface LaunchRequest {
  /** unique, chosen by the controller before launch (so the intent can be journaled first) */
  instanceId: string;
  service: string;
  /** release id this instance belongs to */
  release: string;
  /** image manifest digest, "sha256:…" */
  digest: string;
  /** declared environment (kiln.yaml `env`), merged over the image's env; PORT is added by the provider */
  env: Record<string, string>;
  volumes: VolumeMount[];
  /**
   * "host": the instance shares the host's network (kiln.yaml `docker.network: host`), so it reaches
   * what listens on the host's loopback; the local provider always runs that way, the Docker provider
   * then gives it a PORT of its choosing on 127.0.0.1. Absent: the provider's default.
   */
  network?: "host";
  /** kiln.yaml `resources`: per-instance limits the provider enforces (see limitsEnforcement); absent: none */
  resources?: ResourceLimits;
  /**
   * kiln.yaml `network` (providers that isolate an instance's network: local). "private": its own
   * namespace, dialling only `allow` ("127.0.0.1:PORT", checked by the loader); "host": the host's.
   * Absent: private with no egress.
   */
  isolation?: { mode: "private" | "host"; allow: string[] };
}

/**
 * How a provider enforces `resources` on this host, for `kiln status`: "cgroup-v2" / "cgroup-v1"
 * (the kernel's control groups), "rlimit" (per-process rlimits: weaker, see the local provider's
 * limits.ts), "engine" (Docker's or Swarm's own limits).
 */
export type LimitsEnforcement = "cgroup-v2" | "cgroup-v1" | "rlimit" | "engine";

export type InstanceState = "running" | "exited";

export interface ObservedInstance {
  id: string;
  service: string;
  release: string;
  digest: string;
  /**
   * "HOST:PORT" where the instance serves HTTP: 127.0.0.1 on one machine; a node's address on a
   * multi-node provider (swarm), which the router must reach. "" when the provider does not know
   * it (yet): a stopped container, a Swarm task not running yet.
   */
  address: string;
  /** host process id (local provider: the sandbox's leader; docker: the container's init) */
  pid?: number;
  state: InstanceState;
  exitCode?: number | null;
  /** epoch ms */
  startedAt: number;
}

export interface Provider {
  readonly name: string;
  /** Start an instance; resolves once it is started (not necessarily healthy). Idempotent per instanceId. */
  launch(req: LaunchRequest): Promise<ObservedInstance>;
  /** Stop an instance: SIGTERM, wait up to graceMs, then SIGKILL. Idempotent: unknown ids resolve. */
  terminate(instanceId: string, opts: { graceMs: number }): Promise<void>;
  /** Every instance this provider can see for the service, including ones launched by an earlier controller. */
  list(service: string): Promise<ObservedInstance[]>;
  /**
   * Optional change feed: the instances of `service` whose observation changed since `cursor`
   * (a value from an earlier answer) and the ids no longer seen, so an observer's cost follows
   * what changed. `full: true` (first call, or a cursor the provider can no longer answer
   * from): `instances` is every instance, as list() would give. Without it, list() is used.
   */
  changes?(service: string, cursor: number | undefined): Promise<InstanceChanges>;
  /**
   * The controller saw the instance answer its first health probe: its start is over. A provider
   * that gives starting instances more of the machine (local: startup-boost.ts) stops doing so.
   */
  started?(instanceId: string): void;
  /** How the instance is networked, for `status` (local: its own namespace and egress, or the host's network and why). */
  networkOf?(instanceId: string): string | undefined;
  /** Path of the instance's log file, if the provider keeps one. */
  logPath?(instanceId: string): string | undefined;
  /** The last `lines` lines of the instance's output, for providers whose logs live outside the host filesystem (Docker); undefined for an unknown instance. */
  readLogs?(instanceId: string, opts: { lines: number }): Promise<string | undefined>;
  /** Instances of `service` that no longer exist but whose log was kept (readLogs still answers for them). */
  keptLogs?(service: string): string[];
  /** How `resources` limits are enforced here (absent: this provider does not enforce them). */
  limitsEnforcement?(): LimitsEnforcement;
  /**
   * How instances are isolated here, for `kiln status`: "bwrap" (the local provider's sandbox) or
   * "chroot" (its unisolated fallback, `--sandbox none`); absent for engines, which isolate by
   * their own rules. Throws when instances cannot be run at all.
   */
  sandboxKind?(): "bwrap" | "chroot";
}

export interface InstanceChanges {
  cursor: number;
  full: boolean;
  instances: ObservedInstance[];
  removed: string[];
}

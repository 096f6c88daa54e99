// The one seam between the controller and whatever runs instances.
// A provider launches an instance from an image digest and never changes it
// afterwards: there is deliberately no exec/ssh/update member.

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
}

export type InstanceState = "running" | "exited";

export interface ObservedInstance {
  id: string;
  service: string;
  release: string;
  digest: string;
  /** "127.0.0.1:PORT" — where the instance serves HTTP ("" when a provider no longer knows it: a stopped container) */
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
  /** Path of the instance's log file, if the provider keeps one. */
  logPath?(instanceId: string): string | undefined;
  /** The last `lines` lines of the instance's output, for providers whose logs live outside the host filesystem (Docker); undefined for an unknown instance. */
  readLogs?(instanceId: string, opts: { lines: number }): Promise<string | undefined>;
  /** Instances of `service` that no longer exist but whose log was kept (readLogs still answers for them). */
  keptLogs?(service: string): string[];
}

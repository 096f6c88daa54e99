// The seam between the audit and what runs the instance: one small interface,
// one file per backend (local-sandbox.ts, docker-sandbox.ts).

import type { PathChange, SandboxProcess } from "./types.js";

export interface RunConfig {
  /** image config Env, "K=V" */
  imageEnv: string[];
  entrypoint: string[];
  cmd: string[];
  user: string;
  workdir: string;
  /** declared environment (kiln.yaml `env`) */
  env: Record<string, string>;
  volumes: { name: string; path: string }[];
}

export interface AuditSandbox {
  readonly provider: "local" | "docker";
  /** Starts the instance (the first time, or again after stop). Resolves once it runs, not once it is healthy. */
  start(): Promise<{ address: string }>;
  isRunning(): Promise<boolean>;
  /** Its processes and the TCP ports they listen on, now. */
  observe(): Promise<{ processes: SandboxProcess[]; listeningPorts: number[] }>;
  /** SIGTERM, wait up to graceMs, then SIGKILL. */
  stop(graceMs: number): Promise<{ exitCode: number | null; killed: boolean }>;
  /** The writable root against the image (call while stopped). */
  changes(): Promise<PathChange[]>;
  /** Host path of a file in the writable layer (for the read-after-restart probe), when reachable. */
  hostPathOf(path: string): Promise<string | undefined>;
  /** The last lines the instance printed. */
  logTail(): Promise<string>;
  /** Removes everything the sandbox made (stops it first if needed). */
  dispose(): Promise<void>;
}

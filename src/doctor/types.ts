// The doctor's vocabulary: facts gathered from a home (I/O), findings diagnosed from
// them (pure), and repairs as data that an applier carries out.

import type { StateBackend } from "../state/driver.js";
import type { InstanceRecord, Release, RolloutRecord } from "../state/db.js";
import type { ObservedInstance } from "../providers/provider.js";
import type { Target } from "../traffic/router.js";

export type Severity = "error" | "warning" | "info";

/** Named check codes: stable, part of the --json contract. */
export type CheckCode =
  | "state.unreadable"
  | "state.integrity"
  | "state.schema"
  | "lease.dead"
  | "daemon.stale-pidfile"
  | "daemon.stale-socket"
  | "daemon.unresponsive"
  | "provider.unavailable"
  | "instance.vanished"
  | "instance.orphan"
  | "routes.invalid"
  | "routes.dead-target"
  | "release.image-missing"
  | "rollout.stuck"
  | "rollout.paused"
  | "rootfs.orphan"
  | "sandbox.unavailable"
  | "network.shared";

/** A repair `kiln doctor --repair` may carry out: each is idempotent and touches one thing. */
export type RepairAction =
  | { kind: "drop-lease"; service: string; owner: string }
  | { kind: "remove-file"; path: string }
  | { kind: "terminate-orphan"; service: string; instanceId: string }
  | { kind: "mark-gone"; instanceId: string }
  | { kind: "prune-routes"; file: string; targetIds: string[] }
  | { kind: "remove-rootfs"; digest: string; path: string };

export interface Finding {
  check: CheckCode;
  severity: Severity;
  /** one line: what is wrong */
  what: string;
  /** the file, instance id, release, digest… it is about */
  where: string;
  /** what to do about it (what --repair does, when it can) */
  fix: string;
  /** present when --repair can fix it safely now */
  repair?: RepairAction;
  /** why --repair leaves it alone, when it is repairable in principle */
  blockedBy?: string;
}

export interface RepairOutcome {
  ok: boolean;
  /** what was done, or why it failed */
  did: string;
}

export interface ReportedFinding extends Finding {
  repaired?: RepairOutcome;
}

export interface DoctorReport {
  schemaVersion: 1;
  home: string;
  services: string[];
  checkedAt: string;
  durationMs: number;
  repair: boolean;
  /** no error or warning finding is left unrepaired */
  healthy: boolean;
  findings: ReportedFinding[];
  counts: { error: number; warning: number; info: number; repaired: number; remaining: number };
  /** the state backend examined: "sqlite" (a file in the home) or "postgres" (shared; URL without its password) */
  state: { backend: StateBackend; where: string };
}

// ---------------------------------------------------------------- facts

export interface DaemonFacts {
  name: "controller" | "proxy";
  pidFile: string;
  pidFileExists: boolean;
  /** the number in the pid file, when it holds one */
  pid?: number;
  pidAlive: boolean;
  socket: string;
  socketExists: boolean;
  /** something accepted a connection on the socket */
  socketAnswers: boolean;
}

export interface LeaseFacts {
  service: string;
  owner: string;
  until: number;
  /** undefined when the holder is on another host (cannot be checked from here) */
  ownerAlive?: boolean;
}

export interface ReleaseImageFacts {
  release: Release;
  /** why it is in the keep window: "among the newest 5", "live", "rollback target of the live release" */
  why: string;
  live: boolean;
  /** manifest and every blob it names are present */
  complete: boolean;
  /** what is missing, when not complete */
  missing: string[];
}

export interface ServiceFacts {
  service: string;
  /** recorded, not terminated */
  recorded: InstanceRecord[];
  /** what the provider sees; undefined when the provider could not be asked */
  observed?: ObservedInstance[];
  providerError?: string;
  /** the provider is not one kiln runs instances with here (e.g. swarm): instance checks skipped */
  providerSkipped?: boolean;
  releases: ReleaseImageFacts[];
  rollouts: { rollout: RolloutRecord; deadlineMs?: number }[];
}

export interface RoutesFacts {
  source: "proxy" | "file" | "none";
  file: string;
  targets: Target[];
  /** the file exists but is not a valid table */
  problems?: string[];
}

export interface RootfsFacts {
  digest: string;
  path: string;
  inStore: boolean;
  /** running provider instances that use it */
  usedBy: string[];
}

/** `file`: the SQLite file, or the PostgreSQL URL with its password hidden; `backend` absent: sqlite. */
export type StateFacts =
  | { kind: "missing"; backend?: StateBackend; file: string }
  | { kind: "unreadable"; backend?: StateBackend; file: string; error: string }
  | { kind: "ok"; backend?: StateBackend; file: string; integrity: string[]; schema: { version: number; latest: number } };

export interface Facts {
  now: number;
  home: string;
  keep: number;
  state: StateFacts;
  leases: LeaseFacts[];
  controller: DaemonFacts;
  proxy: DaemonFacts;
  services: ServiceFacts[];
  routes: RoutesFacts;
  rootfs: RootfsFacts[];
  /** the local provider's sandbox (absent for other providers): the bwrap found and the options it lacks, or null when none is installed */
  sandbox?: { bwrap: { path: string; missing: string[] } | null; /** pasta (private instance networks), null when not installed */ pasta?: string | null };
}

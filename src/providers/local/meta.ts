// <home>/instances/<id>/meta.json: everything a later controller needs to
// adopt, observe and stop an instance it did not start. Written atomically
// (tmp + rename), so a reader sees the old or the new record, never half.

import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { threadId } from "node:worker_threads";
import type { ResourceLimits } from "../../config/resources.js";
import type { LocalEnforcement } from "./limits.js";

export type SandboxKind = "bwrap" | "chroot";

export interface InstanceMeta {
  schema: 1;
  id: string;
  service: string;
  release: string;
  digest: string;
  /** "127.0.0.1:PORT" */
  address: string;
  port: number;
  /** the spawned process: bwrap's monitor (bwrap) or the app itself (chroot); also the process group id */
  pid: number;
  /** /proc/<pid>/stat field 22, to tell our process from a later one with the same pid */
  startTime: number;
  /** epoch ms */
  startedAt: number;
  sandbox: SandboxKind;
  uid: number;
  gid: number;
  /** the host uid/gid from kiln's range (uid-range.ts) the instance runs as; absent: uid/gid */
  hostUid?: number;
  hostGid?: number;
  /** the instance's private mount namespace (inode number); every process of the instance lives in it */
  mountNamespace?: number;
  /** stat start time of bwrap's child (the PID namespace's init, "child-pid" in bwrap's status) */
  childStartTime?: number;
  /** set when kiln asked it to stop */
  terminatedAt?: number;
  /** known exit code; a death by signal N is recorded as 128+N; null when unknown */
  exitCode?: number | null;
  exitedAt?: number;
  /** kiln.yaml `resources` as enforced for this instance (limits.ts); absent: none declared */
  limits?: InstanceLimitsRecord;
}

export interface InstanceLimitsRecord {
  enforcement: LocalEnforcement;
  resources: ResourceLimits;
  /** the instance's cgroup directories (cgroup modes), removed once it has exited */
  cgroups: string[];
  /** the limit hits were read and logged (once, after the exit) */
  reported?: boolean;
  /** the cgroups are gone */
  released?: boolean;
}

export const META_FILE = "meta.json";
/** bwrap --json-status-fd output: {"child-pid": …, "pid-namespace": …} then {"exit-code": N} */
export const STATUS_FILE = "bwrap-status.jsonl";
export const LOG_FILE = "log";

export function readMeta(dir: string): InstanceMeta | undefined {
  try {
    const m = JSON.parse(readFileSync(join(dir, META_FILE), "utf8")) as InstanceMeta;
    return m && m.schema === 1 && typeof m.pid === "number" ? m : undefined;
  } catch {
    return undefined;
  }
}

export function writeMeta(dir: string, meta: InstanceMeta): void {
  writeRecordFile(dir, META_FILE, meta, 2);
}

/**
 * An instance's JSON record (meta.json, net.json), replaced whole: written beside it, then renamed
 * over it. The temporary name is this thread's (spawner.ts writes records on worker threads).
 */
export function writeRecordFile(dir: string, file: string, value: unknown, indent?: number): void {
  const tmp = join(dir, `.${file}.${process.pid}.${threadId}.tmp`);
  writeFileSync(tmp, JSON.stringify(value, null, indent) + "\n", { mode: 0o644 });
  renameSync(tmp, join(dir, file));
}

export interface BwrapStatus {
  /** host pid of the sandbox's PID 1 */
  childPid?: number;
  pidNamespace?: number;
  exitCode?: number;
}

export function parseBwrapStatus(text: string): BwrapStatus {
  const out: BwrapStatus = {};
  // bwrap writes whole JSON documents, one per line in 0.8; tolerate pretty-printed ones too
  for (const doc of text.split(/\n(?=\{)/)) {
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(doc) as Record<string, unknown>;
    } catch {
      continue; // a document still being written
    }
    if (typeof o["child-pid"] === "number") out.childPid = o["child-pid"];
    if (typeof o["pid-namespace"] === "number") out.pidNamespace = o["pid-namespace"];
    if (typeof o["exit-code"] === "number") out.exitCode = o["exit-code"];
  }
  return out;
}

export function readBwrapStatus(dir: string): BwrapStatus {
  try {
    return parseBwrapStatus(readFileSync(join(dir, STATUS_FILE), "utf8"));
  } catch {
    return {};
  }
}

// `kiln audit`: is this image ready to be immutable? Run it with a writable root,
// exercise it, stop it (SIGTERM), start it again on the same root, exercise it
// again, then classify what it did (classify.ts) and what it ships (image-scan.ts).
//
// The order matters: the static scan reads the pristine unpacked image before any
// run; the writable layer is read only while the instance is stopped; the files
// written in the first run are marked (atime) before the restart so the second run
// shows which of them the app needed again.

import { readFileSync } from "node:fs";
import { join, posix } from "node:path";
import { KilnError } from "../errors.js";
import { readImage, readImageFile, unpackRootfs, type Store } from "../image/index.js";
import type { Spec } from "../config/index.js";
import { classify, verdictOf, writtenFilesOutsideVolumes } from "./classify.js";
import { createDockerSandbox } from "./docker-sandbox.js";
import { describeRequest, sendRequest, waitHealthy } from "./exercise.js";
import { listImageFiles, scanSecrets } from "./image-scan.js";
import { createLocalSandbox } from "./local-sandbox.js";
import type { AuditSandbox, RunConfig } from "./sandbox.js";
import type { Finding, RunPhase, RunRecord, SandboxProcess, SmokeRequest, Verdict } from "./types.js";
import { markUnread, readSinceMark } from "./upper-dir.js";

export const AUDIT_SCHEMA = "kiln.audit/v1";
export const AUDIT_PROVIDERS = ["local", "docker"] as const;
export type AuditProvider = (typeof AUDIT_PROVIDERS)[number];

export interface AuditOptions {
  store: Store;
  /** manifest digest */
  digest: string;
  /** what the user asked for ("hello:1.0.0"), for the report */
  ref: string;
  /** kiln.yaml: volumes, env, health, drainTimeout */
  spec: Pick<Spec, "volumes" | "env" | "health" | "drainTimeout">;
  provider: AuditProvider;
  smoke: SmokeRequest[];
  /** progress lines (stderr) */
  log: (line: string) => void;
  /** how long each start may take to answer its health check (default 20 s) */
  healthDeadlineMs?: number;
}

export interface AuditReport {
  schema: typeof AUDIT_SCHEMA;
  image: { ref: string; digest: string };
  provider: AuditProvider;
  verdict: Verdict;
  /** exit status the CLI gives this report: 1 on any fail finding */
  blocking: boolean;
  counts: { fail: number; warn: number };
  findings: Finding[];
  runs: RunRecord[];
  observed: {
    volumes: string[];
    /** changed paths in the writable root (before classification) */
    changedPaths: number;
    /** files scanned in the image */
    imageFiles: number;
    processes: string[];
    listeningPorts: number[];
    /** whether "written before the restart, read after it" could be checked */
    readAfterRestartChecked: boolean;
  };
  /** the instance's last output, when a run was unhealthy */
  logTail?: string;
  durationMs: number;
}

export async function auditImage(o: AuditOptions): Promise<AuditReport> {
  const started = Date.now();
  const { config } = await readImage(o.store, o.digest);
  const rc = config.config ?? {};
  o.log(`auditing ${o.ref} (${o.digest.slice(0, 19)}) with the ${o.provider} provider`);

  o.log("- scanning the image's files");
  const rootfs = await unpackRootfs(o.store, o.digest);
  const files = await listImageFiles(rootfs);
  const secrets = await scanSecrets(rootfs, files);
  let passwd: string | undefined;
  try {
    passwd = readImageFile(rootfs, "/etc/passwd");
  } catch {
    passwd = undefined;
  }

  const run: RunConfig = {
    imageEnv: rc.Env ?? [],
    entrypoint: rc.Entrypoint ?? [],
    cmd: rc.Cmd ?? [],
    user: rc.User ?? "",
    workdir: rc.WorkingDir ?? "/",
    env: o.spec.env,
    volumes: o.spec.volumes.map((v) => ({ name: v.name, path: v.path })),
  };
  const exposed = Object.keys(rc.ExposedPorts ?? {});
  const containerPort = Number(exposed.map((p) => p.split("/")[0]).find((p) => /^[0-9]+$/.test(p ?? "")) ?? 8080);

  const sandbox: AuditSandbox =
    o.provider === "local"
      ? await createLocalSandbox(rootfs, run, o.log)
      : await createDockerSandbox(o.store, o.digest, run, { passwd, containerPort, log: o.log });

  const runs: RunRecord[] = [];
  const processes = new Map<number, SandboxProcess>();
  const listening = new Set<number>();
  let carried: string[] = [];
  let readAfterRestartChecked = false;
  let changes: Awaited<ReturnType<AuditSandbox["changes"]>> = [];
  let logTail: string | undefined;
  const volumes = run.volumes.map((v) => v.path);
  const grace = Math.max(1000, o.spec.drainTimeout);

  const exercise = async (phase: RunPhase): Promise<RunRecord> => {
    o.log(`- ${phase === "first-start" ? "starting" : "starting again"}`);
    const { address } = await sandbox.start();
    const h = await waitHealthy(address, o.spec.health.path, {
      deadlineMs: Math.max(o.healthDeadlineMs ?? 20_000, o.spec.health.grace),
      timeoutMs: o.spec.health.timeout,
      isAlive: () => sandbox.isRunning(),
    });
    const rec: RunRecord = { phase, healthy: h.ok, smoke: [] };
    if (h.ok) {
      rec.healthyAfterMs = h.afterMs;
      o.log(`  healthy after ${h.afterMs} ms (GET ${o.spec.health.path})`);
      for (const req of o.smoke) {
        const r = await sendRequest(address, req, Math.max(5000, o.spec.health.timeout));
        rec.smoke.push(r);
        o.log(`  ${describeRequest(req)} → ${r.status ?? r.error}`);
      }
    } else {
      rec.healthError = h.reason;
      o.log(`  not healthy: ${h.reason}`);
    }
    const seen = await sandbox.observe();
    for (const p of seen.processes) processes.set(p.pid, p);
    for (const p of seen.listeningPorts) listening.add(p);
    o.log("  stopping (SIGTERM)");
    const t0 = Date.now();
    const stop = await sandbox.stop(grace);
    rec.stop = { ...stop, ms: Date.now() - t0 };
    if (!h.ok) logTail = await sandbox.logTail();
    return rec;
  };

  try {
    const first = await exercise("first-start");
    runs.push(first);
    if (first.healthy) {
      const before = writtenFilesOutsideVolumes(await sandbox.changes(), volumes);
      const hostPaths = new Map<string, string>();
      for (const p of before) {
        const h = await sandbox.hostPathOf(p);
        if (h) hostPaths.set(h, p);
      }
      readAfterRestartChecked = before.length === 0 || hostPaths.size > 0;
      const marks = await markUnread([...hostPaths.keys()]);
      runs.push(await exercise("after-restart"));
      carried = (await readSinceMark(marks)).map((h) => hostPaths.get(h)!).filter(Boolean);
    }
    changes = await sandbox.changes();
  } finally {
    await sandbox.dispose().catch((e: unknown) => o.log(`  could not clean up the sandbox: ${(e as Error).message}`));
  }

  const findings = classify({
    volumes,
    changes,
    user: run.user,
    passwd,
    files,
    secrets,
    env: run.imageEnv,
    exposedPorts: exposed,
    processes: [...processes.values()],
    listeningPorts: [...listening].sort((a, b) => a - b),
    carried,
    runs,
  });
  const verdict = verdictOf(findings);
  return {
    schema: AUDIT_SCHEMA,
    image: { ref: o.ref, digest: o.digest },
    provider: o.provider,
    verdict,
    blocking: verdict === "fail",
    counts: { fail: findings.filter((f) => f.severity === "fail").length, warn: findings.filter((f) => f.severity === "warn").length },
    findings,
    runs,
    observed: {
      volumes,
      changedPaths: changes.length,
      imageFiles: files.length,
      // The program's name, not /proc's comm: a program may rename its thread (Node 22+ calls its main thread "MainThread").
      processes: [...new Set([...processes.values()].map((p) => (p.exe ? posix.basename(p.exe) : p.comm)))].sort(),
      listeningPorts: [...listening].sort((a, b) => a - b),
      readAfterRestartChecked,
    },
    ...(logTail ? { logTail } : {}),
    durationMs: Date.now() - started,
  };
}

export function assertProvider(name: string): AuditProvider {
  if ((AUDIT_PROVIDERS as readonly string[]).includes(name)) return name as AuditProvider;
  throw new KilnError("KILN_E_USAGE", `unknown --provider "${name}"`, { hint: `use one of: ${AUDIT_PROVIDERS.join(", ")}` });
}

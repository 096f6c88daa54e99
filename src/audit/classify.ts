// Findings from what a sandbox run observed. Pure: no file system, no clock;
// the runners gather `AuditObservations`, this file decides what they mean.
//
// Writes, worked examples (volumes: /data):
//   created  /data/counter/a.json                  → nothing (inside a declared volume)
//   created  /tmp/x                                → nothing (/tmp is scratch, gone on replacement)
//   modified /var, modified /var/lib               → nothing by themselves (directories change
//                                                    when their entries do; those are reported)
//   created  /var/lib/app/, /var/lib/app/s.json    → one finding: created /var/lib/app/s.json
//   created  /root/.npm/ and 500 entries below     → one finding: created /root/.npm/ (500 entries)
//   modified /app/access.log                       → write-outside-volumes, fail
//   deleted  /app/cache.db                         → write-outside-volumes, fail
//   created  /data (a directory)                   → nothing (the sandbox made the mount point)
//   created  /srv (directory), volume at /srv/data → nothing (a parent of a mount point)
//
// User: "" / "0" / "root" / "0:0" / "root:staff" → runs-as-root; "app" when the image's
// /etc/passwd gives app uid 0 → runs-as-root; "1000:1000" → nothing.
//
// SSH: an executable named sshd / dropbear / dropbearmulti / tinysshd in the image, an
// sshd-like process while it ran, a socket listening on port 22, or EXPOSE 22 → ssh-daemon.

import { posix } from "node:path";
import { secretEnvNames } from "./secrets.js";
import type { Finding, ImageFile, PathChange, RunRecord, SandboxProcess, SecretHit, Verdict } from "./types.js";

export interface AuditObservations {
  /** declared volume paths (kiln.yaml `volumes[].path`) */
  volumes: readonly string[];
  /** the instance root against the image, after both runs */
  changes: readonly PathChange[];
  /** image config User */
  user: string;
  /** the image's /etc/passwd, to resolve a user name */
  passwd?: string;
  files: readonly ImageFile[];
  secrets: readonly { path: string; hits: readonly SecretHit[] }[];
  /** image config Env ("K=V") */
  env: readonly string[];
  /** image config ExposedPorts keys ("22/tcp") */
  exposedPorts: readonly string[];
  /** processes seen inside the sandbox while it ran (both runs) */
  processes: readonly SandboxProcess[];
  /** TCP ports the sandbox's processes listened on (inside its network view) */
  listeningPorts: readonly number[];
  /** files written outside volumes before the restart and read after it */
  carried: readonly string[];
  runs: readonly RunRecord[];
}

/** Paths the runtime owns: a write there is the sandbox's, not the app's. */
const RUNTIME_PATHS = ["/tmp", "/proc", "/sys", "/dev", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/.dockerenv", "/sbin/docker-init"];

const SSH_DAEMONS = new Set(["sshd", "dropbear", "dropbearmulti", "tinysshd"]);

export const WRITE_HINT = "move it to a declared volume (kiln.yaml `volumes`) or an external store (database, object store); everything else is lost when the instance is replaced";

export function isInside(path: string, dir: string): boolean {
  return path === dir || (dir === "/" ? path.startsWith("/") : path.startsWith(dir + "/"));
}

/** A created or deleted directory with more entries below it than this is reported as one line. */
export const COLLAPSE_OVER = 10;

/**
 * One entry per change that matters: directories that are only "modified" are dropped
 * (their entries carry the news); a created or deleted directory is listed through its
 * entries, unless it has more than COLLAPSE_OVER of them (an npm cache, say): then it
 * is one entry with a count. Sorted by path.
 */
export function normalizeChanges(changes: readonly PathChange[]): { change: PathChange; entries: number }[] {
  // "/" sorts before every other byte, so a directory's entries follow it directly ("/a/b" before "/a-b")
  const key = (p: string) => p.replaceAll("/", "\u0000");
  const sorted = [...changes].filter((c) => !(c.isDir && c.change === "modified")).sort((a, b) => (key(a.path) < key(b.path) ? -1 : key(a.path) > key(b.path) ? 1 : 0));
  const out: { change: PathChange; entries: number }[] = [];
  for (let i = 0; i < sorted.length; i++) {
    const c = sorted[i]!;
    if (c.isDir) {
      let n = 0; // sorted: everything below c follows it directly
      while (i + 1 + n < sorted.length && isInside(sorted[i + 1 + n]!.path, c.path)) n++;
      if (n > COLLAPSE_OVER) {
        out.push({ change: c, entries: n });
        i += n;
        continue;
      }
      if (n > 0) continue; // its entries are listed themselves
    }
    out.push({ change: c, entries: 0 });
  }
  return out;
}

/** True when the change is the app's and lands outside volumes and scratch space. */
export function isWriteOutsideVolumes(c: PathChange, volumes: readonly string[]): boolean {
  if (RUNTIME_PATHS.some((r) => isInside(c.path, r))) return false;
  if (volumes.some((v) => isInside(c.path, v))) return false;
  // a mount point (or a parent of one) the sandbox had to create for a volume or itself
  if (c.isDir && c.change === "created" && [...volumes, ...RUNTIME_PATHS].some((v) => isInside(v, c.path))) return false;
  return true;
}

/** Regular files created or modified outside volumes: the candidates for "state needed after a restart". */
export function writtenFilesOutsideVolumes(changes: readonly PathChange[], volumes: readonly string[]): string[] {
  return changes.filter((c) => !c.isDir && c.change !== "deleted" && isWriteOutsideVolumes(c, volumes)).map((c) => c.path);
}

export function classifyWrites(changes: readonly PathChange[], volumes: readonly string[]): Finding[] {
  const relevant = changes.filter((c) => isWriteOutsideVolumes(c, volumes));
  return normalizeChanges(relevant).map(({ change: c, entries }) => {
    const what = c.isDir ? `${c.path}/` : c.path;
    const below = entries > 0 ? ` (and ${entries} entr${entries === 1 ? "y" : "ies"} below it)` : "";
    return {
      kind: "write-outside-volumes",
      severity: "fail",
      path: c.path,
      change: c.change,
      isDir: c.isDir,
      ...(entries > 0 ? { entries } : {}),
      message: `${c.change} ${what}${below}, outside every declared volume`,
      hint: WRITE_HINT,
    };
  });
}

/** Uid of a user spec ("1000:1000", "root", "app:staff"), from the image's passwd for names; undefined when unknown. */
export function uidOf(user: string, passwd?: string): number | undefined {
  const u = user.trim().split(":")[0] ?? "";
  if (u === "") return 0; // no USER: the runtime starts the entrypoint as root
  if (/^[0-9]+$/.test(u)) return Number(u);
  if (u === "root") return 0;
  for (const line of (passwd ?? "").split("\n")) {
    const f = line.split(":");
    if (f[0] === u && /^[0-9]+$/.test(f[2] ?? "")) return Number(f[2]);
  }
  return undefined;
}

export function isRootUser(user: string, passwd?: string): boolean {
  return uidOf(user, passwd) === 0;
}

export function classifyUser(user: string, passwd?: string): Finding[] {
  if (!isRootUser(user, passwd)) return [];
  const shown = user.trim() === "" ? "(none: the image sets no user)" : JSON.stringify(user);
  return [
    {
      kind: "runs-as-root",
      severity: "fail",
      user,
      message: `the image runs as root, user ${shown}`,
      hint: 'run as an unprivileged user: image.user "1000:1000" in kiln.yaml (kiln bakes it into the image config)',
    },
  ];
}

const SSH_HINT = "remove the SSH server from the image: instances are never entered, they are replaced (logs and metrics leave through stdout and the network)";

export function classifySsh(
  files: readonly ImageFile[],
  processes: readonly SandboxProcess[],
  listeningPorts: readonly number[],
  exposedPorts: readonly string[],
): Finding[] {
  const out: Finding[] = [];
  for (const f of files) {
    if (f.kind === "file" && f.executable && SSH_DAEMONS.has(posix.basename(f.path)))
      out.push({ kind: "ssh-daemon", severity: "fail", evidence: "binary", path: f.path, message: `the image ships an SSH server: ${f.path}`, hint: SSH_HINT });
  }
  const seen = new Set<number>();
  for (const p of processes) {
    const names = [p.comm, posix.basename(p.exe)];
    if (names.some((n) => SSH_DAEMONS.has(n)) && !seen.has(p.pid)) {
      seen.add(p.pid);
      out.push({ kind: "ssh-daemon", severity: "fail", evidence: "process", pid: p.pid, message: `an SSH server ran inside the instance: ${p.exe || p.comm} (pid ${p.pid})`, hint: SSH_HINT });
    }
  }
  if (listeningPorts.includes(22))
    out.push({ kind: "ssh-daemon", severity: "fail", evidence: "listening-22", message: "the instance listened on port 22 (SSH)", hint: SSH_HINT });
  if (exposedPorts.some((p) => p === "22" || p.startsWith("22/")))
    out.push({ kind: "ssh-daemon", severity: "fail", evidence: "exposed-22", message: "the image config exposes port 22 (SSH)", hint: SSH_HINT });
  return out;
}

export function classifySecrets(secrets: AuditObservations["secrets"], env: readonly string[]): Finding[] {
  const out: Finding[] = [];
  for (const { path, hits } of secrets) {
    for (const h of hits) {
      const at = h.line !== undefined ? `${path}:${h.line}` : path;
      out.push({
        kind: "secret-file",
        severity: h.kind === "private-key" ? "fail" : "warn",
        secretKind: h.kind,
        path,
        ...(h.line !== undefined ? { line: h.line } : {}),
        message: `${h.kind} in the image at ${at} (${h.what})`,
        hint:
          h.kind === "private-key"
            ? "remove the key from the image and revoke it: anyone who can pull the image has it; inject secrets at launch (declared env or a secret store)"
            : "remove it from the image (and rotate it); pass secrets at launch through declared env or a secret store",
      });
    }
  }
  for (const name of secretEnvNames(env)) {
    out.push({
      kind: "secret-env",
      severity: "warn",
      name,
      message: `the image config sets ${name}, which looks like a secret`,
      hint: "do not bake secrets into image.env; declare it in kiln.yaml `env` (given at launch) or fetch it from a secret store",
    });
  }
  return out;
}

export function classifyCarried(carried: readonly string[]): Finding[] {
  return [...carried].sort().map((path) => ({
    kind: "state-across-restart" as const,
    severity: "warn" as const,
    path,
    message: `${path} was written before the restart and read after it: the app depends on local state that a replacement would not have`,
    hint: "keep that state in a declared volume or an external store, so a new instance starts with it",
  }));
}

export function classifyRuns(runs: readonly RunRecord[]): Finding[] {
  const out: Finding[] = [];
  for (const r of runs) {
    if (!r.healthy) {
      out.push({
        kind: "unhealthy",
        severity: "fail",
        phase: r.phase,
        message: `the instance never answered its health check ${r.phase === "first-start" ? "after starting" : "after the restart"}${r.healthError ? ` (${r.healthError})` : ""}`,
        hint:
          r.phase === "first-start"
            ? "check the instance log below; the audit saw only what happened before it gave up"
            : "an instance that cannot start again from its own leftovers cannot be replaced or restarted safely: look at what it wrote before the restart",
      });
      continue;
    }
    for (const s of r.smoke) {
      if (s.ok) continue;
      out.push({
        kind: "smoke-failed",
        severity: "warn",
        phase: r.phase,
        request: s.request,
        message: `smoke request ${s.request} ${r.phase === "after-restart" ? "after the restart " : ""}failed: ${s.status !== undefined ? `HTTP ${s.status}` : (s.error ?? "no answer")}`,
        hint: "fix the request in the --smoke file, or the app; writes it would have made are missing from this audit",
      });
    }
  }
  return out;
}

/** Every finding, blocking ones first, then by kind and path. */
export function classify(obs: AuditObservations): Finding[] {
  const all = [
    ...classifyRuns(obs.runs),
    ...classifyWrites(obs.changes, obs.volumes),
    ...classifyUser(obs.user, obs.passwd),
    ...classifySsh(obs.files, obs.processes, obs.listeningPorts, obs.exposedPorts),
    ...classifySecrets(obs.secrets, obs.env),
    ...classifyCarried(obs.carried),
  ];
  const rank = (f: Finding) => (f.severity === "fail" ? 0 : 1);
  return all.map((f, i) => ({ f, i })).sort((a, b) => rank(a.f) - rank(b.f) || a.i - b.i).map((x) => x.f);
}

export function verdictOf(findings: readonly Finding[]): Verdict {
  if (findings.some((f) => f.severity === "fail")) return "fail";
  if (findings.length > 0) return "warn";
  return "pass";
}

// Where kiln keeps things: $KILN_HOME, by default `.kiln/` beside kiln.yaml.
//
// KILN_HOME holds the state database (release env included), logs and the
// control sockets: it is the owner's alone (0700, files 0600), whatever the
// umask. Sockets whose path would be too long go to a per-user directory
// under $XDG_RUNTIME_DIR or the temp dir, which is trusted only when it is a
// real directory owned by this user that nobody else can write to or enter —
// otherwise another local user could pre-create it and receive the CLI's requests.

import { createHash } from "node:crypto";
import { chmodSync, closeSync, constants, fsyncSync, lstatSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { KilnError } from "./errors.js";

export interface HomePaths {
  home: string;
  stateDb: string;
  run: string;
  logs: string;
  controllerSocket: string;
  proxyAdminSocket: string;
  routesFile: string;
  controllerPid: string;
  proxyPid: string;
  controllerLog: string;
  proxyLog: string;
  /** set by withSharedEdge: the listener's shared directory (the shared HAProxy's run directory is `haproxy/` in it) */
  edgeDir?: string;
}

const uid = () => (typeof process.getuid === "function" ? process.getuid() : -1);

/**
 * Why `dir` is not a private directory of this user, or undefined when it is:
 * a real directory (not a symlink), owned by us, no group/other access.
 */
export function privateDirProblem(dir: string): string | undefined {
  let st;
  try {
    st = lstatSync(dir);
  } catch (e) {
    return `cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)})`;
  }
  if (st.isSymbolicLink()) return "is a symlink";
  if (!st.isDirectory()) return "is not a directory";
  if (uid() !== -1 && st.uid !== uid()) return `is owned by uid ${st.uid}, not by this user (${uid()})`;
  if ((st.mode & 0o077) !== 0) return `has mode ${(st.mode & 0o777).toString(8)}: other users can enter or write it`;
  return undefined;
}

/** Create (0700) or check a per-user directory; refuse one that someone else controls. */
export function ensurePrivateDir(dir: string): string {
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
  }
  const problem = privateDirProblem(dir);
  if (problem) {
    throw new KilnError("KILN_E_UNSAFE", `the socket directory ${dir} ${problem}`, {
      hint: `another user may have created it to intercept kiln's requests: remove it (or fix it: chown to you, chmod 700), or use a shorter KILN_HOME so sockets stay inside it`,
      details: [{ where: dir, message: problem }],
    });
  }
  return dir;
}

/** Unix socket paths are limited to 107 bytes; a deep $KILN_HOME gets its sockets in a per-user directory. */
export function socketDir(run: string, env: NodeJS.ProcessEnv = process.env): string {
  if (join(run, "controller.sock").length < 100) return run;
  const name = `kiln-${uid()}-${createHash("sha256").update(run).digest("hex").slice(0, 12)}`;
  const xdg = env.XDG_RUNTIME_DIR;
  if (xdg && xdg.startsWith("/") && privateDirProblem(xdg) === undefined && join(xdg, name, "controller.sock").length < 100) {
    return ensurePrivateDir(join(xdg, name));
  }
  return ensurePrivateDir(join(tmpdir(), name));
}

export function homeFor(specFile: string, env: NodeJS.ProcessEnv = process.env): string {
  return env.KILN_HOME ? resolve(env.KILN_HOME) : join(dirname(resolve(specFile)), ".kiln");
}

/** mkdir -p, then 0700 on the directory itself whatever the umask (only when it is ours). */
function ownDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (st.isDirectory() && (uid() === -1 || st.uid === uid()) && (st.mode & 0o077) !== 0) chmodSync(dir, 0o700);
}

/** 0600 on existing files (state written before this version, or under a loose umask). */
function ownFiles(files: string[]): void {
  for (const f of files) {
    try {
      const st = lstatSync(f);
      if (st.isFile() && (uid() === -1 || st.uid === uid()) && (st.mode & 0o077) !== 0) chmodSync(f, 0o600);
    } catch {
      // absent: nothing to tighten
    }
  }
}

/**
 * The home's paths. An environment (kiln.yaml `environments:`) has its own state database,
 * daemons, sockets and logs under `env/NAME/`, so each environment's controller and proxy run on
 * their own; the image store and instance directories stay shared at the top (the same image is
 * what every environment runs). Without an environment, the layout is the one kiln always had.
 */
export function homePaths(home: string, environment?: string): HomePaths {
  const root = environment === undefined ? home : join(home, "env", environment);
  const run = join(root, "run");
  const logs = join(root, "logs");
  ownDir(home);
  if (environment !== undefined) {
    ownDir(join(home, "env"));
    ownDir(root);
  }
  ownDir(run);
  ownDir(logs);
  const sockets = socketDir(run);
  const paths: HomePaths = {
    home,
    stateDb: join(root, "state.db"),
    run,
    logs,
    controllerSocket: join(sockets, "controller.sock"),
    proxyAdminSocket: join(sockets, "proxy.sock"),
    routesFile: join(run, "routes.json"),
    controllerPid: join(run, "controller.pid"),
    proxyPid: join(run, "proxy.pid"),
    controllerLog: join(logs, "controller.log"),
    proxyLog: join(logs, "proxy.log"),
  };
  ownFiles([paths.stateDb, `${paths.stateDb}-wal`, `${paths.stateDb}-shm`, paths.routesFile, paths.controllerLog, paths.proxyLog]);
  return paths;
}

/**
 * Services whose kiln.yaml give `edge.hosts` share one proxy on their common `listen`
 * (issue 10): its socket, pid, log and routing tables live in a per-user directory named
 * after that address instead of each service's home, so every such service's `kiln up`
 * finds the same proxy. Others keep their own.
 *
 *   hosts [], listen 127.0.0.1:8080        → paths unchanged
 *   hosts [a.test], listen 127.0.0.1:8080  → proxy files under <runtime>/kiln-<uid>-edges/127.0.0.1_8080/
 */
export function withSharedEdge(paths: HomePaths, o: { hosts: readonly string[]; listen: string }, env: NodeJS.ProcessEnv = process.env): HomePaths {
  if (o.hosts.length === 0) return paths;
  const xdg = env.XDG_RUNTIME_DIR;
  const base = ensurePrivateDir(join(xdg && xdg.startsWith("/") && privateDirProblem(xdg) === undefined ? xdg : tmpdir(), `kiln-${uid()}-edges`));
  const dir = ensurePrivateDir(join(base, o.listen.replace(/[^A-Za-z0-9.-]/g, "_")));
  return { ...paths, proxyAdminSocket: join(dir, "proxy.sock"), routesFile: join(dir, "routes.json"), proxyPid: join(dir, "proxy.pid"), proxyLog: join(dir, "proxy.log"), edgeDir: dir };
}

/**
 * For a process's entry point (CLI main, controller, proxy): files and sockets it
 * creates are the owner's only, whatever the caller's umask. Returns the old umask.
 */
export function privateUmask(): number {
  return process.umask(0o077);
}

/** Whether a process with this pid exists (EPERM: it exists but belongs to someone else). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Field 22 of /proc/PID/stat (clock ticks after boot): with the pid it names one
 * process for the life of the machine. The comm field may hold spaces and ")",
 * so fields are counted after the last ")".
 * Example: "42 (node) S 1 42 42 0 -1 … 12345 …" → 12345 (the 20th field after ")").
 */
export function parseStartTime(stat: string): number | undefined {
  const close = stat.lastIndexOf(")");
  if (close < 0) return undefined;
  const v = Number(stat.slice(close + 2).trim().split(" ")[19]);
  return Number.isSafeInteger(v) ? v : undefined;
}

export function processStartTime(pid: number): number | undefined {
  try {
    return parseStartTime(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return undefined;
  }
}

/** "PID STARTTIME\n"; a pid file without a start time (older kiln) is never trusted. */
export function parsePidFile(text: string): { pid: number; startTime: number } | undefined {
  const m = /^(\d+) (\d+)\n?$/.exec(text);
  if (!m) return undefined;
  const pid = Number(m[1]);
  const startTime = Number(m[2]);
  return Number.isSafeInteger(pid) && pid > 0 && Number.isSafeInteger(startTime) ? { pid, startTime } : undefined;
}

/** Write a pid file (0600, atomically) carrying the process's start time. */
export function writePidFile(file: string, pid: number = process.pid): void {
  const startTime = processStartTime(pid);
  if (startTime === undefined) throw new KilnError("KILN_E_INTERNAL", `cannot read the start time of process ${pid}`);
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
  try {
    writeSync(fd, `${pid} ${startTime}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/**
 * The pid in a pid file, only when that process is still the one that wrote
 * it (same start time): after a crash and a reboot, or pid reuse, a stale file
 * names an unrelated process that `down` must not signal.
 */
export function readPidFile(file: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
  const rec = parsePidFile(text);
  if (!rec || !pidAlive(rec.pid)) return undefined;
  return processStartTime(rec.pid) === rec.startTime ? rec.pid : undefined;
}

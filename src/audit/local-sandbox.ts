// The audit's local backend: the image's pristine root (store/rootfs/<hex>) as the
// lower layer of an overlayfs whose upper directory collects every write, run with
// bubblewrap as the image's user — the same isolation the local provider gives an
// instance, except that the root is writable, so what the app writes can be seen.
//
// The command, as data (STYLE habit 9):
//   unshare --mount --propagation private -- sh -c AUDIT_STAGE kiln-audit MOUNT MKDIR STAGE LOWER UPPER WORK [VOLPATH HOSTDIR]… --
//     setpriv --reuid U --regid G --clear-groups --inh-caps=-all --
//       bwrap --bind STAGE/root / --proc /proc --dev /dev --tmpfs /tmp --bind STAGE/vN VOLPATH… -- ENTRYPOINT CMD…
// The overlay needs root (mount in a private mount namespace that dies with the
// instance); bwrap then runs as the image user, which could not reach the host
// directories itself (see providers/local/sandbox-command.ts for that reasoning).
// The upper directory outlives each run, so a restart sees what the last run left.

import { spawn, type ChildProcess } from "node:child_process";
import { chownSync, closeSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { KilnError } from "../errors.js";
import { findHostTool, HOST_PATH } from "../providers/local/executable.js";
import { resolveImageUser } from "../providers/local/image-user.js";
import { instanceProcesses, namespaceOf } from "../providers/local/procfs.js";
import { bwrapEnvArgs, ENV_FD, SECCOMP_FD, STATUS_FD } from "../providers/local/sandbox-command.js";
import { seccompFilterFor } from "../providers/local/seccomp.js";
import { isRootUser } from "./classify.js";
import { describeProcess, listeningPortsOf } from "./procfs.js";
import type { AuditSandbox, RunConfig } from "./sandbox.js";
import type { PathChange, SandboxProcess } from "./types.js";
import { upperDirChanges } from "./upper-dir.js";
import { freeLoopbackPort } from "../net.js";

const DEFAULT_STAGE = "/run/kiln-audit-stage";

/** Constant: every value arrives as a positional argument. */
export const AUDIT_STAGE_SCRIPT = `set -eu
umask 022
_k_mount=$1 _k_mkdir=$2 _k_stage=$3 _k_lower=$4 _k_upper=$5 _k_work=$6
shift 6
"$_k_mount" -t tmpfs -o mode=0755,size=1m kiln-audit "$_k_stage"
"$_k_mkdir" "$_k_stage/root"
"$_k_mount" -t overlay kiln-audit -o "lowerdir=$_k_lower,upperdir=$_k_upper,workdir=$_k_work" "$_k_stage/root"
_k_i=0
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
  "$_k_mkdir" -p -- "$_k_stage/root$1" "$_k_stage/v$_k_i"
  "$_k_mount" --rbind "$2" "$_k_stage/v$_k_i"
  _k_i=$((_k_i + 1))
  shift 2
done
shift
unset _k_mount _k_mkdir _k_stage _k_lower _k_upper _k_work _k_i PWD
exec "$@"
`;

export interface LocalCommandInput {
  stageDir: string;
  lower: string;
  upper: string;
  work: string;
  volumes: { path: string; hostDir: string }[];
  uid: number;
  gid: number;
  workdir: string;
  argv: string[];
  tools: { unshare: string; sh: string; mount: string; mkdir: string; setpriv: string; bwrap: string };
  /** the seccomp program (providers/local/seccomp.ts), read by bwrap from fd SECCOMP_FD */
  seccomp?: boolean;
}

/** The argv that runs one audit instance (pure). */
export function localAuditCommand(i: LocalCommandInput): { file: string; args: string[] } {
  const volArgs = i.volumes.flatMap((v) => [v.path, v.hostDir]);
  const bwrap = ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--hostname", "kiln-audit", "--die-with-parent", "--json-status-fd", String(STATUS_FD)];
  // The image under audit is as untrusted as an instance: the same no-nested-userns and seccomp filter.
  bwrap.push("--unshare-user", "--uid", String(i.uid), "--gid", String(i.gid), "--disable-userns");
  if (i.seccomp) bwrap.push("--seccomp", String(SECCOMP_FD));
  bwrap.push("--bind", `${i.stageDir}/root`, "/", "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp");
  i.volumes.forEach((v, n) => bwrap.push("--bind", `${i.stageDir}/v${n}`, v.path));
  bwrap.push("--chdir", i.workdir || "/", "--clearenv", "--args", String(ENV_FD), "--", ...i.argv);
  return {
    file: i.tools.unshare,
    args: [
      "--mount", "--propagation", "private", "--",
      i.tools.sh, "-c", AUDIT_STAGE_SCRIPT, "kiln-audit", i.tools.mount, i.tools.mkdir, i.stageDir, i.lower, i.upper, i.work, ...volArgs, "--",
      i.tools.setpriv, "--reuid", String(i.uid), "--regid", String(i.gid), "--clear-groups", "--inh-caps=-all", "--",
      i.tools.bwrap, ...bwrap,
    ],
  };
}


const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function createLocalSandbox(rootfs: string, cfg: RunConfig, log: (line: string) => void): Promise<AuditSandbox> {
  if (process.geteuid?.() !== 0)
    throw new KilnError("KILN_E_USAGE", "kiln audit --provider local needs root (it mounts an overlay over the image in a private mount namespace)", {
      hint: "run it as root, or use --provider docker",
    });
  const tool = (name: string, pkg: string) => {
    const p = findHostTool(name);
    if (!p) throw new KilnError("KILN_E_PROVIDER", `${name} is not installed`, { hint: `kiln audit --provider local needs it (Debian: apt-get install ${pkg})` });
    return p;
  };
  const tools = { bwrap: tool("bwrap", "bubblewrap"), unshare: tool("unshare", "util-linux"), setpriv: tool("setpriv", "util-linux"), mount: tool("mount", "mount"), mkdir: tool("mkdir", "coreutils"), sh: tool("sh", "dash") };

  const readEtc = (name: string) => {
    try {
      return readFileSync(join(rootfs, "etc", name), "utf8");
    } catch {
      return undefined;
    }
  };
  let uid = 0;
  let gid = 0;
  if (!isRootUser(cfg.user, readEtc("passwd"))) {
    const u = resolveImageUser(cfg.user, readEtc("passwd"), readEtc("group"));
    if (!u.ok) throw new KilnError("KILN_E_IMAGE", u.reason, { hint: u.hint });
    uid = u.uid;
    gid = u.gid;
  }
  const argv = [...cfg.entrypoint, ...cfg.cmd];
  if (argv.length === 0) throw new KilnError("KILN_E_IMAGE", "the image has no entrypoint or cmd", { hint: "set image.entrypoint / image.cmd in kiln.yaml and bake again" });

  const dir = await mkdtemp(join(tmpdir(), "kiln-audit-"));
  const upper = join(dir, "upper");
  const work = join(dir, "work");
  mkdirSync(upper, { mode: 0o755 });
  mkdirSync(work, { mode: 0o700 });
  for (const p of [rootfs, upper, work]) {
    if (/[,:\\]/.test(p)) throw new KilnError("KILN_E_USAGE", `cannot use ${p} in an overlay mount (it holds "," ":" or "\\")`, { hint: "set KILN_HOME / TMPDIR to plain paths" });
  }
  const volumes = cfg.volumes.map((v) => {
    const hostDir = join(dir, "volumes", v.name);
    mkdirSync(hostDir, { recursive: true, mode: 0o750 });
    chownSync(hostDir, uid, gid);
    return { path: v.path, hostDir };
  });
  const stageDir = DEFAULT_STAGE;
  mkdirSync(stageDir, { recursive: true, mode: 0o755 });
  const logPath = join(dir, "instance.log");

  const port = await freeLoopbackPort();
  const env = new Map<string, string>();
  for (const kv of cfg.imageEnv) {
    const i = kv.indexOf("=");
    if (i > 0) env.set(kv.slice(0, i), kv.slice(i + 1));
  }
  for (const [k, v] of Object.entries(cfg.env)) env.set(k, v);
  env.set("PORT", String(port));
  env.set("KILN_INSTANCE_ID", "kiln-audit");

  const filter = seccompFilterFor();
  const cmd = localAuditCommand({ stageDir, lower: rootfs, upper, work, volumes, uid, gid, workdir: cfg.workdir, argv, tools, seccomp: filter !== undefined });
  let child: ChildProcess | undefined;
  let exited: Promise<number | null> | undefined;
  let exitCode: number | null | undefined;
  let nsInit: number | undefined; // host pid of bwrap's PID 1 in the instance's namespace
  let pidNs: number | undefined;

  const members = (): number[] => (pidNs === undefined ? [] : instanceProcesses({ pgid: -1, pidNamespace: pidNs }));

  const sandbox: AuditSandbox = {
    provider: "local",
    async start() {
      if (child && exitCode === undefined) throw new Error("already running");
      exitCode = undefined;
      nsInit = undefined;
      pidNs = undefined;
      const logFd = openSync(logPath, "a", 0o640);
      try {
        child = spawn(cmd.file, cmd.args, { detached: true, stdio: ["ignore", logFd, logFd, "pipe", "pipe", ...(filter ? (["pipe"] as const) : [])], env: { PATH: HOST_PATH }, cwd: "/" });
      } finally {
        closeSync(logFd);
      }
      const c = child;
      c.on("error", () => undefined);
      exited = new Promise((resolve) => c.on("exit", (code, signal) => {
        exitCode = code ?? (signal ? null : null);
        resolve(exitCode);
      }));
      const envPipe = c.stdio[ENV_FD] as Writable | null;
      envPipe?.on("error", () => undefined);
      envPipe?.end(bwrapEnvArgs([...env.entries()]));
      if (filter) {
        const filterPipe = (c.stdio as unknown as (Writable | null)[])[SECCOMP_FD];
        filterPipe?.on("error", () => undefined);
        filterPipe?.end(filter);
      }
      const status = c.stdio[STATUS_FD] as Readable | null;
      let buf = "";
      status?.on("data", (d: Buffer) => {
        buf += d.toString();
        for (const line of buf.split("\n").slice(0, -1)) {
          try {
            const j = JSON.parse(line) as { "child-pid"?: number };
            if (typeof j["child-pid"] === "number" && nsInit === undefined) {
              nsInit = j["child-pid"];
              pidNs = namespaceOf(nsInit, "pid");
            }
          } catch {
            // not JSON: ignore
          }
        }
        buf = buf.slice(buf.lastIndexOf("\n") + 1);
      });
      // The sandbox exists once bwrap reports its namespace; an earlier exit is a sandbox failure.
      const deadline = Date.now() + 10_000;
      while (pidNs === undefined && exitCode === undefined && Date.now() < deadline) await sleep(10);
      if (pidNs === undefined) {
        const tail = await sandbox.logTail();
        if (exitCode === undefined) process.kill(-c.pid!, "SIGKILL");
        throw new KilnError("KILN_E_PROVIDER", `the audit sandbox did not start: ${tail.trim().split("\n").slice(-3).join(" | ")}`, {
          hint: "overlayfs and bubblewrap must work here (root, a kernel with overlay); or use --provider docker",
        });
      }
      log(`  started in the sandbox as uid ${uid}:${gid} on 127.0.0.1:${port}`);
      return { address: `127.0.0.1:${port}` };
    },
    isRunning: async () => child !== undefined && exitCode === undefined,
    async observe() {
      const pids = members().filter((p) => p !== nsInit);
      const processes = pids.map(describeProcess).filter((p): p is SandboxProcess => p !== undefined);
      return { processes, listeningPorts: listeningPortsOf(pids) };
    },
    async stop(graceMs: number) {
      if (!child || exitCode !== undefined) return { exitCode: exitCode ?? null, killed: false };
      // bwrap's PID 1 ignores SIGTERM from outside its namespace; the app and its children get it.
      for (const pid of members()) {
        try {
          process.kill(pid, "SIGTERM");
        } catch {
          // gone
        }
      }
      const timeout = Symbol("timeout");
      const r = await Promise.race([exited, sleep(graceMs).then(() => timeout)]);
      if (r !== timeout) return { exitCode: exitCode ?? null, killed: false };
      for (const pid of [...members(), -child.pid!]) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone
        }
      }
      await Promise.race([exited, sleep(5000)]);
      return { exitCode: exitCode ?? null, killed: true };
    },
    changes: (): Promise<PathChange[]> => upperDirChanges(upper, rootfs),
    async hostPathOf(path: string) {
      return join(upper, path);
    },
    async logTail() {
      try {
        const t = readFileSync(logPath, "utf8");
        return t.length > 2000 ? t.slice(-2000) : t;
      } catch {
        return "";
      }
    },
    async dispose() {
      await sandbox.stop(1000);
      await rm(dir, { recursive: true, force: true });
    },
  };
  return sandbox;
}

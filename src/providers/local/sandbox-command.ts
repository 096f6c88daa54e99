// The command lines that start an instance, as data (STYLE habit 9). Pure:
// every function here maps a mount plan plus facts to { file, args, env };
// tests compare them by equality, the provider hands them to spawn().
//
// Three shapes:
//
// 1. kiln runs as root, bubblewrap present ("staged bwrap", the normal case):
//      unshare --mount --propagation private -- /bin/sh -c BIND_STAGE_SCRIPT kiln-stage MOUNT STAGE FSTAB <files> --
//        setpriv --reuid U --regid G --clear-groups --inh-caps=-all --
//        bwrap --unshare-user --uid U --gid G --disable-userns --seccomp 5 <sandbox args> -- ENTRYPOINT CMD…
//    bwrap itself runs as the image's uid, so the app is that uid on the host
//    too (not root-in-a-user-namespace, which `bwrap --unshare-user --uid U`
//    run by root gives: bwrap maps U to the caller's uid 0 there; run by U it
//    maps U to U). The user namespace is bwrap's own, needed for
//    `--disable-userns`: the app can create no further one. An
//    unprivileged bwrap must be able to walk to every bind source, and
//    $KILN_HOME usually lives under /root (0700) or a 0700 mkdtemp dir — so a
//    tiny root shell, in a private mount namespace that dies with the
//    instance, first binds each source under a 0755 tmpfs at STAGE/K and
//    only then drops to the image user. Nothing is mounted on the host.
//    The staging is two mount(8) runs, not one process per source: the tmpfs,
//    then `mount --all --fstab FILE` with one `rbind,X-mount.mkdir` line per
//    source (the file, written by the provider into the instance's directory,
//    is stagingFstab's text); a source that is a file gets its mount point
//    from the shell itself (`: > PATH`), as X-mount.mkdir makes directories.
//    The app's environment reaches bwrap through a pipe (`--args 4`), never
//    argv: values may be secrets, and every local user can read argv (ps).
//
// 2. kiln runs as an ordinary user, bubblewrap present: bwrap directly with
//    `--unshare-user --uid U --gid G` (unprivileged user namespace). The
//    caller owns $KILN_HOME, so the sources are reachable.
//
// In both bwrap shapes the app runs under `--disable-userns` and the seccomp
// filter of seccomp.ts (the program reaches bwrap through a pipe, fd
// SECCOMP_FD): no nested user namespace, no mount, ptrace, keyring, bpf…
//
// 3. sandbox "none" (`kiln up --unsafe-no-sandbox`), root only — NOT isolated:
//      unshare --mount --propagation private -- /bin/sh -c STAGE_SCRIPT … --
//        unshare --root=STAGE --wd=WORKDIR --setgid=G --setuid=U -- ENTRYPOINT CMD…
//    (with exactly the app's environment)
//    the same mount plan is built under STAGE (read-only image binds, the
//    volumes, a tmpfs /tmp, a few /dev nodes; no /proc, which would show
//    every host process) and the app is chrooted into it as the image user.
//    `unshare --root/--wd` is used rather than `chroot --userspec` because
//    chroot(1) always starts the command in "/", and the image has a workdir.
//    There are no PID/IPC/UTS namespaces: the app can see and signal other
//    processes of its uid and shares the host's hostname.

import { posix } from "node:path";
import type { PlannedMount } from "./mount-plan.js";

export interface Tools {
  bwrap?: string;
  unshare: string;
  setpriv: string;
  mount: string;
  mkdir: string;
  ln: string;
  sh: string;
}

export interface SpawnCommand {
  file: string;
  args: string[];
  env: Record<string, string>;
  /** written to a pipe that the process reads as fd ENV_FD (bwrap `--args`), then closed */
  envArgs?: string;
  /** the seccomp program, written to a pipe the process reads as fd SECCOMP_FD (bwrap `--seccomp`) */
  seccomp?: Buffer;
  /** a file the provider writes (root-owned, 0600) before the spawn: the staging fstab (staged bwrap) */
  stageFstab?: { path: string; text: string };
}

export interface SandboxInput {
  instanceId: string;
  mounts: readonly PlannedMount[];
  /** host directory of the unpacked image */
  rootfs: string;
  /** host directory of each declared volume, by name */
  volumeDirs: Readonly<Record<string, string>>;
  /** the image's user: what the app sees itself as inside the sandbox */
  uid: number;
  gid: number;
  /**
   * uid-range.ts: the host uid/gid the instance runs as (root shapes only; bwrap maps uid/gid
   * onto them). Absent: the image's own, as before kiln had a range.
   */
  hostUid?: number;
  hostGid?: number;
  workdir: string;
  /** final environment of the app, in order (later keys already won) */
  env: ReadonlyArray<readonly [string, string]>;
  /** entrypoint + cmd */
  argv: readonly string[];
  /** size of the instance's /tmp tmpfs */
  tmpSizeBytes: number;
  /** size of the instance's /dev/shm tmpfs (absent: /dev/shm is part of bwrap's /dev, unsized) */
  shmSizeBytes?: number;
  /** where the private staging tmpfs is mounted (a root-owned 0755 host directory) */
  stageDir: string;
  /** staged bwrap: the host path the provider writes the staging fstab to (in the instance's directory) */
  stageFstabPath?: string;
  /** PATH for the host-side helpers (unshare, sh, mount, setpriv) */
  hostPath: string;
  /** the seccomp program bwrap loads for the app (seccomp.ts); absent: none (an architecture without one) */
  seccomp?: Buffer;
  /** its own network namespace (bwrap --unshare-net; netns.ts attaches the forwarder) */
  unshareNet?: boolean;
}

/** fd (in the spawned process) that bwrap writes its JSON status lines to */
export const STATUS_FD = 3;
/**
 * fd bwrap reads NUL-separated `--setenv K V` arguments from. Environment
 * values may be secrets: on the command line every local user could read
 * them with ps; through this pipe they reach only the app's own environment.
 */
export const ENV_FD = 4;
/** fd bwrap reads the seccomp program from (`--seccomp`) */
export const SECCOMP_FD = 5;

/** The `--args` payload for ENV_FD. */
export function bwrapEnvArgs(env: SandboxInput["env"]): string {
  return env.map(([k, v]) => `--setenv\0${k}\0${v}\0`).join("");
}

// The unisolated fallback's staging (shape 3). A constant script; every value reaches it as a
// positional argument, never spliced into the text: the mount, mkdir and ln binaries (absolute, so the
// script needs no PATH and the environment can be the app's own), then ops in
// triples `OP A B`, then `--`, then the command to exec.
// Its variables carry a reserved prefix and are unset before the exec, so
// the environment handed on is exactly the one it was given.
export const STAGE_SCRIPT = `set -eu
umask 022
_kiln_mount=$1 _kiln_mkdir=$2 _kiln_ln=$3
shift 3
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
  _kiln_op=$1 _kiln_a=$2 _kiln_b=$3
  shift 3
  case "$_kiln_op" in
    tmpfs) "$_kiln_mount" -t tmpfs -o "$_kiln_a" kiln-stage "$_kiln_b" ;;
    dir) "$_kiln_mkdir" -p -- "$_kiln_b" ;;
    file) : > "$_kiln_b" ;;
    bind) "$_kiln_mount" --rbind "$_kiln_a" "$_kiln_b" ;;
    bind-ro) "$_kiln_mount" --rbind "$_kiln_a" "$_kiln_b" && "$_kiln_mount" -o remount,bind,ro "$_kiln_b" ;;
    symlink) "$_kiln_ln" -s -- "$_kiln_a" "$_kiln_b" ;;
    remount-ro) "$_kiln_mount" -o remount,ro "$_kiln_b" ;;
    *) echo "kiln: unknown staging op $_kiln_op" >&2; exit 70 ;;
  esac
done
shift
# the shell exported its own PWD ("/"), which is not where the app will run
unset _kiln_mount _kiln_mkdir _kiln_ln _kiln_op _kiln_a _kiln_b PWD
exec "$@"
`;

// The staged bwrap's staging (shape 1), also a constant script: MOUNT, STAGE and FSTAB, then the
// paths of the file mount points to create, then `--`, then the command to exec. One mount(8) run
// makes the tmpfs, one more binds every source listed in FSTAB (stagingFstab), making each
// directory mount point on the way (X-mount.mkdir); mount --all exits non-zero unless every line
// was mounted, and `set -e` then stops the launch before anything runs as the image user.
export const BIND_STAGE_SCRIPT = `set -eu
umask 022
_kiln_mount=$1 _kiln_fstab=$3
"$_kiln_mount" -t tmpfs -o mode=0755,size=1m kiln-stage "$2"
shift 3
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
  : > "$1"
  shift
done
shift
"$_kiln_mount" --all --fstab "$_kiln_fstab"
# the shell exported its own PWD ("/"), which is not where the app will run
unset _kiln_mount _kiln_fstab PWD
exec "$@"
`;

/**
 * A path as an fstab field: libmount splits a line on blanks and decodes \ooo octal escapes, so
 * blanks and backslashes are written as such escapes.
 *
 *   "/root/.kiln/rootfs/abc/usr" → "/root/.kiln/rootfs/abc/usr"
 *   "/home/a b/data"             → "/home/a\040b/data"
 *   "/x<TAB>y\z<NEWLINE>"        → "/x\011y\134z\012"
 */
export function fstabField(path: string): string {
  return path.replace(/[ \t\n\v\f\r\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, "0")}`);
}

/** The staging fstab: one recursive bind per source, onto its mount point under the stage (made on the way when a directory). */
export function stagingFstab(binds: readonly { source: string; target: string }[]): string {
  return binds.map((b) => `${fstabField(b.source)} ${fstabField(b.target)} none rbind,X-mount.mkdir 0 0\n`).join("");
}

/** Environment names the staging script uses for itself. */
export const RESERVED_ENV_PREFIX = "_kiln_";

export type StageOp =
  | { op: "tmpfs"; options: string; target: string }
  | { op: "dir"; target: string }
  | { op: "file"; target: string }
  | { op: "bind"; source: string; target: string }
  | { op: "bind-ro"; source: string; target: string }
  | { op: "symlink"; linkTarget: string; target: string }
  | { op: "remount-ro"; target: string };

export function renderStageOps(ops: readonly StageOp[]): string[] {
  const out: string[] = [];
  for (const o of ops) {
    switch (o.op) {
      case "tmpfs":
        out.push("tmpfs", o.options, o.target);
        break;
      case "dir":
      case "file":
      case "remount-ro":
        out.push(o.op, "-", o.target);
        break;
      case "bind":
      case "bind-ro":
        out.push(o.op, o.source, o.target);
        break;
      case "symlink":
        out.push("symlink", o.linkTarget, o.target);
        break;
    }
  }
  return out;
}

/** Host path of a mount's source (image entries and volumes only). */
export function hostSource(input: Pick<SandboxInput, "rootfs" | "volumeDirs">, m: PlannedMount): string | undefined {
  if (m.kind === "image") return posix.join(input.rootfs, m.target);
  if (m.kind === "volume") {
    const dir = input.volumeDirs[m.name];
    if (dir === undefined) throw new Error(`no host directory for volume ${m.name}`);
    return dir;
  }
  return undefined;
}

/** The bwrap arguments after `bwrap`; `sourceOf` says where bwrap finds each bind source. */
export function bwrapArgs(input: SandboxInput, sourceOf: (m: PlannedMount, index: number) => string): string[] {
  const a: string[] = [
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    ...(input.unshareNet ? ["--unshare-net"] : []),
    "--hostname",
    hostnameFor(input.instanceId),
    "--unshare-user",
    "--uid",
    String(input.uid),
    "--gid",
    String(input.gid),
    "--disable-userns",
  ];
  if (input.seccomp) a.push("--seccomp", String(SECCOMP_FD));
  a.push("--json-status-fd", String(STATUS_FD), "--tmpfs", "/");
  input.mounts.forEach((m, i) => {
    switch (m.kind) {
      case "dir":
        a.push("--dir", m.target);
        break;
      case "image":
        a.push("--ro-bind", sourceOf(m, i), m.target);
        break;
      case "symlink":
        a.push("--symlink", m.linkTarget, m.target);
        break;
      case "proc":
        a.push("--proc", "/proc");
        break;
      case "dev":
        a.push("--dev", "/dev");
        // bwrap's /dev is a tmpfs without a size: shared memory written there would be unbounded
        if (input.shmSizeBytes !== undefined) a.push("--perms", "1777", "--size", String(input.shmSizeBytes), "--tmpfs", "/dev/shm");
        break;
      case "tmp":
        a.push("--perms", "1777", "--size", String(input.tmpSizeBytes), "--tmpfs", "/tmp");
        break;
      case "volume":
        a.push("--bind", sourceOf(m, i), m.target);
        break;
    }
  });
  a.push("--remount-ro", "/", "--chdir", input.workdir, "--clearenv", "--args", String(ENV_FD));
  a.push("--", ...input.argv);
  return a;
}

/**
 * `unshare` arguments up to the command that runs inside the fallback's mount namespace: a private
 * mount namespace, then the root shell that builds the tree under the stage before handing over.
 */
function stagePrefix(tools: Tools, ops: readonly StageOp[]): string[] {
  return ["--mount", "--propagation", "private", "--", tools.sh, "-c", STAGE_SCRIPT, "kiln-stage", tools.mount, tools.mkdir, tools.ln, ...renderStageOps(ops), "--"];
}

/** Shape 1: kiln is root, bwrap runs as the image user from a private staging area. */
export function stagedBwrapCommand(input: SandboxInput, tools: Tools): SpawnCommand {
  if (!tools.bwrap) throw new Error("stagedBwrapCommand needs bwrap");
  if (!input.stageFstabPath) throw new Error("stagedBwrapCommand needs stageFstabPath");
  // Directly under the stage: the shell creates a file's mount point there without a mkdir.
  const alias = (i: number) => posix.join(input.stageDir, String(i));
  const binds: { source: string; target: string }[] = [];
  const files: string[] = [];
  input.mounts.forEach((m, i) => {
    const src = hostSource(input, m);
    if (src === undefined) return;
    const isDir = m.kind === "volume" || (m.kind === "image" && m.isDir);
    if (!isDir) files.push(alias(i));
    binds.push({ source: src, target: alias(i) });
  });
  const args = [
    "--mount",
    "--propagation",
    "private",
    "--",
    tools.sh,
    "-c",
    BIND_STAGE_SCRIPT,
    "kiln-stage",
    tools.mount,
    input.stageDir,
    input.stageFstabPath,
    ...files,
    "--",
    tools.setpriv,
    "--reuid",
    String(input.hostUid ?? input.uid),
    "--regid",
    String(input.hostGid ?? input.gid),
    "--clear-groups",
    "--inh-caps=-all",
    "--",
    tools.bwrap,
    ...bwrapArgs(input, (_m, i) => alias(i)),
  ];
  return {
    file: tools.unshare,
    args,
    env: { PATH: input.hostPath },
    envArgs: bwrapEnvArgs(input.env),
    ...(input.seccomp ? { seccomp: input.seccomp } : {}),
    stageFstab: { path: input.stageFstabPath, text: stagingFstab(binds) },
  };
}

/** Shape 2: kiln is an ordinary user; bwrap maps the image uid in a user namespace. */
export function userBwrapCommand(input: SandboxInput, tools: Tools): SpawnCommand {
  if (!tools.bwrap) throw new Error("userBwrapCommand needs bwrap");
  const args = bwrapArgs(input, (m) => hostSource(input, m) ?? "");
  return { file: tools.bwrap, args, env: { PATH: input.hostPath }, envArgs: bwrapEnvArgs(input.env), ...(input.seccomp ? { seccomp: input.seccomp } : {}) };
}

const DEV_NODES = ["null", "zero", "full", "random", "urandom"] as const;

/** Shape 3: no bubblewrap; root builds the tree and chroots the app into it as the image user. */
export function chrootCommand(input: SandboxInput, tools: Tools): SpawnCommand {
  const root = input.stageDir;
  const at = (p: string) => posix.join(root, p);
  const ops: StageOp[] = [{ op: "tmpfs", options: "mode=0755,size=1m", target: root }];
  for (const m of input.mounts) {
    switch (m.kind) {
      case "dir":
        ops.push({ op: "dir", target: at(m.target) });
        break;
      case "image":
        ops.push(
          { op: m.isDir ? "dir" : "file", target: at(m.target) },
          { op: "bind-ro", source: hostSource(input, m) ?? "", target: at(m.target) },
        );
        break;
      case "symlink":
        ops.push({ op: "symlink", linkTarget: m.linkTarget, target: at(m.target) });
        break;
      case "proc":
        break; // deliberately absent: without a PID namespace it would list every host process
      case "dev":
        ops.push({ op: "dir", target: at("/dev") });
        for (const n of DEV_NODES)
          ops.push({ op: "file", target: at(`/dev/${n}`) }, { op: "bind", source: `/dev/${n}`, target: at(`/dev/${n}`) });
        break;
      case "tmp":
        ops.push(
          { op: "dir", target: at("/tmp") },
          { op: "tmpfs", options: `mode=1777,size=${input.tmpSizeBytes}`, target: at("/tmp") },
        );
        break;
      case "volume":
        ops.push({ op: "dir", target: at(m.target) }, { op: "bind", source: hostSource(input, m) ?? "", target: at(m.target) });
        break;
    }
  }
  ops.push({ op: "remount-ro", target: root });
  const args = [
    ...stagePrefix(tools, ops),
    tools.unshare,
    `--root=${root}`,
    `--wd=${input.workdir}`,
    `--setgid=${input.hostGid ?? input.gid}`,
    `--setuid=${input.hostUid ?? input.uid}`,
    "--",
    ...input.argv,
  ];
  // The app's environment is the process environment from the start (never
  // argv, see ENV_FD); the helpers before it need none, and the final exec
  // resolves the entrypoint with the image's PATH, inside the new root.
  return { file: tools.unshare, args, env: Object.fromEntries(input.env) };
}

/** UTS hostnames are at most 64 bytes; instance ids are short, but be safe. */
export function hostnameFor(instanceId: string): string {
  return instanceId.slice(0, 63);
}

// Each local instance in its own network namespace (issue 12), with a forwarder of kiln's own
// between it and the host.
//
// bwrap makes the namespace (`--unshare-net`: only a loopback interface, up). Once bwrap reports
// the namespace's init, kiln attaches Debian's `pasta` (package passt) to it:
//
//   pasta --foreground --quiet --netns /proc/CHILD/ns/net --runas U:G
//         -t 127.0.0.1/PORT   -T 5432,6379 (or none)   -u none -U none
//         --no-udp --no-icmp --no-dhcp --no-dhcpv6 --no-ndp --no-ra --no-map-gw
//
// - inbound, `-t 127.0.0.1/PORT`: pasta listens on the host's 127.0.0.1:PORT and splices each
//   connection from the host's loopback to the app's 127.0.0.1:PORT inside the namespace, so the
//   proxy and the health checks keep dialling the same 127.0.0.1:PORT as before;
// - outbound, `-T P,…`: pasta listens on P inside the namespace and splices to the host's
//   127.0.0.1:P — only for the ports kiln.yaml `network.allow` declares (`-T none` otherwise:
//   pasta's default, `auto`, would mirror every host listener into the namespace);
// - no `--config-net`: pasta's tap interface in the namespace gets no address and no route (and
//   the app has no CAP_NET_ADMIN to give it one), so nothing but the spliced ports is reachable —
//   not the proxy's admin port, not another instance, not the host's other listeners.
//
// Lifetime: pasta is spawned detached (its own session), so a controller SIGKILL leaves it
// running beside its instance; its pid and start time are kept in the instance's directory
// (net.json) and whichever controller terminates the instance, or first sees it exited, stops it.
// pasta holds the namespace open itself, so it does not stop on its own when the app dies.

import { closeSync, openSync, readdirSync, readFileSync, readSync } from "node:fs";
import { join } from "node:path";
import { parseAllowEntry } from "../../config/network-allow.js";
import { findHostTool, HOST_PATH } from "./executable.js";
import { writeRecordFile } from "./meta.js";
import { isSameProcessAlive, readStat } from "./procfs.js";
import { InlineSpawner, SpawnFailure, type Spawned, type Spawner } from "./spawner.js";

export const NET_FILE = "net.json";
export const NET_LOG_FILE = "net.log";

/**
 * How an instance is networked, as `status` shows it:
 * - "private": its own namespace, reachable through pasta on 127.0.0.1:PORT, egress only to `network.allow`;
 * - "host": the host's namespace (kiln.yaml `network.mode: host`, no pasta installed, or the
 *   unisolated chroot fallback): it reaches every host listener.
 */
export type NetworkMode = "private" | "host";

/** net.json: what a later controller needs to find and stop the forwarder. */
export interface NetRecord {
  schema: 1;
  mode: NetworkMode;
  /** why the instance is on the host's network, when mode is "host" */
  reason?: string;
  /** pasta's pid and /proc stat start time (absent in mode "host") */
  pid?: number;
  startTime?: number;
  /** host loopback ports the instance may reach */
  egress: number[];
}

export function readNetRecord(dir: string): NetRecord | undefined {
  try {
    const r = JSON.parse(readFileSync(join(dir, NET_FILE), "utf8")) as NetRecord;
    return r && r.schema === 1 && (r.mode === "private" || r.mode === "host") ? r : undefined;
  } catch {
    return undefined;
  }
}

export function writeNetRecord(dir: string, rec: NetRecord): void {
  writeRecordFile(dir, NET_FILE, rec);
}

export interface PastaInput {
  /** the namespace to attach to: /proc/<bwrap's child>/ns/net */
  netnsPath: string;
  /** the user namespace owning it, joined too when kiln is not root (an unprivileged setns needs it) */
  usernsPath?: string;
  /** host port = namespace port the app listens on */
  port: number;
  /** host loopback ports the app may dial (sorted, unique) */
  egress: readonly number[];
  /** pasta drops to this uid:gid once attached (root only; pasta's own default is "nobody") */
  runAs?: string;
  logFile: string;
}

/** pasta's argv (after the binary). Pure; tests compare it by equality. */
export function pastaArgs(p: PastaInput): string[] {
  const a = ["--foreground", "--quiet", "--log-file", p.logFile, "--log-size", String(1024 * 1024), "--netns", p.netnsPath];
  if (p.usernsPath) a.push("--userns", p.usernsPath);
  if (p.runAs) a.push("--runas", p.runAs);
  // IPv4 only when nothing goes out: the inbound port is 127.0.0.1's, so IPv6 would serve nothing,
  // and pasta's start (it clears its frame buffers, per address family) costs about a third less
  // CPU without it. With egress ports, IPv6 stays: an app dialling ::1:PORT inside keeps working.
  if (p.egress.length === 0) a.push("--ipv4-only");
  a.push(
    "-t",
    `127.0.0.1/${p.port}`,
    "-T",
    p.egress.length ? p.egress.join(",") : "none",
    "-u",
    "none",
    "-U",
    "none",
    "--no-icmp",
    "--no-dhcp",
    "--no-dhcpv6",
    "--no-ndp",
    "--no-ra",
    "--no-map-gw",
  );
  return a;
}

/** Host ports from `allow` entries already checked by the config loader (sorted, unique). */
export function egressPorts(allow: readonly string[]): number[] {
  const ports = new Set<number>();
  for (const e of allow) {
    const r = parseAllowEntry(e);
    if (r.ok) ports.add(r.port);
  }
  return [...ports].sort((a, b) => a - b);
}

/**
 * Whether /proc/net/tcp (or tcp6) text shows a listener on 127.0.0.1:port (or any address).
 *
 *   "  0: 0100007F:1F90 00000000:0000 0A …" , 8080 → true   (127.0.0.1:8080, LISTEN)
 *   "  0: 00000000:1F90 00000000:0000 0A …" , 8080 → true   (0.0.0.0:8080)
 *   "  0: 0100007F:1F90 0100007F:9C40 01 …" , 8080 → false  (an established connection)
 */
export function isListening(procNetTcp: string, port: number): boolean {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  for (const line of procNetTcp.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    const local = f[1];
    if (!local || f[3] !== "0A") continue;
    const [addr, p] = local.split(":");
    if (p !== hexPort) continue;
    if (addr === "0100007F" || /^0+$/.test(addr ?? "")) return true;
  }
  return false;
}

/**
 * Whether a /proc/net/tcp text read so far has gone past its listeners: the kernel lists every
 * listening socket before any other (its listening hash, then the established one, TIME_WAIT
 * included), so once a complete line in another state is read, no listener follows.
 *
 *   "  sl  local_address …\n"                               → false (the header alone)
 *   header + "  0: 0100007F:1F90 00000000:0000 0A …\n"      → false (a listener: more may follow)
 *   header + "  0: … 0A …\n  1: 0100007F:9C40 0100007F:1F90 06 …\n" → true (TIME_WAIT: past them)
 */
export function isPastListeners(text: string): boolean {
  const end = text.lastIndexOf("\n");
  if (end < 0) return false;
  const lines = text.slice(0, end).split("\n");
  if (lines.length < 2) return false;
  const state = lines[lines.length - 1]!.trim().split(/\s+/)[3];
  return state !== undefined && state !== "0A";
}

/**
 * The listening part of /proc/net/tcp (header and every listener, perhaps a little more): read in
 * chunks only until isPastListeners. The whole table lists every TIME_WAIT socket too; on a host
 * serving load that is thousands of lines, which a forwarder polled for its listener read in full
 * on every poll.
 */
export function readTcpListeners(file = "/proc/net/tcp"): string {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch {
    return "";
  }
  try {
    const buf = Buffer.alloc(16 * 1024);
    let text = "";
    for (let i = 0; i < 4096; i++) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n <= 0) break;
      text += buf.toString("latin1", 0, n);
      if (isPastListeners(text)) break;
    }
    return text;
  } catch {
    return "";
  } finally {
    closeSync(fd);
  }
}

/**
 * Whether a network namespace's routing trie (/proc/PID/net/fib_trie) holds the loopback address.
 * bwrap configures the namespace's loopback itself: it adds 127.0.0.1 exclusively, then brings lo
 * up. pasta brings lo up too (the kernel then adds 127.0.0.1 on its own), so a pasta attached
 * before bwrap's add can make that add fail and the sandbox die before the app starts ("bwrap:
 * loopback: Failed RTM_NEWADDR", seen twice in CI under load). The forwarder waits for it.
 *
 *   ""                                                    → false  (a new namespace: lo down, no address)
 *   "Local:\n  |-- 127.0.0.1\n     /32 host LOCAL\n"      → true
 *   "Local:\n  |-- 127.0.0.2\n     /32 host LOCAL\n"      → false
 */
export function hasLoopbackAddress(fibTrie: string): boolean {
  return /\|-- 127\.0\.0\.1\n\s+\/32 host LOCAL/.test(fibTrie);
}

/** Waits (bounded) until the namespace of `pid` has its loopback address, or `pid` is gone. */
async function loopbackConfigured(pid: number, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    let trie: string;
    try {
      trie = readFileSync(`/proc/${pid}/net/fib_trie`, "utf8");
    } catch {
      return false; // gone: the caller's open of its namespace says so
    }
    if (hasLoopbackAddress(trie)) return true;
    if (Date.now() >= end) return false;
    await sleep(2);
  }
}

/** How long the forwarder waits for bwrap's loopback setup (it takes well under 1 ms unloaded). */
const LOOPBACK_WAIT_MS = 2000;

/** The pasta binary (Debian: passt), or undefined when it is not installed. */
export function findPasta(path = process.env.PATH ?? ""): string | undefined {
  return findHostTool("pasta", path);
}

/** the descriptor (in pasta) of the instance's network namespace */
const NS_FD = 3;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const READY_WAIT_MS = 5000;
const STOP_WAIT_MS = 3000;

function readProc(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

export type ForwarderStart = { ok: true; record: NetRecord } | { ok: false; reason: string };

/**
 * Attaches pasta to the namespace of `childPid` and waits (bounded) until it listens on the
 * host's 127.0.0.1:port. The record is written before the wait, so a controller killed in between
 * leaves a forwarder the next one can stop.
 */
export async function startForwarder(o: {
  pasta: string;
  dir: string;
  childPid: number;
  port: number;
  egress: readonly number[];
  runAs?: string;
  joinUserns: boolean;
  /** told pasta's pid as soon as it runs (before it listens) */
  onSpawn?: (pid: number) => void;
  /** default: the calling thread's (InlineSpawner) */
  spawner?: Spawner;
}): Promise<ForwarderStart> {
  const logFile = join(o.dir, NET_LOG_FILE);
  closeSync(openSync(logFile, "a", 0o640));
  // Not while bwrap is still configuring the namespace's loopback (hasLoopbackAddress). Past the
  // bound pasta attaches anyway, as it did before the wait.
  await loopbackConfigured(o.childPid, LOOPBACK_WAIT_MS);
  const args = pastaArgs({
    netnsPath: `/proc/self/fd/${NS_FD}`,
    ...(o.joinUserns ? { usernsPath: `/proc/${o.childPid}/ns/user` } : {}),
    port: o.port,
    egress: o.egress,
    ...(o.runAs ? { runAs: o.runAs } : {}),
    logFile,
  });
  const errFd = openSync(logFile, "a");
  // kiln opens the namespace and hands pasta the descriptor: pasta drops CAP_SYS_PTRACE before it
  // joins, and without it /proc/<pid>/ns/net of a process of another uid (the app) cannot be opened.
  let nsFd: number;
  try {
    nsFd = openSync(`/proc/${o.childPid}/ns/net`, "r");
  } catch (e) {
    closeSync(errFd);
    return { ok: false, reason: `cannot open the instance's network namespace: ${(e as NodeJS.ErrnoException).code ?? String(e)}` };
  }
  // Off the event loop (spawner.ts); net.json is written by the spawning thread as soon as the spawn returns.
  const fields: Omit<NetRecord, "pid" | "startTime"> = { schema: 1, mode: "private", egress: [...o.egress] };
  let spawned: Spawned;
  try {
    spawned = await (o.spawner ?? new InlineSpawner()).spawn({
      file: o.pasta,
      args,
      env: { PATH: HOST_PATH },
      stdio: ["ignore", errFd, errFd, nsFd],
      record: { dir: o.dir, file: NET_FILE, fields: { ...fields } },
    });
  } catch (e) {
    // Unrecorded, no later controller could find it (a full disk): the spawner killed it.
    if (e instanceof SpawnFailure && e.stage === "record") return { ok: false, reason: `cannot record the forwarder: ${e.code ?? e.message}` };
    return { ok: false, reason: `cannot start ${o.pasta}${e instanceof Error ? `: ${e.message}` : ""}` };
  } finally {
    closeSync(errFd);
    closeSync(nsFd);
  }
  const { pid } = spawned;
  o.onSpawn?.(pid);
  let exit: string | undefined;
  void spawned.exit.then(({ code, signal }) => (exit = signal ?? `exit code ${code}`));
  const record: NetRecord = { ...fields, pid, startTime: spawned.startTime };
  const deadline = Date.now() + READY_WAIT_MS;
  while (Date.now() < deadline && exit === undefined) {
    if (isListening(readTcpListeners(), o.port)) return { ok: true, record };
    await sleep(10);
  }
  const tail = readProc(logFile).trim().split("\n").slice(-3).join(" | ");
  if (exit === undefined) await stopForwarder(o.dir);
  return { ok: false, reason: `pasta ${exit ?? "did not listen in time"}${tail ? `: ${tail}` : ""}` };
}

/** Stops the instance's forwarder, if it is still the one recorded (SIGTERM, then SIGKILL; bounded). */
export async function stopForwarder(dir: string, opts: { search?: boolean } = {}): Promise<void> {
  const rec = readNetRecord(dir);
  const recorded = rec?.pid !== undefined && rec.startTime !== undefined ? [{ pid: rec.pid, startTime: rec.startTime }] : [];
  // With `search` (a stop that must leave nothing: terminate, removeRecord), also any pasta whose
  // argv names this instance's own log file: one started but never recorded. This kiln's spawner
  // records before the exec (spawner.ts, the gate), but a kiln before it recorded after the exec,
  // and a controller killed in between left such a pasta, perhaps beside a recorded one that took
  // the port. The path is the instance's, so no other process matches. Not on every listing: it
  // reads all of /proc.
  const found = opts.search ? forwardersOf(dir).filter((f) => !recorded.some((r) => r.pid === f.pid)) : [];
  await Promise.all([...recorded, ...found].map((f) => stopProcess(f.pid, f.startTime)));
}

/**
 * Whether a process's argv (/proc/PID/cmdline: NUL-separated) is a pasta started for the
 * instance in `dir`, which kiln gives `--log-file DIR/net.log`.
 *
 *   "/usr/bin/pasta\0--foreground\0--log-file\0/h/instances/a/net.log\0…", "/h/instances/a"   → true
 *   "/usr/bin/pasta\0--log-file\0/h/instances/ab/net.log\0…", "/h/instances/a"                → false (another instance)
 *   "/bin/sh\0-c\0echo --log-file\0/h/instances/a/net.log\0", "/h/instances/a"                → false (not pasta)
 */
export function isForwarderOf(argv: string, dir: string): boolean {
  return /^(?:[^\0]*\/)?pasta(?:\.avx2)?\0/.test(argv) && argv.includes(`\0--log-file\0${join(dir, NET_LOG_FILE)}\0`);
}

/** Running pasta processes started for the instance in `dir` (isForwarderOf), with their start times. */
export function forwardersOf(dir: string): { pid: number; startTime: number }[] {
  const out: { pid: number; startTime: number }[] = [];
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (!isForwarderOf(readFileSync(`/proc/${e}/cmdline`, "latin1"), dir)) continue;
      const startTime = readStat(Number(e))?.startTime;
      if (startTime !== undefined) out.push({ pid: Number(e), startTime });
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return out;
}

async function stopProcess(pid: number, startTime: number): Promise<void> {
  const alive = () => isSameProcessAlive(pid, startTime);
  if (!alive()) return;
  const kill = (sig: NodeJS.Signals) => {
    try {
      process.kill(pid, sig);
    } catch {
      // gone
    }
  };
  kill("SIGTERM");
  const deadline = Date.now() + STOP_WAIT_MS;
  while (alive() && Date.now() < deadline) await sleep(10);
  if (alive()) {
    kill("SIGKILL");
    const hard = Date.now() + STOP_WAIT_MS;
    while (alive() && Date.now() < hard) await sleep(10);
  }
}

/** Whether the recorded forwarder is running (false for mode "host"). */
export function isForwarderAlive(rec: NetRecord | undefined): boolean {
  return !!rec && rec.pid !== undefined && rec.startTime !== undefined && isSameProcessAlive(rec.pid, rec.startTime);
}

export type NetworkPlan = { mode: "private"; egress: number[] } | { mode: "host"; reason: string; warn: boolean };

/**
 * How one instance is networked, from kiln.yaml `network`, the sandbox and the host. A missing
 * pasta falls back to the host's network with a warning (like a missing seccomp filter), so a
 * host without passt still runs its fleet; `status` and `doctor` say so.
 *
 *   isolation absent,        bwrap, pasta       → private, egress []
 *   allow ["127.0.0.1:5432"], bwrap, pasta      → private, egress [5432]
 *   mode host,               bwrap, pasta       → host ("network.mode: host"), no warning
 *   isolation absent,        bwrap, no pasta    → host ("pasta … not installed"), warning
 *   isolation absent,        chroot             → host ("--unsafe-no-sandbox"), warning
 */
export function planNetwork(isolation: { mode: "private" | "host"; allow: readonly string[] } | undefined, sandbox: "bwrap" | "chroot", pasta: string | undefined): NetworkPlan {
  if (isolation?.mode === "host") return { mode: "host", reason: "network.mode: host", warn: false };
  if (sandbox === "chroot") return { mode: "host", reason: "no sandbox (--unsafe-no-sandbox): the host's network", warn: true };
  if (!pasta) return { mode: "host", reason: "pasta is not installed (Debian: apt-get install passt): the host's network", warn: true };
  return { mode: "private", egress: egressPorts(isolation?.allow ?? []) };
}

/**
 * What `status` shows of an instance's network.
 *
 *   private, egress [5432]      → "private (own namespace), egress: 127.0.0.1:5432"
 *   private, egress []          → "private (own namespace), egress: none"
 *   host, "network.mode: host"  → "host (network.mode: host)"
 *   no record (launched before) → undefined
 */
export function describeNetwork(rec: NetRecord | undefined): string | undefined {
  if (!rec) return undefined;
  if (rec.mode === "host") return `host (${rec.reason ?? "the host's network"})`;
  return `private (own namespace), egress: ${rec.egress.length ? rec.egress.map((p) => `127.0.0.1:${p}`).join(", ") : "none"}`;
}

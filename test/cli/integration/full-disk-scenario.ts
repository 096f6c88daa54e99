// The full-disk scenario of full-disk.test.ts, run as its own process inside a private mount
// namespace where `mountDir` is a small tmpfs (the test mounts it; nothing is mounted on the
// host). KILN_HOME lives on it. Prints one JSON report on stdout: what each step observed; the
// test judges it. Every step is bounded; the daemons are stopped in the end whatever happened.
//
//   node full-disk-scenario.js MOUNT_DIR

import { appendFileSync, closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeSync } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { parseDocument } from "yaml";
import { readPidFile } from "../../../src/home.js";
import { helloWorkspace, kiln, until, type RunResult } from "../../integration/support.js";

const mountDir = process.argv[2];
if (!mountDir) throw new Error("usage: full-disk-scenario.js MOUNT_DIR");
const home = join(mountDir, "home");
const env = { KILN_HOME: home };

/** Bytes a file of `size` chunks could still take: fill the filesystem until a write fails with ENOSPC. */
function fill(file: string): number {
  const fd = openSync(file, "a");
  let written = 0;
  try {
    for (const size of [1 << 20, 1 << 12, 1]) {
      const chunk = Buffer.alloc(size, 0x2a);
      for (let i = 0; i < 1_000_000; i++) {
        try {
          writeSync(fd, chunk);
          written += size;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === "ENOSPC") break;
          throw e;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return written;
}

/** GET /version through the proxy (the hello app's GET / writes a counter to its volume, which a full disk fails), `n` times: how many answered 200, and the last body. */
async function requests(port: number, n: number): Promise<{ ok: number; failed: number; body: string }> {
  let ok = 0;
  let body = "";
  for (let i = 0; i < n; i++) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/version`, { signal: AbortSignal.timeout(5_000) });
      body = await r.text();
      if (r.status === 200) ok++;
    } catch {
      // counted as failed
    }
  }
  return { ok, failed: n - ok, body };
}

/** Every blob in the store hashes to its own name (what a torn write would break). */
function blobsVerify(): { blobs: number; bad: string[] } {
  const bad: string[] = [];
  let blobs = 0;
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        if (e.name === "sha256" && dir.endsWith("blobs")) {
          for (const b of readdirSync(p)) {
            blobs++;
            const hex = createHash("sha256").update(readFileSync(join(p, b))).digest("hex");
            if (hex !== b) bad.push(b);
          }
        } else if (!["rootfs", "layers", "volumes", "instances", "runtimes"].includes(e.name)) walk(p);
      }
    }
  };
  walk(home);
  return { blobs, bad };
}

/** Every process below `pid` (from /proc: ppid is the 4th field of /proc/PID/stat, after the command in parentheses). */
function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, "utf8");
      parent.set(Number(e), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [child, pp] of parent) if (pp === p) {
      walk(child);
      out.push(child);
    }
  };
  walk(pid);
  return out;
}

/** Ids of the processes whose command line contains `text`. */
function processesNaming(text: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${e}/cmdline`, "utf8").includes(text)) out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

const pidAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** The controller log's last lines (it is on the tmpfs, gone with the namespace). */
const logTail = (name = "controller.log") => {
  try {
    return readFileSync(join(home, "logs", name), "utf8").split("\n").slice(-80).join("\n");
  } catch (e) {
    return String(e);
  }
};

const brief = (r: RunResult) => ({ code: r.code, stdout: r.stdout.slice(-20_000), stderr: r.stderr.slice(-4000) });

const report: Record<string, unknown> = {};
const ws = await helloWorkspace("kiln-full-disk-");
const filler = join(mountDir, "filler");
try {
  // A small image: the host's node binary as the runtime, layers stored uncompressed (no gzip to wait for).
  const doc = parseDocument(readFileSync(join(ws.dir, "kiln.yaml"), "utf8"));
  doc.setIn(["image", "base"], "node");
  doc.setIn(["image", "compression"], "none");
  doc.set("instances", 2);
  const { writeFileSync } = await import("node:fs");
  writeFileSync(join(ws.dir, "kiln.yaml"), doc.toString());

  ws.release("1.0.0");
  report.bake1 = brief(await kiln(["bake"], { cwd: ws.dir, env }));
  report.up = brief(await kiln(["up", "--detach"], { cwd: ws.dir, env, timeoutMs: 60_000 }));
  report.deploy1 = brief(await kiln(["deploy"], { cwd: ws.dir, env, timeoutMs: 120_000 }));
  report.before = await requests(ws.port, 5);
  const controllerPid = readPidFile(join(home, "run", "controller.pid")) ?? -1;
  report.controllerPid = controllerPid;

  // The disk is full from here on. The daemons' logs first end on a page boundary: tmpfs gives a
  // file whole pages, so a log whose last page had room would take a few more lines on a "full" disk.
  for (const f of readdirSync(join(home, "logs"))) {
    const size = statSync(join(home, "logs", f)).size;
    const pad = (4096 - (size % 4096)) % 4096;
    if (pad > 0) appendFileSync(join(home, "logs", f), `${"#".repeat(Math.max(0, pad - 1))}\n`.slice(-pad));
  }
  report.filled = fill(filler);
  report.freeAfterFill = (() => {
    try {
      writeSync(openSync(join(mountDir, "probe"), "a"), Buffer.alloc(4096));
      return "writable";
    } catch (e) {
      return (e as NodeJS.ErrnoException).code;
    }
  })();

  ws.release("2.0.0");
  const storeBefore = blobsVerify();
  report.bakeFull = brief(await kiln(["bake"], { cwd: ws.dir, env, timeoutMs: 120_000 }));
  report.bakeFullAgain = brief(await kiln(["bake"], { cwd: ws.dir, env, timeoutMs: 120_000 }));
  // Things that make the controller write its log and state: a deploy of an image that is not
  // there (refused), status, a scale of the running release.
  report.deployFull = brief(await kiln(["deploy"], { cwd: ws.dir, env, timeoutMs: 60_000 }));
  report.statusFull = brief(await kiln(["status", "--json"], { cwd: ws.dir, env, timeoutMs: 30_000 }));
  report.duringFull = await requests(ws.port, 20);
  // One instance dies: the proxy logs the failed attempts and the unhealthy target (its log
  // writes fail too) and sends the requests to the other one.
  const status = JSON.parse((report.statusFull as RunResult).stdout) as { proxy: { pid: number }; instances: Array<{ id: string; pid?: number; address?: string }> };
  report.proxyPid = status.proxy.pid;
  const victim = status.instances.find((i) => i.pid !== undefined);
  report.killed = victim?.id;
  report.victimPid = victim?.pid;
  // The instance's process and everything under it (bwrap's sandboxed app too): its port must go dead.
  if (victim?.pid) for (const pid of [...descendants(victim.pid), victim.pid]) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone with its parent
    }
  }
  report.victimGone = await until(async () => !(await fetch(`http://${victim?.address}/version`, { signal: AbortSignal.timeout(1_000) }).then(() => true, () => false)), 10_000, "the killed instance's port to close").then(() => true, () => false);
  report.afterKill = await requests(ws.port, 20);
  await new Promise((r) => setTimeout(r, 3_000)); // health checks and ticks go on meanwhile
  report.controllerAliveWhileFull = pidAlive(controllerPid);
  report.proxyAliveWhileFull = pidAlive(report.proxyPid as number);
  if (process.env.KILN_TEST_FULL_DISK_PS) report.ps = (await import("node:child_process")).execFileSync("ps", ["-eo", "pid,ppid,stat,args"], { encoding: "utf8" }).split("\n").filter((l) => /node|bwrap/.test(l)).join("\n");
  report.afterWait = await requests(ws.port, 10);
  report.images = brief(await kiln(["images", "--json"], { cwd: ws.dir, env, timeoutMs: 30_000 }));
  report.verify = brief(await kiln(["verify", "hello:1.0.0"], { cwd: ws.dir, env, timeoutMs: 60_000 }));
  report.storeBefore = storeBefore;
  report.controllerLogWhileFull = logTail();
  report.storeAfter = blobsVerify();
  report.storeTmpLeft = existsSync(join(home, "tmp")) ? readdirSync(join(home, "tmp")).length : 0;

  // Space again: the same bake and a deploy succeed.
  rmSync(filler, { force: true });
  rmSync(join(mountDir, "probe"), { force: true });
  report.bakeFreed = brief(await kiln(["bake"], { cwd: ws.dir, env, timeoutMs: 120_000 }));
  report.deployFreed = brief(await kiln(["deploy"], { cwd: ws.dir, env, timeoutMs: 120_000 }));
  await until(async () => (await requests(ws.port, 1)).body.includes("2.0.0"), 30_000, "version 2.0.0 to serve").catch(() => undefined);
  report.afterFreed = await requests(ws.port, 5);
  report.controllerAliveAtEnd = pidAlive(controllerPid);
  report.controllerLogTail = logTail();
  report.proxyLogTail = logTail("proxy.log");
  // Full again: `kiln down` still stops everything (nothing left running that names the home).
  fill(filler);
  report.downFull = brief(await kiln(["down"], { cwd: ws.dir, env, timeoutMs: 60_000 }));
  await new Promise((r) => setTimeout(r, 1_000));
  report.leftRunning = processesNaming(home).map((pid) => { try { return `${pid} ${readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").slice(0, 300)}`; } catch { return `${pid} (gone)`; } });
} catch (e) {
  report.scenarioError = String((e as Error).stack ?? e);
} finally {
  report.down = brief(await kiln(["down"], { cwd: ws.dir, env, timeoutMs: 60_000 }).catch((e: unknown) => ({ code: -1, stdout: "", stderr: String(e) })));
  rmSync(ws.dir, { recursive: true, force: true });
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

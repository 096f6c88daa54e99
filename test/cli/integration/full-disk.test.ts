// Issue 12: kiln on a full disk. KILN_HOME sits on a small tmpfs that this test mounts in a
// private mount namespace of its own (unshare --mount --propagation private: the host's mounts
// are never touched), where full-disk-scenario.js bakes and deploys, fills the disk, then tries a
// bake and a deploy and watches the fleet, frees the space and bakes and deploys again.
// Here: what it saw. A bake on the full disk fails with a clear KILN_E_ error (exit 1, no stack
// trace), the store stays consistent, the controller and the proxy keep running and the fleet keeps
// serving (an instance killed meanwhile included) while their log writes fail, and after space is freed a bake and a deploy succeed.

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { hasBwrap, requireTool } from "../../integration/support.js";

const scenario = fileURLToPath(new URL("./full-disk-scenario.js", import.meta.url));

/** Whether this host lets us make a private mount namespace (root, or CAP_SYS_ADMIN): `unshare --mount true`. */
const canUnshareMount = spawnSync("unshare", ["--mount", "--propagation", "private", "true"], { stdio: "ignore" }).status === 0;

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}
type Brief = { code: number; stdout: string; stderr: string };

function runScenario(dir: string, timeoutMs: number): Promise<Ran> {
  return new Promise((resolve, reject) => {
    // sh's positional parameters carry the paths: nothing is pasted into the script text.
    const child = spawn(
      "unshare",
      ["--mount", "--propagation", "private", "--", "sh", "-c", 'mount -t tmpfs -o size=320m,mode=0700 kiln-full-disk "$1" && exec "$2" "$3" "$1"', "sh", dir, process.execPath, scenario],
      { stdio: ["ignore", "pipe", "pipe"], detached: true, env: { ...process.env, NO_COLOR: "1" } },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // gone
      }
    }, timeoutMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, stdout, stderr });
    });
  });
}

test("on a full disk: a bake fails cleanly, the store stays whole, the fleet keeps serving; with space again, bake and deploy work", { timeout: 600_000 }, async (t) => {
  if (!requireTool(canUnshareMount, "no private mount namespace here (unshare --mount needs root or CAP_SYS_ADMIN)", t)) return;
  if (!requireTool(hasBwrap, "bubblewrap (bwrap) is not installed: the local provider needs it", t)) return;
  const dir = mkdtempSync(join(tmpdir(), "kiln-full-disk-mnt-"));
  try {
    const ran = await runScenario(dir, 540_000);
    const line = ran.stdout.trim().split("\n").pop() ?? "";
    let r: Record<string, any>;
    try {
      r = JSON.parse(line);
    } catch {
      assert.fail(`the scenario printed no report (exit ${ran.code}): ${ran.stdout.slice(-2000)} ${ran.stderr.slice(-3000)}`);
    }
    // KILN_TEST_FULL_DISK_REPORT=FILE keeps the whole report, to read what a failure saw.
    if (process.env.KILN_TEST_FULL_DISK_REPORT) writeFileSync(process.env.KILN_TEST_FULL_DISK_REPORT, JSON.stringify(r, null, 1));
    const show = (k: string) => `${k}: ${JSON.stringify(r[k])}`;
    assert.equal(r.scenarioError, undefined, `${r.scenarioError}\n${JSON.stringify(r, null, 1).slice(0, 8000)}`);
    // Before: a normal bake and deploy on the small disk.
    for (const k of ["bake1", "up", "deploy1"]) assert.equal((r[k] as Brief).code, 0, show(k));
    assert.equal(r.before.ok, 5, show("before"));
    assert.equal(r.freeAfterFill, "ENOSPC", "the filesystem is full");

    // The bake on the full disk: one clear error, the same each time, no stack trace.
    for (const k of ["bakeFull", "bakeFullAgain"]) {
      const b = r[k] as Brief;
      assert.equal(b.code, 1, show(k));
      assert.match(b.stderr, /^error KILN_E_NO_SPACE: no space left on device/m, show(k));
      assert.match(b.stderr, /hint: .*free/i, show(k));
      assert.doesNotMatch(b.stderr, /\n\s+at .+:\d+:\d+/, `a stack trace: ${show(k)}`);
      assert.doesNotMatch(b.stderr, /internal error/, show(k));
    }

    // The store: every blob still hashes to its name, nothing half-written left behind, the
    // earlier image listed and its unpacked root unchanged.
    assert.deepEqual(r.storeAfter.bad, [], show("storeAfter"));
    assert.equal(r.storeAfter.blobs, r.storeBefore.blobs, "no blob added or lost by the failed bakes");
    assert.equal(r.storeTmpLeft, 0, "no temporary files left in the store");
    assert.equal((r.images as Brief).code, 0, show("images"));
    assert.match((r.images as Brief).stdout, /1\.0\.0/, show("images"));
    assert.equal((r.verify as Brief).code, 0, show("verify"));

    // The fleet and the controller, while the disk is full.
    assert.equal(r.duringFull.failed, 0, show("duringFull"));
    assert.equal(typeof r.killed, "string", "an instance was killed");
    assert.equal(r.victimGone, true, "the killed instance's port closed");
    assert.equal(r.afterKill.failed, 0, show("afterKill"));
    assert.equal(r.afterWait.failed, 0, show("afterWait"));
    assert.equal(r.proxyAliveWhileFull, true, "the proxy died");
    // Both really met the full disk: their logs say how many lines they lost.
    assert.match(r.controllerLogTail, /\(\d+ log lines? dropped: ENOSPC\)/, show("controllerLogTail"));
    assert.match(r.proxyLogTail, /\(\d+ log lines? dropped: ENOSPC\)/, show("proxyLogTail"));
    assert.equal(r.controllerAliveWhileFull, true, `the controller died: ${r.controllerLogTail}`);
    assert.notEqual((r.deployFull as Brief).code, 0, show("deployFull"));
    assert.doesNotMatch((r.deployFull as Brief).stderr, /\n\s+at .+:\d+:\d+|internal error/, show("deployFull"));
    assert.equal((r.statusFull as Brief).code, 0, show("statusFull"));
    assert.equal(JSON.parse((r.statusFull as Brief).stdout).controller.pid, r.controllerPid, show("statusFull"));

    // Space again.
    assert.equal((r.bakeFreed as Brief).code, 0, show("bakeFreed"));
    assert.equal((r.deployFreed as Brief).code, 0, show("deployFreed"));
    assert.equal(r.afterFreed.ok, 5, show("afterFreed"));
    assert.match(r.afterFreed.body, /2\.0\.0/, show("afterFreed"));
    assert.equal(r.controllerAliveAtEnd, true);
    // `kiln down` on a full disk stops every process; the local provider's record of each
    // termination is a write, so it may end with the same clean error (and no stack).
    const downFull = r.downFull as Brief;
    if (downFull.code !== 0) assert.match(downFull.stderr, /^error KILN_E_NO_SPACE: no space left on device/m, show("downFull"));
    assert.doesNotMatch(downFull.stderr, /\n\s+at .+:\d+:\d+|internal error|KILN_E_INTERNAL/, show("downFull"));
    assert.deepEqual(r.leftRunning, [], "kiln down on a full disk left daemons running");
  } finally {
    // A scenario cut short leaves its daemons running (and its tmpfs mounted with them): end
    // the processes whose command line names this test's own mount directory.
    for (const pid of processesNaming(dir)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone meanwhile
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Ids of the processes whose command line contains `text` (from /proc). */
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

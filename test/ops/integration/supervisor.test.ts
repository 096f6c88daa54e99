// The controller's supervisor as a real process over a tiny stand-in controller
// (fixtures/fake-controller.ts): restarts after SIGKILL, stops on a clean exit and on SIGTERM,
// gives up on a controller that never starts.

import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, test } from "node:test";
import { pidAlive, readPidFile } from "../../../src/home.js";
import { ControllerClient } from "../../../src/server/client.js";

const supervisorMain = fileURLToPath(new URL("../../../src/ops/supervisor-main.js", import.meta.url));
const fake = fileURLToPath(new URL("./fixtures/fake-controller.js", import.meta.url));
const dirs: string[] = [];
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  for (const d of dirs) {
    const pid = readPidFile(join(d, "controller.pid"));
    if (pid !== undefined) process.kill(pid, "SIGKILL");
    rmSync(d, { recursive: true, force: true });
  }
});

async function until(check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function start(mode: "ok" | "crash-on-start") {
  const dir = mkdtempSync(join(tmpdir(), "kiln-sup-"));
  dirs.push(dir);
  const socket = join(dir, "controller.sock");
  const pidFile = join(dir, "controller.pid");
  const log = join(dir, "controller.log");
  const child = spawn(process.execPath, [supervisorMain, socket, pidFile, log, "--", fake, socket, pidFile, mode], { stdio: "ignore" });
  children.push(child);
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  return { child, exited, client: new ControllerClient(socket), pid: () => readPidFile(pidFile), log: () => readFileSync(log, "utf8") };
}

test("a SIGKILLed controller is started again, each time; SIGTERM stops the supervisor and leaves the controller", async () => {
  const s = start("ok");
  await until(() => s.client.ping(), 15_000, "the first controller");
  const seen = new Set<number>();
  for (let k = 0; k < 3; k++) {
    const pid = s.pid()!;
    seen.add(pid);
    process.kill(pid, "SIGKILL");
    await until(async () => {
      const now = s.pid();
      return now !== undefined && !seen.has(now) && (await s.client.ping());
    }, 15_000, `restart ${k + 1}`);
  }
  assert.equal((s.log().match(/exited \(signal SIGKILL\)/g) ?? []).length, 3, s.log());
  const last = s.pid()!;
  s.child.kill("SIGTERM");
  assert.equal(await s.exited, 0);
  assert.ok(pidAlive(last), "the controller is kiln down's to stop, not the supervisor's");
  process.kill(last, "SIGTERM");
});

test("a controller that exits normally is not started again", async () => {
  const s = start("ok");
  await until(() => s.client.ping(), 15_000, "the controller");
  process.kill(s.pid()!, "SIGTERM"); // the fake exits 0, as the controller does after /v1/shutdown
  assert.equal(await s.exited, 0);
  assert.match(s.log(), /exited \(code 0\): not restarting/);
});

test("a controller that never starts: the supervisor gives up after 3 tries and exits 1", async () => {
  const s = start("crash-on-start");
  assert.equal(await s.exited, 1);
  assert.equal((s.log().match(/exited \(code 1\)/g) ?? []).length, 3, s.log());
  assert.match(s.log(), /giving up, the controller exited 3 times in a row before it answered/);
});

// kiln doctor beside a real proxy process: while it runs, its live table is read and dead
// targets are only reported (the controller owns the table); once it is SIGKILLed, its pid
// file, socket and saved table are stale, and --repair cleans all three.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, openSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, test } from "node:test";
import { writePidFile } from "../../../src/home.js";
import { runDoctor } from "../../../src/doctor/index.js";
import { loadTableFile, saveTableFile } from "../../../src/traffic/proxy/state-file.js";
import { ProxyClient } from "../../../src/traffic/proxy/client.js";
import { SERVICE, table, tempHome } from "../helpers.js";
import { freeLoopbackPort } from "../../../src/net.js";

const PROXY_MAIN = fileURLToPath(new URL("../../../src/traffic/proxy/main.js", import.meta.url));
let proxyPid: number | undefined;
after(() => {
  if (proxyPid) {
    try {
      process.kill(proxyPid, "SIGKILL");
    } catch {
      // gone
    }
  }
});

async function until(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test("a running proxy's dead targets are reported, not rewritten; after it is killed, --repair removes its pid file and socket and prunes its saved table", async (t) => {
  const { home, paths } = tempHome(t);
  await saveTableFile(paths.routesFile, table([{ id: "svc-r1-ghost" }]));
  const log = openSync(join(home, "proxy.log"), "a");
  const child = spawn(process.execPath, [PROXY_MAIN, "--listen", `127.0.0.1:${await freeLoopbackPort()}`, "--admin", paths.proxyAdminSocket, "--state", paths.routesFile], { detached: true, stdio: ["ignore", log, log] });
  child.unref();
  proxyPid = child.pid!;
  writePidFile(paths.proxyPid, proxyPid);
  const client = new ProxyClient(paths.proxyAdminSocket);
  await until(() => client.ping(), 20_000, "the proxy to answer");

  const running = await runDoctor({ home, keep: 5, services: [SERVICE], repair: true });
  assert.deepEqual(running.findings.map((f) => f.check), ["routes.dead-target"]);
  assert.match(running.findings[0]!.where, /^proxy /);
  assert.equal(running.findings[0]!.repair, undefined, "the live table is the controller's to change");
  assert.equal((await client.stats()).targets.length, 1);

  process.kill(proxyPid, "SIGKILL");
  await until(() => !alive(proxyPid!), 10_000, "the proxy to die");
  const stale = await runDoctor({ home, keep: 5, services: [SERVICE] });
  assert.deepEqual(stale.findings.map((f) => f.check).sort(), ["daemon.stale-pidfile", "daemon.stale-socket", "routes.dead-target"]);

  const fixed = await runDoctor({ home, keep: 5, services: [SERVICE], repair: true });
  assert.ok(fixed.findings.every((f) => f.repaired?.ok), JSON.stringify(fixed.findings, null, 1));
  assert.equal(fixed.healthy, true);
  assert.equal(existsSync(paths.proxyPid), false);
  assert.equal(existsSync(paths.proxyAdminSocket), false);
  const saved = await loadTableFile(paths.routesFile);
  assert.ok(saved.kind === "ok" && saved.table.targets.length === 0);
  proxyPid = undefined;
});

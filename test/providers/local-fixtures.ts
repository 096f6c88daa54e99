// A tiny image root filesystem for the local provider's tests: the Node binary
// this test runs under, the shared libraries `ldd` lists for it, an
// /etc/passwd with an unprivileged "app" user, and a few fixture programs.
// (The real image unpacker lives elsewhere; these tests only need a rootfs.)

import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { dirname, join } from "node:path";

export const APP_UID = 1000;
export const APP_GID = 1000;

/** Shared libraries of `binary` as absolute paths (the loader included). */
export function sharedLibraries(binary: string): string[] {
  const out = execFileSync("ldd", [binary], { encoding: "utf8" });
  const libs = new Set<string>();
  for (const line of out.split("\n")) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m?.[1]) libs.add(m[1]);
  }
  return [...libs];
}

// Fixture programs, plain ESM run by the image's /usr/local/bin/node.
export const FIXTURES: Record<string, string> = {
  // Reports what it can see and do from inside the sandbox.
  "app/probe.mjs": `
import http from "node:http";
import fs from "node:fs";
import os from "node:os";
const dataDir = process.env.DATA_DIR ?? "/data";
function tryWrite(p) { try { fs.writeFileSync(p, "x"); fs.rmSync(p); return "ok"; } catch (e) { return e.code; } }
function exists(p) { try { fs.lstatSync(p); return true; } catch { return false; } }
const server = http.createServer((req, res) => {
  if (req.url === "/incr") {
    const f = dataDir + "/n";
    let n = 0;
    try { n = Number(fs.readFileSync(f, "utf8")); } catch {}
    n += 1;
    fs.writeFileSync(f + ".tmp", String(n));
    fs.renameSync(f + ".tmp", f);
    res.end(JSON.stringify({ n }));
    return;
  }
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify({
    uid: process.getuid(), gid: process.getgid(), groups: process.getgroups(),
    pid: process.pid, hostname: os.hostname(), cwd: process.cwd(),
    instance: process.env.KILN_INSTANCE_ID, env: process.env,
    writeRoot: tryWrite("/kiln-probe"), writeApp: tryWrite("/app/kiln-probe"),
    writeTmp: tryWrite("/tmp/kiln-probe"), writeData: tryWrite(dataDir + "/kiln-probe"),
    rootEntries: fs.readdirSync("/").sort(),
    seesRoot: exists("/root"), seesWork: exists("/work"), seesHostHome: exists(process.env.HOST_PROBE ?? "/nonexistent"),
  }));
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
server.listen(Number(process.env.PORT), "127.0.0.1");
`,
  "app/crash.mjs": `setTimeout(() => process.exit(3), 100);\n`,
  // Ignores SIGTERM; only SIGKILL stops it. Spawns a grandchild in its own session, too.
  "app/stubborn.mjs": `
import http from "node:http";
import { spawn } from "node:child_process";
process.on("SIGTERM", () => {});
const child = spawn(process.execPath, ["-e", "process.on('SIGTERM',()=>{}); setInterval(()=>{}, 1000)"], { detached: true, stdio: "ignore" });
child.unref();
http.createServer((req, res) => res.end(String(child.pid))).listen(Number(process.env.PORT), "127.0.0.1");
`,
};

/** Builds the rootfs under `root` (which may be a 0700 directory, like a real $KILN_HOME). */
export function buildTestRootfs(root: string, extraFiles: Record<string, string> = {}): void {
  const node = process.execPath;
  const put = (hostFile: string, at: string) => {
    const dest = join(root, at);
    mkdirSync(dirname(dest), { recursive: true });
    copyFileSync(hostFile, dest);
  };
  put(node, "usr/local/bin/node");
  chmodSync(join(root, "usr/local/bin/node"), 0o755);
  for (const lib of sharedLibraries(node)) put(lib, lib.slice(1));
  mkdirSync(join(root, "etc"), { recursive: true });
  writeFileSync(join(root, "etc/passwd"), `root:x:0:0:root:/root:/bin/sh\napp:x:${APP_UID}:${APP_GID}:app:/app:/bin/sh\n`);
  writeFileSync(join(root, "etc/group"), `root:x:0:\napp:x:${APP_GID}:\n`);
  for (const [path, text] of Object.entries({ ...FIXTURES, ...extraFiles })) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
}

/** GET http://ADDRESS/PATH on a fresh connection: the body of a 200, else a rejection with the status and body. */
export function httpGet(address: string, path = "/", timeoutMs = 30_000): Promise<string> {
  const [host, port] = address.split(":");
  return new Promise((resolve, reject) => {
    const r = request({ host, port: Number(port), path, agent: false, timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode}: ${body}`))));
    });
    r.on("timeout", () => r.destroy(new Error("timeout")));
    r.on("error", reject);
    r.end();
  });
}

/** The first 200 body from ADDRESS, asked every 100 ms, at most 150 times (an instance starting up). */
export async function untilServes(address: string): Promise<string> {
  let last: unknown;
  for (let i = 0; i < 150; i++) {
    try {
      return await httpGet(address);
    } catch (e) {
      last = e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`${address} never answered: ${String(last)}`);
}

// The local provider's sandbox holds (issue 12): inside a real instance, a static probe tries to
// make a user namespace (unshare -U, clone), mount, ptrace another process, and use the kernel
// keyring, bpf and io_uring; each must fail with EPERM while fork, threads and HTTP work. The probe
// (test/fixtures/sandbox/escape-probe.c) is compiled with gcc -static, so it needs nothing from
// the image, and runs as a child of the instance's app: the same namespaces, uid and filter.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, test } from "node:test";
import { LocalProvider } from "../../../src/providers/local/index.js";
import { APP_GID, APP_UID, buildTestRootfs, httpGet as get } from "../local-fixtures.js";

const requireAll = process.env.KILN_REQUIRE_ALL === "1";
const haveBwrap = spawnSync("bwrap", ["--version"]).status === 0;
const haveGcc = spawnSync("gcc", ["--version"]).status === 0;
const source = fileURLToPath(new URL("../../../../test/fixtures/sandbox/escape-probe.c", import.meta.url));

// Runs the probe and answers with its lines.
const APP = `
import http from "node:http";
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
http.createServer((req, res) => {
  if (req.url === "/shm") {
    // 2 MiB into a 1 MiB /dev/shm
    try { writeFileSync("/dev/shm/fill", Buffer.alloc(2 * 1024 * 1024)); return res.end("written"); } catch (e) { return res.end(e.code); }
  }
  if (req.url === "/spam") { for (let i = 0; i < 500; i++) process.stdout.write("x".repeat(99) + "\\n"); return res.end("spammed"); }
  try { res.end(execFileSync("/app/escape-probe", { encoding: "utf8", timeout: 10000 })); }
  catch (e) { res.statusCode = 500; res.end(String(e)); }
}).listen(Number(process.env.PORT), "127.0.0.1");
`;

let base = "";
let provider: LocalProvider | undefined;
const ids: string[] = [];
after(async () => {
  for (const id of ids) await provider?.terminate(id, { graceMs: 0 }).catch(() => undefined);
  if (base) rmSync(base, { recursive: true, force: true });
});


test("inside an instance: no user namespace, mount, ptrace, keyring, bpf or io_uring (EPERM); fork, threads and HTTP work", { timeout: 120_000 }, async (t) => {
  const missing = [...(haveBwrap ? [] : ["bubblewrap"]), ...(haveGcc ? [] : ["gcc with static glibc (apt-get install gcc libc6-dev)"])];
  if (missing.length) {
    if (requireAll) throw new Error(`KILN_REQUIRE_ALL=1 but ${missing.join(" and ")} missing`);
    return t.skip(`needs ${missing.join(" and ")}`);
  }
  if (process.arch !== "x64") return t.skip(`the seccomp filter covers x86_64 only (this is ${process.arch})`);
  base = mkdtempSync(join(tmpdir(), "kiln-sandbox-test-"));
  const rootfs = join(base, "rootfs");
  mkdirSync(rootfs, { mode: 0o700 });
  buildTestRootfs(rootfs, { "app/escape.mjs": APP });
  const built = spawnSync("gcc", ["-static", "-O1", "-pthread", "-o", join(base, "escape-probe"), source], { encoding: "utf8" });
  assert.equal(built.status, 0, `gcc: ${built.stderr}`);
  copyFileSync(join(base, "escape-probe"), join(rootfs, "app/escape-probe"));
  chmodSync(join(rootfs, "app/escape-probe"), 0o755);

  provider = new LocalProvider({
    home: join(base, "home"),
    sandbox: "bwrap",
    rootfs: async () => rootfs,
    imageConfig: async () => ({ env: ["PATH=/usr/local/bin:/usr/bin:/bin"], entrypoint: ["/usr/local/bin/node"], cmd: ["/app/escape.mjs"], user: `${APP_UID}:${APP_GID}`, workdir: "/app" }),
    log: () => undefined,
    shmSizeBytes: 1024 * 1024,
    logMaxBytes: 20_000,
  });
  const id = "sandbox-probe-1";
  ids.push(id);
  const inst = await provider.launch({ instanceId: id, service: "probe", release: "r1", digest: "sha256:" + "cd".repeat(32), env: {}, volumes: [] });
  let body = "";
  let lastError: unknown;
  for (let i = 0; i < 100 && !body; i++) {
    body = await get(inst.address).catch(async (e: unknown) => {
      lastError = e;
      await new Promise((r) => setTimeout(r, 100));
      return "";
    });
  }
  const logText = () => readFileSync(provider!.logPath(id)!, "utf8").slice(-2000);
  assert.ok(body, `the instance answered: ${String(lastError)}\n${logText()}`);
  const results = Object.fromEntries(body.trim().split("\n").map((l) => l.split(" ") as [string, string]));
  t.diagnostic(JSON.stringify(results));
  // the controls: the probe ran and works
  for (const k of ["getpid", "fork", "thread"]) assert.equal(results[k], "ok", `${k} must work inside the sandbox`);
  // what the sandbox must refuse, each with EPERM (1)
  for (const k of ["unshare-user", "clone-newuser", "unshare-mount", "unshare-net", "mount", "ptrace-attach", "keyctl", "add_key", "bpf", "io_uring_setup"])
    assert.equal(results[k], "errno=1", `${k} must fail with EPERM, got ${results[k]}`);

  // /dev/shm has a size: writing past it fails instead of eating the host's memory
  assert.equal(await get(inst.address, "/shm"), "ENOSPC");
  // the log is capped: 50 KB of output, then a listing rotates it to log.1 (a listing checks
  // an instance's log once a second at most: the first listing a second after the last check)
  assert.equal(await get(inst.address, "/spam"), "spammed");
  const log = provider.logPath(id)!;
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(statSync(log).size > 20_000, `the log grew past the cap first (${statSync(log).size})`);
  await new Promise((r) => setTimeout(r, 1000));
  await provider.list("probe");
  assert.ok(statSync(log).size <= 20_000, `the log is under the cap after a listing (${statSync(log).size})`);
  assert.ok(statSync(`${log}.1`).size > 20_000, "the rotated part is kept in log.1");
});

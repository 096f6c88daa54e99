// kiln.yaml `resources` on the local provider (issue 12), with real instances: a memory limit
// kills an instance that allocates past it (reported exited, the reason in its log), a pids limit
// stops a (bounded) fork bomb while the app keeps serving, the instance's processes are in its
// cgroups from the start, and the cgroups go when it ends — also when the controller that
// launched it crashed (a separate process that exits with the instance running).

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, test } from "node:test";
import { LocalProvider } from "../../../src/providers/local/index.js";
import { chooseEnforcement, cgroupPath, readCgroupHost } from "../../../src/providers/local/limits.js";
import { readBwrapStatus, readMeta } from "../../../src/providers/local/meta.js";
import { APP_GID, APP_UID, buildTestRootfs, httpGet as get, untilServes } from "../local-fixtures.js";

const requireAll = process.env.KILN_REQUIRE_ALL === "1";
const haveBwrap = spawnSync("bwrap", ["--version"]).status === 0;
const haveGcc = spawnSync("gcc", ["--version"]).status === 0;
const isRoot = process.geteuid?.() === 0;
const host = readCgroupHost();
const enforcement = chooseEnforcement(host, isRoot);
const cgroups = enforcement === "cgroup-v1" || enforcement === "cgroup-v2";
const forkBombSource = fileURLToPath(new URL("../../../../test/fixtures/limits/fork-bomb.c", import.meta.url));
const providerModule = fileURLToPath(new URL("../../../src/providers/local/index.js", import.meta.url));

const APP = `
import http from "node:http";
import { execFileSync } from "node:child_process";
const held = [];
http.createServer((req, res) => {
  if (req.url === "/alloc") {
    // 16 MiB at a time, every page written, up to 1 GiB: far past the limit, bounded without one
    for (let i = 0; i < 64; i++) held.push(Buffer.alloc(16 * 1024 * 1024, 1));
    return res.end("allocated " + held.length * 16 + " MiB");
  }
  if (req.url === "/fork-bomb") {
    try { return res.end(execFileSync("/app/fork-bomb", { encoding: "utf8", timeout: 20000 })); }
    catch (e) { res.statusCode = 500; return res.end(String(e)); }
  }
  res.end("ok " + process.pid);
}).listen(Number(process.env.PORT), "127.0.0.1");
`;

let base = "";
const providers: LocalProvider[] = [];
const launched: string[] = [];
after(async () => {
  for (const id of launched) for (const p of providers) await p.terminate(id, { graceMs: 0 }).catch(() => undefined);
  if (base) rmSync(base, { recursive: true, force: true });
});



function setup(): { rootfs: string; home: string } {
  if (!base) {
    base = mkdtempSync(join(tmpdir(), "kiln-limits-test-"));
    const rootfs = join(base, "rootfs");
    mkdirSync(rootfs, { mode: 0o700 });
    buildTestRootfs(rootfs, { "app/limits.mjs": APP });
    if (haveGcc) {
      const built = spawnSync("gcc", ["-static", "-O1", "-o", join(rootfs, "app/fork-bomb"), forkBombSource], { encoding: "utf8" });
      assert.equal(built.status, 0, `gcc: ${built.stderr}`);
      chmodSync(join(rootfs, "app/fork-bomb"), 0o755);
    }
  }
  return { rootfs: join(base, "rootfs"), home: join(base, "home") };
}

function newProvider(): LocalProvider {
  const { rootfs, home } = setup();
  const p = new LocalProvider({
    home,
    sandbox: "bwrap",
    rootfs: async () => rootfs,
    imageConfig: async () => ({ env: ["PATH=/usr/local/bin:/usr/bin:/bin"], entrypoint: ["/usr/local/bin/node"], cmd: ["/app/limits.mjs"], user: `${APP_UID}:${APP_GID}`, workdir: "/app" }),
    log: () => undefined,
  });
  providers.push(p);
  return p;
}

const digest = "sha256:" + "ef".repeat(32);

function skipUnlessReady(t: { skip: (m: string) => void }, needGcc = false): boolean {
  const missing = [...(haveBwrap ? [] : ["bubblewrap"]), ...(cgroups ? [] : [`cgroups (root with cgroup v1 or v2 controllers; here: ${enforcement})`]), ...(needGcc && !haveGcc ? ["gcc with static glibc"] : [])];
  if (missing.length === 0) return false;
  if (requireAll) throw new Error(`KILN_REQUIRE_ALL=1 but ${missing.join(" and ")} missing`);
  t.skip(`needs ${missing.join(" and ")}`);
  return true;
}

/** Lines of /proc/<pid>/cgroup, by controller. */
function cgroupsOf(pid: number): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of readFileSync(`/proc/${pid}/cgroup`, "utf8").split("\n")) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (m) for (const c of (m[1] || "unified").split(",")) out.set(c, m[2]!);
  }
  return out;
}

test("status: the provider says how limits are enforced on this host", () => {
  const p = newProvider();
  assert.equal(p.limitsEnforcement(), enforcement);
  assert.ok(["cgroup-v1", "cgroup-v2", "rlimit"].includes(p.limitsEnforcement()));
});

test("memory: an allocation past the limit kills the instance; it is reported exited and its log says why; the cgroups go", { timeout: 120_000 }, async (t) => {
  if (skipUnlessReady(t)) return;
  const p = newProvider();
  const id = "limits-mem-1";
  launched.push(id);
  const inst = await p.launch({ instanceId: id, service: "limits", release: "r1", digest, env: {}, volumes: [], resources: { memoryBytes: 96 * 1024 * 1024, pids: 64 } });
  const logText = () => readFileSync(p.logPath(id)!, "utf8");
  await untilServes(inst.address).catch((e: Error) => assert.fail(`${e.message}\n${logText()}`));

  // The app (bwrap's child, the namespace's init, and its descendants) is in the instance's cgroups.
  const meta = readMeta(join(base, "home", "instances", id))!;
  assert.equal(meta.limits?.enforcement, enforcement);
  const childPid = readBwrapStatus(join(base, "home", "instances", id)).childPid!;
  const inCgroups = cgroupsOf(childPid);
  if (enforcement === "cgroup-v1") {
    assert.equal(`/sys/fs/cgroup/memory${inCgroups.get("memory")}`, cgroupPath(host.v1.memory!.mount, host.v1.memory!.own, join(base, "home"), id));
    assert.ok(inCgroups.get("pids")!.endsWith(`/${id}`), `pids cgroup ${inCgroups.get("pids")}`);
    // the launcher itself (bwrap's monitor) too: nothing of the instance ran outside
    assert.ok(cgroupsOf(meta.pid).get("memory")!.endsWith(`/${id}`));
  }
  for (const dir of meta.limits!.cgroups) assert.ok(existsSync(dir), `${dir} exists while the instance runs`);

  const answer = await get(inst.address, "/alloc").then((b) => `answered: ${b}`, (e: Error) => `failed: ${e.message}`);
  t.diagnostic(`GET /alloc → ${answer}`);
  assert.match(answer, /^failed/, "the allocation must not succeed");

  let seen;
  for (let i = 0; i < 150; i++) {
    seen = (await p.list("limits")).find((x) => x.id === id);
    if (seen?.state === "exited") break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(seen?.state, "exited", "the instance is reported exited");
  assert.notEqual(seen?.exitCode, 0, `exit code ${seen?.exitCode}`);
  const tail = logText().trim().split("\n").slice(-3).join("\n");
  t.diagnostic(`log ends: ${tail}`);
  assert.match(tail, /resources: the kernel killed \d+ process(es)? at the memory limit \(96Mi\)/);
  const after = readMeta(join(base, "home", "instances", id))!;
  assert.equal(after.limits?.released, true);
  for (const dir of meta.limits!.cgroups) assert.ok(!existsSync(dir), `${dir} is removed`);
});

test("pids: a fork bomb stops at the limit, the app keeps serving, the log counts the refusals", { timeout: 120_000 }, async (t) => {
  if (skipUnlessReady(t, true)) return;
  const p = newProvider();
  const id = "limits-pids-1";
  launched.push(id);
  const pids = 48;
  const inst = await p.launch({ instanceId: id, service: "limits", release: "r1", digest, env: {}, volumes: [], resources: { pids, memoryBytes: 256 * 1024 * 1024 } });
  await untilServes(inst.address);
  const out = await get(inst.address, "/fork-bomb");
  t.diagnostic(out.trim());
  const m = /forked (\d+) refused (\d+)/.exec(out);
  assert.ok(m, out);
  assert.ok(Number(m[1]) < pids, `forked ${m[1]}: fewer than the limit`);
  assert.ok(Number(m[2]) > 0, "forks were refused");
  assert.match(await get(inst.address), /^ok /, "the app still serves");
  await p.terminate(id, { graceMs: 2000 });
  assert.match(readFileSync(p.logPath(id)!, "utf8"), /resources: \d+ forks were refused at the pids limit \(48\)/);
  const meta = readMeta(join(base, "home", "instances", id))!;
  for (const dir of meta.limits!.cgroups) assert.ok(!existsSync(dir), `${dir} is removed after terminate`);
});

test("cpu: the quota is set on the instance's cgroup", { timeout: 60_000 }, async (t) => {
  if (skipUnlessReady(t)) return;
  if (enforcement !== "cgroup-v1") return t.skip(`checks the v1 files (here: ${enforcement})`);
  const p = newProvider();
  const id = "limits-cpu-1";
  launched.push(id);
  const inst = await p.launch({ instanceId: id, service: "limits", release: "r1", digest, env: {}, volumes: [], resources: { cpu: 0.25 } });
  await untilServes(inst.address);
  const dir = cgroupPath(host.v1.cpu!.mount, host.v1.cpu!.own, join(base, "home"), id);
  assert.equal(readFileSync(join(dir, "cpu.cfs_quota_us"), "utf8").trim(), "25000");
  assert.ok(cgroupsOf(readBwrapStatus(join(base, "home", "instances", id)).childPid!).get("cpu")!.endsWith(`/${id}`));
  await p.terminate(id, { graceMs: 2000 });
  assert.ok(!existsSync(dir));
});

test("after a controller crash: the next provider removes the cgroups of an instance that died meanwhile, and orphans no meta accounts for", { timeout: 120_000 }, async (t) => {
  if (skipUnlessReady(t)) return;
  const { rootfs, home } = setup();
  const id = "limits-crash-1";
  launched.push(id);
  // The first controller: another process that launches and exits at once (no terminate).
  const script = join(base, "crashing-controller.mjs");
  writeFileSync(
    script,
    `import { LocalProvider } from ${JSON.stringify(providerModule)};
const p = new LocalProvider({ home: ${JSON.stringify(home)}, sandbox: "bwrap", rootfs: async () => ${JSON.stringify(rootfs)},
  imageConfig: async () => ({ env: [], entrypoint: ["/usr/local/bin/node"], cmd: ["/app/limits.mjs"], user: "${APP_UID}:${APP_GID}", workdir: "/app" }), log: () => undefined });
const i = await p.launch({ instanceId: ${JSON.stringify(id)}, service: "crash", release: "r1", digest: ${JSON.stringify(digest)}, env: {}, volumes: [], resources: { memoryBytes: 128 * 1024 * 1024, pids: 64 } });
console.log(i.address);
process.exit(0);
`,
  );
  const r = spawnSync(process.execPath, [script], { encoding: "utf8", timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  const address = r.stdout.trim();
  await untilServes(address);
  const meta = readMeta(join(home, "instances", id))!;
  assert.ok(meta.limits!.cgroups.length > 0);

  // An orphan: a cgroup of this home that no instance directory accounts for.
  const orphan = cgroupPath(host.v1.pids?.mount ?? host.v2!.mount, host.v1.pids?.own ?? host.v2!.own, home, "never-recorded");
  mkdirSync(orphan, { recursive: true });

  // The instance dies while no controller runs: its namespace's init is killed, which takes
  // the app with it; bwrap's monitor then exits too.
  process.kill(readBwrapStatus(join(home, "instances", id)).childPid!, "SIGKILL");
  for (let i = 0; i < 100 && existsSync(`/proc/${meta.pid}`); i++) await new Promise((res) => setTimeout(res, 50));

  const next = newProvider();
  let seen;
  for (let i = 0; i < 100; i++) {
    seen = (await next.list("crash")).find((x) => x.id === id);
    if (seen?.state === "exited" && readMeta(join(home, "instances", id))?.limits?.released) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  assert.equal(seen?.state, "exited");
  for (const dir of meta.limits!.cgroups) assert.ok(!existsSync(dir), `${dir} is removed by the next controller`);
  assert.ok(!existsSync(orphan), "the orphan cgroup is swept");
});

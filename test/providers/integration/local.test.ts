// The local provider against real processes and a real bubblewrap sandbox:
// launch, isolation, volumes, adoption by a new controller, crash detection,
// termination without strays, and the unisolated fallback.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isKilnError } from "../../../src/errors.js";
import { LocalProvider, type ImageRunConfig } from "../../../src/providers/local/index.js";
import { readCmdline, readStat } from "../../../src/providers/local/procfs.js";
import type { LaunchRequest, ObservedInstance } from "../../../src/providers/provider.js";
import { APP_GID, APP_UID, buildTestRootfs } from "../local-fixtures.js";


const requireAll = process.env.KILN_REQUIRE_ALL === "1";
const isRoot = process.geteuid?.() === 0;
const haveBwrap = spawnSync("bwrap", ["--version"]).status === 0;
const haveUnshare = spawnSync("unshare", ["--version"]).status === 0;

function skipReason(needs: Array<[boolean, string]>): string | undefined {
  const missing = needs.filter(([ok]) => !ok).map(([, what]) => what);
  if (missing.length === 0) return undefined;
  const reason = `needs ${missing.join(" and ")}`;
  if (requireAll) throw new Error(`KILN_REQUIRE_ALL=1 but this test ${reason}`);
  return reason;
}
const bwrapSkip = skipReason([[haveBwrap, "bubblewrap (apt-get install bubblewrap)"]]);
const fallbackSkip = skipReason([
  [isRoot, "root (the unisolated fallback chroots)"],
  [haveUnshare, "util-linux unshare"],
]);
if (bwrapSkip) console.log(`# skipping bubblewrap tests: ${bwrapSkip}`);
if (fallbackSkip) console.log(`# skipping fallback tests: ${fallbackSkip}`);

let base = "";
let rootfs = "";
const toStop: Array<{ p: LocalProvider; id: string }> = [];

before(() => {
  if (bwrapSkip && fallbackSkip) return;
  base = mkdtempSync(join(tmpdir(), "kiln-local-test-")); // 0700, like a real $KILN_HOME under /root
  rootfs = join(base, "rootfs");
  mkdirSync(rootfs, { mode: 0o700 });
  buildTestRootfs(rootfs);
});

after(async () => {
  for (const { p, id } of toStop) await p.terminate(id, { graceMs: 0 }).catch(() => undefined);
  if (base) rmSync(base, { recursive: true, force: true });
});

function config(program: string): ImageRunConfig {
  return {
    env: ["PATH=/usr/local/bin:/usr/bin:/bin", "NODE_ENV=production"],
    entrypoint: ["/usr/local/bin/node"],
    cmd: [`/app/${program}`],
    user: `${APP_UID}:${APP_GID}`,
    workdir: "/app",
  };
}

let homeCount = 0;
function world(program = "probe.mjs", sandbox: "bwrap" | "none" = "bwrap") {
  const home = join(base, `home-${++homeCount}`);
  const logs: string[] = [];
  const make = () =>
    new LocalProvider({
      home,
      sandbox,
      rootfs: async () => rootfs,
      imageConfig: async () => config(program),
      log: (l) => logs.push(l),
    });
  const provider = make();
  let n = 0;
  const req = (over: Partial<LaunchRequest> = {}): LaunchRequest => ({
    instanceId: `inst-${homeCount}-${++n}`,
    service: "hello",
    release: "r1",
    digest: "sha256:" + "ab".repeat(32),
    env: { DATA_DIR: "/data", HOST_PROBE: base, SECRET_TOKEN: "s3cr3t-value" },
    volumes: [{ name: "data", path: "/data" }],
    ...over,
  });
  const launch = async (p: LocalProvider, r: LaunchRequest) => {
    toStop.push({ p, id: r.instanceId });
    return p.launch(r);
  };
  return { home, logs, provider, make, req, launch };
}

function get(address: string, path = "/"): Promise<{ status: number; body: string }> {
  const [host, port] = address.split(":");
  return new Promise((resolve, reject) => {
    const r = request({ host, port: Number(port), path, agent: false, timeout: 2000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    r.on("timeout", () => r.destroy(new Error("timeout")));
    r.on("error", reject);
    r.end();
  });
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Probe {
  uid: number;
  gid: number;
  groups: number[];
  pid: number;
  hostname: string;
  cwd: string;
  instance: string;
  env: Record<string, string>;
  writeRoot: string;
  writeApp: string;
  writeTmp: string;
  writeData: string;
  rootEntries: string[];
  seesRoot: boolean;
  seesWork: boolean;
  seesHostHome: boolean;
}
const probe = async (inst: ObservedInstance): Promise<Probe> =>
  waitFor("the instance to serve HTTP", async () => JSON.parse((await get(inst.address)).body) as Probe);

/** Every live process that still mentions the instance (or the test's paths) on its command line. */
function strays(needles: string[]): string[] {
  const out: string[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    const s = readStat(Number(name));
    if (!s || s.state === "Z") continue;
    const cmd = readCmdline(Number(name));
    if (needles.some((n) => cmd.includes(n))) out.push(`${name}: ${cmd}`);
  }
  return out;
}

function hostUids(pid: number): number[] {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("Uid:")) ?? "";
  return line.split(/\s+/).slice(1).filter(Boolean).map(Number);
}

describe("LocalProvider with bubblewrap", { skip: bwrapSkip }, () => {
  test("serves HTTP on its port from inside the sandbox, as the image's non-root user", async () => {
    const w = world();
    const inst = await w.launch(w.provider, w.req());
    assert.equal(inst.state, "running");
    assert.match(inst.address, /^127\.0\.0\.1:\d+$/);
    const p = await probe(inst);
    assert.equal(p.uid, APP_UID);
    assert.equal(p.gid, APP_GID);
    assert.deepEqual(p.groups, [APP_GID]);
    assert.equal(p.pid, 2, "own PID namespace (bwrap's init is 1)");
    assert.equal(p.hostname, inst.id, "own UTS namespace named after the instance");
    assert.equal(p.cwd, "/app");
    assert.equal(p.instance, inst.id);
    assert.equal(p.env.PORT, inst.address.split(":")[1]);
    assert.equal(p.env.NODE_ENV, "production", "image env");
    assert.equal(p.env.DATA_DIR, "/data", "declared env");
    assert.equal(p.env.HOME, undefined, "nothing of the host environment leaks in");
    assert.equal(p.env.HOST, "127.0.0.1", "told to bind the loopback (the scaffolded server reads HOST)");
    assert.equal(p.env.SECRET_TOKEN, "s3cr3t-value");
    assert.deepEqual(strays(["s3cr3t-value"]), [], "environment values are not on any command line");
    // Non-root on the host too, not only inside a user namespace: every process of the instance.
    const meta = JSON.parse(readFileSync(join(w.home, "instances", inst.id, "meta.json"), "utf8")) as { pid: number; startTime: number };
    assert.equal(meta.pid, inst.pid);
    assert.ok(meta.startTime > 0);
    for (const name of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
      if (readStat(Number(name))?.pgrp === inst.pid) assert.deepEqual(hostUids(Number(name)), [APP_UID, APP_UID, APP_UID, APP_UID], `pid ${name}`);
    }
  });

  test("the root filesystem is read-only, /tmp and the volume are writable, host paths are invisible", async () => {
    const w = world();
    const inst = await w.launch(w.provider, w.req({ volumes: [{ name: "data", path: "/data" }, { name: "cache", path: "/var/cache/app" }] }));
    const p = await probe(inst);
    assert.equal(p.writeRoot, "EROFS");
    assert.equal(p.writeApp, "EROFS");
    assert.equal(p.writeTmp, "ok");
    assert.equal(p.writeData, "ok");
    const expected = new Set([...readdirSync(rootfs), "proc", "dev", "tmp", "data", "var"]);
    assert.deepEqual(p.rootEntries, [...expected].sort(), "only the image, the sandbox's mounts and the volumes");
    assert.equal(p.seesRoot, false, "/root");
    assert.equal(p.seesWork, false, "/work");
    assert.equal(p.seesHostHome, false, "the test's own directory");
    const vol = join(w.home, "volumes", "hello", "data");
    assert.equal(statSync(vol).uid, APP_UID, "the volume belongs to the image user");
    assert.ok(existsSync(join(w.home, "volumes", "hello", "cache")));
    assert.ok(!existsSync(join(rootfs, "kiln-probe")) && !existsSync(join(rootfs, "data")), "the image directory is never written");
  });

  test("volume data persists across instances", async () => {
    const w = world();
    const a = await w.launch(w.provider, w.req());
    await probe(a);
    assert.deepEqual(JSON.parse((await get(a.address, "/incr")).body), { n: 1 });
    assert.deepEqual(JSON.parse((await get(a.address, "/incr")).body), { n: 2 });
    await w.provider.terminate(a.id, { graceMs: 2000 });
    const b = await w.launch(w.provider, w.req());
    await probe(b);
    assert.deepEqual(JSON.parse((await get(b.address, "/incr")).body), { n: 3 });
    assert.equal(statSync(join(w.home, "volumes", "hello", "data", "n")).uid, APP_UID);
  });

  test("graceful terminate: the app gets SIGTERM, exits 0, and the record stays for `kiln logs`", async () => {
    const w = world();
    const inst = await w.launch(w.provider, w.req());
    await probe(inst);
    await w.provider.terminate(inst.id, { graceMs: 5000 });
    const [seen] = await w.provider.list("hello");
    assert.equal(seen?.state, "exited");
    assert.equal(seen?.exitCode, 0);
    assert.ok(existsSync(w.provider.logPath(inst.id) ?? ""));
    await assert.rejects(get(inst.address));
  });

  test("terminate leaves no stray process, even one that ignores SIGTERM and left the process group", async () => {
    const w = world("stubborn.mjs");
    const inst = await w.launch(w.provider, w.req());
    const grandchild = await waitFor("the stubborn app", async () => (await get(inst.address)).body);
    assert.match(grandchild, /^\d+$/);
    assert.ok(strays([inst.id]).length >= 2, "bwrap's command line names the instance");
    const t0 = Date.now();
    await w.provider.terminate(inst.id, { graceMs: 300 });
    assert.ok(Date.now() - t0 >= 250, "waited for the grace period first");
    assert.deepEqual(strays([inst.id, rootfs, join(w.home, "volumes")]), []);
    const ps = spawnSync("ps", ["-eo", "pid,pgid,uid,args"], { encoding: "utf8" }).stdout;
    assert.ok(!ps.includes(inst.id), ps);
    assert.ok(!ps.split("\n").some((l) => l.includes("setInterval")), "the grandchild is gone\n" + ps);
    const [seen] = await w.provider.list("hello");
    assert.equal(seen?.state, "exited");
    assert.equal(seen?.exitCode, 128 + 9, "killed");
  });

  test("a fresh provider adopts an instance launched by a controller process that has exited", async () => {
    const w = world();
    const req = w.req();
    const moduleUrl = new URL("../../../src/providers/local/index.js", import.meta.url).href;
    const script = `
      const { LocalProvider } = await import(${JSON.stringify(moduleUrl)});
      const cfg = ${JSON.stringify(config("probe.mjs"))};
      const p = new LocalProvider({ home: ${JSON.stringify(w.home)}, sandbox: "bwrap", rootfs: async () => ${JSON.stringify(rootfs)}, imageConfig: async () => cfg });
      const inst = await p.launch(${JSON.stringify(req)});
      process.stdout.write(JSON.stringify(inst));
    `;
    const controller = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    controller.stdout.on("data", (d: Buffer) => (out += d));
    const code = await new Promise((r) => controller.on("exit", r));
    assert.equal(code, 0, "the first controller exits");
    toStop.push({ p: w.provider, id: req.instanceId });
    const launched = JSON.parse(out) as ObservedInstance;
    await probe(launched); // still serving with its controller gone

    const restarted = w.make(); // a new controller
    const [adopted] = await restarted.list("hello");
    assert.deepEqual({ ...adopted }, { ...launched, state: "running" });
    assert.equal((await restarted.launch(req)).pid, launched.pid, "launching the same id again adopts it");
    await restarted.terminate(req.instanceId, { graceMs: 3000 });
    const [after] = await restarted.list("hello");
    assert.equal(after?.state, "exited");
    assert.equal(after?.exitCode, 0, "read from bwrap's status line: the terminating controller is not the parent");
    assert.deepEqual(strays([req.instanceId]), []);
  });

  test("a crashing app is observed as exited with its exit code, by its launcher and by a later controller", async () => {
    const w = world("crash.mjs");
    const inst = await w.launch(w.provider, w.req());
    const seen = await waitFor("the crash", async () => {
      const [i] = await w.provider.list("hello");
      return i?.state === "exited" ? i : undefined;
    });
    assert.equal(seen.exitCode, 3);
    const [later] = await w.make().list("hello");
    assert.equal(later?.state, "exited");
    assert.equal(later?.exitCode, 3);
    await w.provider.terminate(inst.id, { graceMs: 100 }); // stopping a dead instance is fine
  });

  test("stopping a dead instance never touches a live one that got its PID namespace's number", async () => {
    // The kernel hands a freed namespace number to the next namespace created on the host, so a
    // crashed instance's recorded "pid-namespace" soon names another instance's (CI saw healthy
    // instances die when a dead one was stopped). Made certain here: X's record is given Y's number.
    const w = world();
    const x = await w.launch(w.provider, w.req());
    await probe(x);
    const statusFile = join(w.home, "instances", x.id, "bwrap-status.jsonl");
    const xNs = /"pid-namespace": (\d+)/.exec(readFileSync(statusFile, "utf8"))?.[1];
    process.kill(-x.pid!, "SIGKILL");
    await waitFor("X to be seen dead", async () => ((await w.provider.list("hello")).find((i) => i.id === x.id)?.state === "exited" ? true : undefined));
    const y = await w.launch(w.provider, w.req());
    await probe(y);
    const yChild = /"child-pid": (\d+)/.exec(readFileSync(join(w.home, "instances", y.id, "bwrap-status.jsonl"), "utf8"))?.[1];
    const yPidNs = /\[(\d+)\]/.exec(readlinkSync(`/proc/${yChild}/ns/pid`))?.[1];
    assert.ok(yPidNs, "Y has a PID namespace");
    const yStart = readStat(Number(yChild))?.startTime;
    console.log(`# X's namespace ${xNs}, Y's ${yPidNs}${xNs === yPidNs ? " (the kernel reused the number)" : ""}`);
    writeFileSync(statusFile, readFileSync(statusFile, "utf8").replace(/"pid-namespace": \d+/, `"pid-namespace": ${yPidNs}`));
    await w.provider.terminate(x.id, { graceMs: 500 });
    assert.equal(readStat(Number(yChild))?.startTime, yStart, "Y's init is the same live process");
    assert.equal((await get(y.address)).status, 200, "Y still serves");
    assert.equal((await w.provider.list("hello")).find((i) => i.id === y.id)?.state, "running");
  });

  test("launch and terminate are idempotent", async () => {
    const w = world();
    const req = w.req();
    const [a, b] = await Promise.all([w.launch(w.provider, req), w.provider.launch(req)]);
    assert.equal(a.pid, b.pid);
    const c = await w.provider.launch(req);
    assert.deepEqual(c, a);
    assert.equal((await w.provider.list("hello")).length, 1);
    await w.provider.terminate(req.instanceId, { graceMs: 2000 });
    await w.provider.terminate(req.instanceId, { graceMs: 2000 });
    await w.provider.terminate("never-launched", { graceMs: 10 });
    await w.provider.terminate("../../etc", { graceMs: 10 });
    assert.equal((await w.provider.list("hello"))[0]?.state, "exited");
    assert.deepEqual(await w.provider.list("another-service"), []);
  });

  test("removeRecord deletes an exited instance and refuses a running one", async () => {
    const w = world();
    const inst = await w.launch(w.provider, w.req());
    await assert.rejects(w.provider.removeRecord(inst.id), (e) => isKilnError(e) && e.code === "KILN_E_PROVIDER");
    await w.provider.terminate(inst.id, { graceMs: 2000 });
    await w.provider.removeRecord(inst.id);
    assert.deepEqual(await w.provider.list("hello"), []);
  });

  test("refusals are KILN_E_PROVIDER errors with a hint", async () => {
    const w = world();
    const isProviderError = (re: RegExp) => (e: unknown) => isKilnError(e) && e.code === "KILN_E_PROVIDER" && re.test(e.message) && !!e.hint;
    await assert.rejects(w.provider.launch(w.req({ volumes: [{ name: "x", path: "/proc/x" }] })), isProviderError(/inside \/proc/));
    await assert.rejects(w.provider.launch(w.req({ instanceId: "../escape" })), isProviderError(/not a safe name/));
    const asRoot = new LocalProvider({
      home: w.home,
      sandbox: "bwrap",
      rootfs: async () => rootfs,
      imageConfig: async () => ({ ...config("probe.mjs"), user: "root" }),
    });
    await assert.rejects(asRoot.launch(w.req()), isProviderError(/root/));
    const broken = new LocalProvider({
      home: w.home,
      sandbox: "bwrap",
      rootfs: async () => rootfs,
      imageConfig: async () => ({ ...config("probe.mjs"), workdir: "/does-not-exist" }),
    });
    const r = w.req();
    toStop.push({ p: broken, id: r.instanceId });
    // bwrap fails to chdir after the namespaces exist: the launch succeeds, the instance is seen exiting
    await broken.launch(r).catch(() => undefined);
    const dead = await waitFor("the broken instance to exit", async () => {
      const i = (await broken.list("hello")).find((x) => x.id === r.instanceId);
      return i?.state === "exited" ? i : undefined;
    });
    assert.equal(dead.exitCode, 1);
    assert.match(readFileSync(broken.logPath(r.instanceId) ?? "", "utf8"), /chdir/);
  });
});

describe("LocalProvider fallback without bubblewrap (sandbox: none)", { skip: fallbackSkip }, () => {
  test("runs chrooted as the image user with a read-only root and a writable volume, warning loudly once", async () => {
    const w = world("probe.mjs", "none");
    const a = await w.launch(w.provider, w.req());
    const p = await probe(a);
    assert.equal(p.uid, APP_UID);
    assert.deepEqual(p.groups, [APP_GID]);
    assert.equal(p.cwd, "/app");
    const { PORT, ...env } = p.env;
    assert.equal(PORT, a.address.split(":")[1]);
    assert.deepEqual(env, { PATH: "/usr/local/bin:/usr/bin:/bin", NODE_ENV: "production", DATA_DIR: "/data", HOST_PROBE: base, SECRET_TOKEN: "s3cr3t-value", HOST: "127.0.0.1", KILN_INSTANCE_ID: a.id }, "exactly the app's environment");
    assert.deepEqual(strays(["s3cr3t-value"]), []);
    assert.equal(p.writeRoot, "EROFS");
    assert.equal(p.writeApp, "EROFS");
    assert.equal(p.writeTmp, "ok");
    assert.equal(p.writeData, "ok");
    assert.equal(p.seesRoot, false);
    assert.equal(p.seesWork, false);
    assert.ok(!p.rootEntries.includes("proc"));
    const b = await w.launch(w.provider, w.req());
    await probe(b);
    assert.equal(w.logs.filter((l) => /NOT isolated \(--unsafe-no-sandbox\)/.test(l)).length, 1);
    for (const inst of [a, b]) await w.provider.terminate(inst.id, { graceMs: 2000 });
    assert.deepEqual((await w.provider.list("hello")).map((i) => [i.state, i.exitCode]), [["exited", 0], ["exited", 0]]);
  });

  test("a stubborn app is killed, with a child that left its process group", async () => {
    const w = world("stubborn.mjs", "none");
    const inst = await w.launch(w.provider, w.req());
    await waitFor("the stubborn app", async () => (await get(inst.address)).body);
    await w.provider.terminate(inst.id, { graceMs: 200 });
    const ps = spawnSync("ps", ["-eo", "pid,pgid,uid,args"], { encoding: "utf8" }).stdout;
    assert.ok(!ps.split("\n").some((l) => l.includes("stubborn.mjs") || l.includes("setInterval")), ps);
  });
});

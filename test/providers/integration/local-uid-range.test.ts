// kiln's own uid range on the local provider (issue 12), with real instances: the app still sees
// the image's user inside, but on the host every process of an instance is a uid from kiln's
// range (one per service), its volume is owned by that uid and writable, and neither another
// service's uid nor the host's uid 1000 can read its /proc/<pid>/environ.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { LocalProvider } from "../../../src/providers/local/index.js";
import { readMeta } from "../../../src/providers/local/meta.js";
import { readStat } from "../../../src/providers/local/procfs.js";
import { APP_GID, APP_UID, buildTestRootfs, httpGet as get } from "../local-fixtures.js";

const requireAll = process.env.KILN_REQUIRE_ALL === "1";
const haveBwrap = spawnSync("bwrap", ["--version"]).status === 0;
const isRoot = process.geteuid?.() === 0;
// A slice of the default range's neighbourhood no test elsewhere uses.
const RANGE = { start: 880_300_000, count: 8 };

let base = "";
let provider: LocalProvider | undefined;
const ids: string[] = [];
after(async () => {
  for (const id of ids) await provider?.terminate(id, { graceMs: 0 }).catch(() => undefined);
  if (base) rmSync(base, { recursive: true, force: true });
});


async function probe(address: string, path = "/"): Promise<Record<string, unknown>> {
  let lastError: unknown;
  for (let i = 0; i < 150; i++) {
    try {
      return JSON.parse(await get(address, path)) as Record<string, unknown>;
    } catch (e) {
      lastError = e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`no answer: ${String(lastError)}`);
}

function hostUids(pid: number): number[] {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("Uid:")) ?? "";
  return line.split(/\s+/).slice(1).filter(Boolean).map(Number);
}

/** Host pids of the instance's processes (its process group: bwrap's monitor, init and the app). */
function processesOf(leader: number): number[] {
  return readdirSync("/proc").filter((n) => /^\d+$/.test(n)).map(Number).filter((p) => readStat(p)?.pgrp === leader && readStat(p)?.state !== "Z");
}

/** The app: the group's process that is node running probe.mjs (bwrap's own command lines name it too). */
function appPid(leader: number): number {
  const p = processesOf(leader).find((pid) => readFileSync(`/proc/${pid}/cmdline`, "utf8").startsWith("/usr/local/bin/node\0/app/probe.mjs"));
  assert.ok(p, "the app's host pid");
  return p;
}

/** `cat /proc/<pid>/environ` as uid:gid, via setpriv (util-linux); the exit status and stderr. */
function readEnvironAs(uid: number, pid: number): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync("setpriv", ["--reuid", String(uid), "--regid", String(uid), "--clear-groups", "--", "cat", `/proc/${pid}/environ`], { encoding: "utf8", timeout: 10_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("instances run as a uid of kiln's range on the host (one per service), own their volume, and their environ is closed to other uids", { timeout: 180_000 }, async (t) => {
  const missing = [...(haveBwrap ? [] : ["bubblewrap"]), ...(isRoot ? [] : ["root (kiln switches to the range's uids only as root)"])];
  if (missing.length) {
    if (requireAll) throw new Error(`KILN_REQUIRE_ALL=1 but ${missing.join(" and ")} missing`);
    return t.skip(`needs ${missing.join(" and ")}`);
  }
  base = mkdtempSync(join(tmpdir(), "kiln-uid-range-test-"));
  const rootfs = join(base, "rootfs");
  mkdirSync(rootfs, { mode: 0o700 });
  buildTestRootfs(rootfs);
  const home = join(base, "home");
  provider = new LocalProvider({
    home,
    sandbox: "bwrap",
    rootfs: async () => rootfs,
    imageConfig: async () => ({ env: ["PATH=/usr/local/bin:/usr/bin:/bin"], entrypoint: ["/usr/local/bin/node"], cmd: ["/app/probe.mjs"], user: `${APP_UID}:${APP_GID}`, workdir: "/app" }),
    log: () => undefined,
    uidRange: { range: RANGE, claimsDir: join(base, "uid-claims") },
  });
  const digest = "sha256:" + "ab".repeat(32);
  const launch = (instanceId: string, service: string) => {
    ids.push(instanceId);
    return provider!.launch({ instanceId, service, release: "r1", digest, env: { SECRET_TOKEN: `token-of-${instanceId}` }, volumes: [{ name: "data", path: "/data" }] });
  };
  const a1 = await launch("alpha-1", "alpha");
  const a2 = await launch("alpha-2", "alpha");
  const b1 = await launch("beta-1", "beta");

  // Inside: still the image's user.
  const p = await probe(a1.address);
  assert.equal(p.uid, APP_UID);
  assert.equal(p.gid, APP_GID);
  await probe(a2.address);
  await probe(b1.address);

  // On the host: every process of each instance is its service's uid from the range.
  const uidOf = (inst: typeof a1) => {
    const meta = readMeta(join(home, "instances", inst.id))!;
    assert.ok(meta.hostUid !== undefined, "meta.json records the host uid");
    for (const pid of processesOf(inst.pid!)) assert.deepEqual(hostUids(pid), [meta.hostUid, meta.hostUid, meta.hostUid, meta.hostUid], `pid ${pid} of ${inst.id}`);
    return meta.hostUid!;
  };
  const ua1 = uidOf(a1);
  const ua2 = uidOf(a2);
  const ub1 = uidOf(b1);
  t.diagnostic(`alpha ${ua1}, beta ${ub1}`);
  for (const u of [ua1, ub1]) assert.ok(u >= RANGE.start && u < RANGE.start + RANGE.count, `${u} is in the range`);
  assert.equal(ua1, ua2, "one uid per service");
  assert.notEqual(ua1, ub1, "another service, another uid");

  // The volume belongs to the service's uid and is writable from inside.
  const vol = join(home, "volumes", "alpha", "data");
  assert.equal(statSync(vol).uid, ua1);
  assert.deepEqual(JSON.parse(await get(a1.address, "/incr")), { n: 1 });
  assert.deepEqual(JSON.parse(await get(a2.address, "/incr")), { n: 2 }, "the other instance of the service writes the same volume");
  assert.equal(statSync(join(vol, "n")).uid, ua1);

  // environ: root can read it (the control: right pid, real secret), beta's uid and uid 1000 cannot.
  const pid = appPid(a1.pid!);
  assert.match(readFileSync(`/proc/${pid}/environ`, "utf8"), /SECRET_TOKEN=token-of-alpha-1/);
  for (const other of [ub1, 1000]) {
    const r = readEnvironAs(other, pid);
    assert.notEqual(r.status, 0, `uid ${other} read alpha-1's environ: ${r.stdout.slice(0, 80)}`);
    assert.ok(!r.stdout.includes("token-of-alpha-1"));
    assert.match(r.stderr, /Permission denied/);
  }
});

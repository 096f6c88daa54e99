// A starting local instance runs at a raised CPU priority (startup-boost.ts): its sandbox's
// session and its forwarder's, on real bubblewrap + pasta, until the controller says it answered
// (Provider.started); and an instance an earlier provider object left boosted (a controller
// killed mid-start) is brought back to normal by the next one's first listing.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { LocalProvider } from "../../../src/providers/local/index.js";
import { findPasta, readNetRecord } from "../../../src/providers/local/netns.js";
import { parseAutogroupNice } from "../../../src/providers/local/startup-boost.js";
import { APP_GID, APP_UID, buildTestRootfs, untilServes } from "../local-fixtures.js";

const requireAll = process.env.KILN_REQUIRE_ALL === "1";
const haveBwrap = spawnSync("bwrap", ["--version"]).status === 0;
const pasta = findPasta();
const autogroups = existsSync("/proc/self/autogroup") && readFileSync("/proc/sys/kernel/sched_autogroup_enabled", "utf8").trim() === "1";
const isRoot = process.geteuid?.() === 0;

const APP = `import http from "node:http";
http.createServer((req, res) => res.end("up")).listen(Number(process.env.PORT), "127.0.0.1");
`;

let base = "";
const providers: LocalProvider[] = [];
after(async () => {
  for (const p of providers) for (const id of ["boost-a", "boost-b"]) await p.terminate(id, { graceMs: 0 }).catch(() => undefined);
  if (base) rmSync(base, { recursive: true, force: true });
});

const niceOf = (pid: number) => parseAutogroupNice(readFileSync(`/proc/${pid}/autogroup`, "utf8"));

test("a starting instance's sandbox and forwarder run at the raised priority until it answers", { timeout: 120_000 }, async (t) => {
  const missing = [...(haveBwrap ? [] : ["bubblewrap"]), ...(pasta ? [] : ["pasta"]), ...(autogroups ? [] : ["kernel autogroups"]), ...(isRoot ? [] : ["root"])];
  if (missing.length) {
    if (requireAll && (!haveBwrap || !pasta)) throw new Error(`KILN_REQUIRE_ALL=1 but ${missing.join(" and ")} missing`);
    return t.skip(`needs ${missing.join(", ")}`);
  }
  base = mkdtempSync(join(tmpdir(), "kiln-boost-test-"));
  const rootfs = join(base, "rootfs");
  mkdirSync(rootfs, { mode: 0o700 });
  buildTestRootfs(rootfs, { "app/up.mjs": APP });
  const make = () => {
    const p = new LocalProvider({
      home: join(base, "home"),
      sandbox: "bwrap",
      startupBoost: -7,
      rootfs: async () => rootfs,
      imageConfig: async () => ({ env: [], entrypoint: ["/usr/local/bin/node"], cmd: ["/app/up.mjs"], user: `${APP_UID}:${APP_GID}`, workdir: "/app" }),
      log: (l) => t.diagnostic(l),
    });
    providers.push(p);
    return p;
  };
  const digest = "sha256:" + "cd".repeat(32);
  const req = (instanceId: string) => ({ instanceId, service: "boost", release: "r1", digest, env: {}, volumes: [] });
  const first = make();
  const a = await first.launch(req("boost-a"));
  const forwarder = () => readNetRecord(join(base, "home", "instances", "boost-a"))!.pid!;
  assert.equal(niceOf(a.pid!), -7, "the sandbox's session");
  assert.equal(niceOf(forwarder()), -7, "the forwarder's session");
  assert.equal(await untilServes(a.address), "up");
  first.started("boost-a");
  assert.equal(niceOf(a.pid!), 0, "back to normal once it answered");
  assert.equal(niceOf(forwarder()), 0);

  // Launched, and its provider object gone before the start ended: the next one's listing undoes it.
  const b = await first.launch(req("boost-b"));
  assert.equal(niceOf(b.pid!), -7);
  const second = make();
  const seen = await second.list("boost");
  assert.deepEqual(seen.map((i) => [i.id, i.state]), [["boost-a", "running"], ["boost-b", "running"]]);
  assert.equal(niceOf(b.pid!), 0, "an adopted start runs at the normal priority");
  assert.equal(niceOf(readNetRecord(join(base, "home", "instances", "boost-b"))!.pid!), 0);
  // A start that is stopped before it answered: nothing stays raised either.
  await second.terminate("boost-b", { graceMs: 1000 });
  await second.terminate("boost-a", { graceMs: 1000 });
});

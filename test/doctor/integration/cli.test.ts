// `kiln doctor` and `kiln gc` as a user runs them: exit codes, --json, --help.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { deadPid, tempHome } from "../helpers.js";
import { KILN_BIN as MAIN } from "../../support/kiln-bin.js";

function kiln(home: string, args: string[]) {
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd: home, env: { ...process.env, KILN_HOME: home, NO_COLOR: "1" }, encoding: "utf8", timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("doctor exits 1 while problems remain, 0 once repaired, 2 on bad input; --json is versioned", (t) => {
  const { home, paths } = tempHome(t);
  // the daemons' format: pid and the process's start time
  writeFileSync(paths.proxyPid, `${deadPid()} 123456\n`);

  const found = kiln(home, ["doctor", "--json"]);
  assert.equal(found.code, 1, found.stderr);
  const report = JSON.parse(found.stdout);
  assert.equal(report.schemaVersion, 1);
  assert.deepEqual(report.findings.map((f: { check: string }) => f.check), ["daemon.stale-pidfile"]);

  const text = kiln(home, ["doctor"]);
  assert.equal(text.code, 1);
  assert.match(text.stdout, /WARN +daemon.stale-pidfile: the proxy pid file names pid \d+, which is not running/);
  assert.match(text.stdout, /kiln doctor --repair fixes this/);

  const repaired = kiln(home, ["doctor", "--repair"]);
  assert.equal(repaired.code, 0, repaired.stdout);
  assert.match(repaired.stdout, /repaired: removed .*proxy\.pid/);
  assert.equal(kiln(home, ["doctor"]).code, 0);

  const bad = kiln(home, ["doctor", "--keep", "none"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /KILN_E_USAGE/);
});

test("gc --dry-run --json reports a plan and changes nothing; --help has examples", (t) => {
  const { home } = tempHome(t);
  const r = kiln(home, ["gc", "--dry-run", "--json", "--keep", "3"]);
  assert.equal(r.code, 0, r.stderr);
  const plan = JSON.parse(r.stdout);
  assert.equal(plan.schemaVersion, 1);
  assert.equal(plan.dryRun, true);
  assert.equal(plan.keep, 3);
  assert.equal(plan.bytesFreed, 0);
  assert.equal(kiln(home, ["gc", "--keep", "0"]).code, 2);
  for (const verb of ["gc", "doctor"]) {
    const help = kiln(home, [verb, "--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Examples:\n  kiln /);
  }
  assert.ok(join(home).length > 0);
});

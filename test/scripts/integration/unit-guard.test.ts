// scripts/unit-guard.mjs, the unit tier's preload: in a test file's process (NODE_TEST_CONTEXT
// set), a child process started from the main thread or from any worker thread fails with the
// reason; worker threads themselves still run (the bake compresses on them); outside a test
// file's process nothing is changed.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";

const guard = new URL("../../../../scripts/unit-guard.mjs", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "kiln-unit-guard-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `code` (an ES module) under the guard, as the unit tier does; its stdout lines. */
function underGuard(code: string, testContext = true): string[] {
  const file = join(dir, `probe-${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(file, code);
  const env = { ...process.env };
  if (testContext) env.NODE_TEST_CONTEXT = "child-v8";
  else delete env.NODE_TEST_CONTEXT;
  const r = spawnSync(process.execPath, ["--import", guard, file], { env, encoding: "utf8", timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim().split("\n");
}

const tryRun = `
  function tryRun(cp) {
    try { cp.execFileSync("/bin/true"); return "ran"; } catch (e) { return e.message; }
  }`;

test("the main thread: a spawn fails with the reason", () => {
  const [line] = underGuard(`import * as cp from "node:child_process"; ${tryRun}; console.log(tryRun(cp));`);
  assert.match(line!, /unit tests spawn nothing \(child_process\.execFileSync called\)/);
});

for (const [how, opts] of [
  ["inheriting the test's flags", "{ eval: true }"],
  ["with flags of its own (execArgv: [])", "{ eval: true, execArgv: [] }"],
] as const) {
  test(`a worker thread ${how}: it runs, and a spawn there fails with the reason`, () => {
    const lines = underGuard(`
      import { Worker } from "node:worker_threads";
      const w = new Worker(\`const cp = require("node:child_process"); ${tryRun.replace(/`/g, "\\`")}; require("node:worker_threads").parentPort.postMessage(tryRun(cp));\`, ${opts});
      w.once("message", (m) => { console.log("worker ran"); console.log(m); w.terminate(); });
      w.once("error", (e) => console.log("worker failed: " + e.message));
    `);
    assert.equal(lines[0], "worker ran");
    assert.match(lines[1]!, /unit tests spawn nothing \(child_process\.execFileSync called\)/);
  });
}

test("an ES module worker importing spawn by name is guarded too", () => {
  const worker = join(dir, "esm-worker.mjs");
  writeFileSync(
    worker,
    `import { spawnSync } from "node:child_process";
     import { parentPort } from "node:worker_threads";
     let r; try { spawnSync("/bin/true"); r = "ran"; } catch (e) { r = e.message; }
     parentPort.postMessage(r);`,
  );
  const [line] = underGuard(`
    import { Worker } from "node:worker_threads";
    const w = new Worker(${JSON.stringify(worker)}, { execArgv: [] });
    w.once("message", (m) => { console.log(m); w.terminate(); });
    w.once("error", (e) => console.log("worker failed: " + e.message));
  `);
  assert.match(line!, /unit tests spawn nothing \(child_process\.spawnSync called\)/);
});

test("outside a test file's process (the runner), nothing is changed", () => {
  const [line] = underGuard(`import * as cp from "node:child_process"; ${tryRun}; console.log(tryRun(cp));`, false);
  assert.equal(line, "ran");
});

// The unit tier's guard (loaded by unit-guard.mjs on the main thread, and by --require in every
// worker thread a unit test starts): a unit test spawns nothing. Any child process (bwrap, skopeo,
// docker, the CLI, even `node`), from the test's own thread or from a worker thread of the code
// under test, fails the test with the reason, so a test that needs one is moved to an
// integration/ folder instead of slowing and coupling the fast tier.
"use strict";
const { syncBuiltinESMExports } = require("node:module");

// Only inside a test file's process: the runner itself (no NODE_TEST_CONTEXT) spawns the files.
if (process.env.NODE_TEST_CONTEXT) {
  const cp = require("node:child_process");
  for (const name of ["spawn", "spawnSync", "exec", "execSync", "execFile", "execFileSync", "fork"]) {
    cp[name] = () => {
      throw new Error(`unit tests spawn nothing (child_process.${name} called): move this test to an integration/ folder`);
    };
  }
  // Workers have their own module instances: each one loads this file first (--require works in
  // a worker's execArgv; --import does not run there). A worker given no execArgv inherits ours.
  const wt = require("node:worker_threads");
  const Base = wt.Worker;
  if (!Base.kilnGuarded) {
    class GuardedWorker extends Base {
      constructor(filename, options = {}) {
        const inherited = options.execArgv ?? process.execArgv.filter((a, i, all) => a !== "--import" && all[i - 1] !== "--import");
        super(filename, { ...options, execArgv: [...inherited, "--require", __filename] });
      }
    }
    GuardedWorker.kilnGuarded = true;
    wt.Worker = GuardedWorker;
  }
  syncBuiltinESMExports();
}

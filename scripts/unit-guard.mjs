// Preloaded into the unit tier (node --import): a unit test spawns nothing. Any child process
// (bwrap, skopeo, docker, the CLI, even `node`) makes the test fail with the reason, so a test
// that needs one is moved to an integration/ folder instead of slowing and coupling the fast tier.
import { createRequire, syncBuiltinESMExports } from "node:module";

// Only inside a test file's process: the runner itself (no NODE_TEST_CONTEXT) spawns the files.
if (process.env.NODE_TEST_CONTEXT) {
  const cp = createRequire(import.meta.url)("node:child_process");
  for (const name of ["spawn", "spawnSync", "exec", "execSync", "execFile", "execFileSync", "fork"]) {
    cp[name] = () => {
      throw new Error(`unit tests spawn nothing (child_process.${name} called): move this test to an integration/ folder`);
    };
  }
  syncBuiltinESMExports();
}

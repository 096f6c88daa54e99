// Without a bubblewrap that can hold the sandbox, kiln says so and starts nothing: `kiln up`
// exits 1 naming what the bwrap lacks, `kiln doctor` reports sandbox.unavailable. The old bwrap
// is a fixture script first on PATH that prints a 0.4-era --help (no --disable-userns).

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { KILN_BIN } from "../../support/kiln-bin.js";

const OLD_BWRAP = `#!/bin/sh
cat <<'HELP'
usage: bwrap [OPTIONS...] [--] COMMAND [ARGS...]
    --args FD                    Parse NUL-separated args from FD
    --unshare-user               Create new user namespace (may be automatically implied if not setuid)
    --seccomp FD                 Load and use seccomp rules from FD
    --json-status-fd FD          Write container info to FD
HELP
`;

test("an old bwrap: kiln up refuses (nothing started) and kiln doctor reports it", () => {
  const dir = mkdtempSync(join(tmpdir(), "kiln-old-bwrap-"));
  try {
    const bin = join(dir, "bin");
    mkdirSync(bin);
    writeFileSync(join(bin, "bwrap"), OLD_BWRAP);
    chmodSync(join(bin, "bwrap"), 0o755);
    writeFileSync(join(dir, "kiln.yaml"), `name: svc\nversion: "1"\nlisten: "127.0.0.1:1"\nimage: { base: node, entrypoint: ["/usr/local/bin/node"], user: "1000:1000" }\n`);
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? "/usr/bin:/bin"}`, NO_COLOR: "1" };
    const run = (args: string[]) => spawnSync(process.execPath, [KILN_BIN, ...args], { cwd: dir, env, encoding: "utf8", timeout: 60_000 });

    const up = run(["up", "--detach"]);
    assert.equal(up.status, 1, up.stdout + up.stderr);
    assert.match(up.stderr, /KILN_E_PROVIDER/);
    assert.match(up.stderr, /bwrap is too old: it lacks --disable-userns/);
    assert.match(up.stderr, /--unsafe-no-sandbox/);
    assert.ok(!existsSync(join(dir, ".kiln/run/controller.pid")), "no controller was started");

    const doc = run(["doctor", "--json"]);
    const report = JSON.parse(doc.stdout) as { findings: { check: string; severity: string; what: string }[] };
    const f = report.findings.find((x) => x.check === "sandbox.unavailable");
    assert.ok(f, doc.stdout);
    assert.equal(f.severity, "error");
    assert.match(f.what, /lacks --disable-userns/);
    assert.equal(doc.status, 1);

    const bad = run(["up", "--sandbox", "maybe"]);
    assert.equal(bad.status, 2, bad.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

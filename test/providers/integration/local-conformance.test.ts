// The shared provider conformance suite on the local provider: real processes in a real
// bubblewrap sandbox, from a tiny root filesystem holding this machine's node and the
// fixture program.

import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";
import { LocalProvider, type ImageRunConfig } from "../../../src/providers/local/index.js";
import { providerConformance } from "../conformance.js";
import { FIXTURE_APP, type FixtureName } from "../fixture-app.js";
import { APP_GID, APP_UID, buildTestRootfs } from "../local-fixtures.js";

const haveBwrap = spawnSync("bwrap", ["--version"]).status === 0;
let base: string | undefined;
let worlds = 0;

const config: ImageRunConfig = {
  env: ["PATH=/usr/local/bin:/usr/bin:/bin"],
  entrypoint: ["/usr/local/bin/node"],
  cmd: ["/app/fixture.mjs"],
  user: `${APP_UID}:${APP_GID}`,
  workdir: "/app",
};

after(() => {
  if (base) rmSync(base, { recursive: true, force: true });
});

providerConformance("local (bubblewrap)", async (t) => {
  if (!haveBwrap) {
    const reason = "bubblewrap is not installed (apt-get install bubblewrap)";
    if (process.env.KILN_REQUIRE_ALL === "1") throw new Error(`KILN_REQUIRE_ALL=1 but ${reason}`);
    t.skip(reason);
    return undefined;
  }
  if (!base) {
    base = mkdtempSync(join(tmpdir(), "kiln-local-conformance-"));
    mkdirSync(join(base, "rootfs"), { mode: 0o700 });
    buildTestRootfs(join(base, "rootfs"), { "app/fixture.mjs": FIXTURE_APP });
  }
  const rootfs = join(base, "rootfs");
  const home = join(base, `home-${++worlds}`);
  const make = () => new LocalProvider({ home, sandbox: "bwrap", rootfs: async () => rootfs, imageConfig: async () => config, log: () => undefined });
  const service = `local${worlds}`;
  let n = 0;
  return {
    provider: make(),
    reopen: make,
    service,
    request: (fixture: FixtureName, over = {}) => ({
      instanceId: `${service}-${++n}`,
      service,
      release: `r-${fixture}`,
      digest: `sha256:${"cd".repeat(32)}`,
      volumes: [],
      ...over,
      env: { FIXTURE: fixture, DATA_DIR: "/data", ...over.env },
    }),
    lacks: {},
    appUid: APP_UID,
    pass: (ms: number) => new Promise<void>((r) => setTimeout(r, ms)),
  };
});

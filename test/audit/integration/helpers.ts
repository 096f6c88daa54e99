// Bakes examples/hello and examples/stateful (as root, like bake-as-root.mjs) into one
// temporary store with the real bake(), once per test file.

import { mkdtempSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readFileSync } from "node:fs";
import { recipeOf } from "../../../src/ops/recipe.js";
import { bake, openStore, type Store } from "../../../src/image/index.js";
import { loadSpec, type LoadedSpec } from "../../../src/config/index.js";
import { parseSmoke } from "../../../src/audit/index.js";
import type { SmokeRequest } from "../../../src/audit/index.js";
import { repoRoot } from "../../integration/support.js";

export interface Baked {
  home: string;
  store: Store;
  hello: { loaded: LoadedSpec; digest: string; ref: string };
  stateful: { loaded: LoadedSpec; digest: string; ref: string; smoke: SmokeRequest[] };
  cleanup(): Promise<void>;
}

const EPOCH = 1_700_000_000;

export async function bakeExamples(): Promise<Baked> {
  const home = mkdtempSync(join(tmpdir(), "kiln-audit-it-"));
  const store = openStore(home);
  const helloSpec = loadSpec(join(repoRoot, "examples/hello/kiln.yaml"));
  const statefulSpec = loadSpec(join(repoRoot, "examples/stateful/kiln.yaml"));
  const hello = await bake(recipeOf(helloSpec), { store, sourceDateEpoch: EPOCH });
  const root = await bake({ ...recipeOf(statefulSpec), version: `${statefulSpec.spec.version}-root`, user: "0:0" }, { store, sourceDateEpoch: EPOCH });
  const smokeFile = join(repoRoot, "examples/stateful/smoke.txt");
  return {
    home,
    store,
    hello: { loaded: helloSpec, digest: hello.digest, ref: hello.ref },
    stateful: { loaded: statefulSpec, digest: root.digest, ref: root.ref, smoke: parseSmoke(readFileSync(smokeFile, "utf8"), smokeFile) },
    cleanup: () => rm(home, { recursive: true, force: true }),
  };
}

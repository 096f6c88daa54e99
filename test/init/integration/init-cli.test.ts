// kiln init through real processes: the CLI (exit codes, nothing written on refusal), the real
// dpkg-query behind --packages, and bakes of what init writes with kiln's real Node base.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { recipeOf } from "../../../src/ops/recipe.js";
import { KILN_BIN as kilnBin } from "../../support/kiln-bin.js";
import { parsePackagesLabel } from "../../../src/generate/index.js";
import { bake, openStore, type Store } from "../../../src/image/index.js";
import { initProject, scanProject } from "../../../src/init/index.js";
import { loadSpec } from "../../../src/config/index.js";

const repoRoot = fileURLToPath(new URL("../../../../", import.meta.url));

const EXPRESS = join(repoRoot, "test/fixtures/init/express-app");

function temp(t: { after(fn: () => void): void }, prefix = "kiln-init-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe("--packages with the real dpkg-query", () => {
  test("with the real dpkg-query, bash is pinned to its installed version", (t) => {
    if (spawnSync("sh", ["-c", "command -v dpkg-query"]).status !== 0) {
      console.log("# skipped: dpkg-query is not installed (not a Debian system)");
      t.skip("dpkg-query is not installed");
      return;
    }
    const installed = spawnSync("dpkg-query", ["-W", "-f=${Version}", "bash"], { encoding: "utf8" }).stdout.trim();
    const app = temp(t);
    writeFileSync(join(app, "server.js"), "require('http').createServer((q, s) => s.end(q.url === '/healthz' ? 'ok' : 'hi')).listen(process.env.PORT);\n");
    writeFileSync(join(app, "packages.txt"), "bash\n");
    const r = initProject(app, { packagesFile: join(app, "packages.txt") });
    const spec = loadSpec(join(app, "kiln.yaml")).spec;
    assert.deepEqual(parsePackagesLabel(spec.image.labels["dev.kiln.packages"]), [{ name: "bash", version: installed }]);
    assert.deepEqual(r.packages, [{ name: "bash", version: installed }]);
  });
});

describe("kiln init (CLI)", () => {
  const kiln = (args: string[], cwd: string) => spawnSync(process.execPath, [kilnBin, ...args], { cwd, encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });

  test("refuses to overwrite kiln.yaml: exit 2, nothing changed; --force replaces it", (t) => {
    const app = temp(t);
    cpSync(EXPRESS, app, { recursive: true });
    writeFileSync(join(app, "kiln.yaml"), "# mine\n");
    const r = kiln(["init", app], app);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /already exists[\s\S]*--force/);
    assert.equal(readFileSync(join(app, "kiln.yaml"), "utf8"), "# mine\n");
    const forced = kiln(["init", app, "--force"], app);
    assert.equal(forced.status, 0, forced.stderr);
    assert.match(readFileSync(join(app, "kiln.yaml"), "utf8"), /^name: express-app/m);
  });

  test("an unresolvable package: exit 2, no kiln.yaml", (t) => {
    const app = temp(t);
    cpSync(EXPRESS, app, { recursive: true });
    writeFileSync(join(app, "pk.txt"), "kiln-no-such-package-xyz\n");
    const r = kiln(["init", app, "--packages", join(app, "pk.txt")], app);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /cannot pin 1 package[\s\S]*kiln-no-such-package-xyz/);
    assert.equal(existsSync(join(app, "kiln.yaml")), false);
  });

  test("an existing .gitignore gets .kiln/ added (not a conflict); an untranslatable start script: exit 2, each token named, nothing written", (t) => {
    const app = temp(t);
    cpSync(EXPRESS, app, { recursive: true });
    writeFileSync(join(app, ".gitignore"), "node_modules\n");
    const r = kiln(["init", app], app);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readFileSync(join(app, ".gitignore"), "utf8"), "node_modules\n.kiln/\n");
    assert.match(r.stdout, /added \.kiln\/ to \.gitignore/);

    const bad = temp(t);
    writeFileSync(join(bad, "package.json"), JSON.stringify({ name: "bad", scripts: { start: "tsc && serve dist | tee log" } }));
    const refused = kiln(["init", bad], bad);
    assert.equal(refused.status, 2, refused.stderr);
    assert.match(refused.stderr, /cannot translate package\.json scripts\.start/);
    for (const token of ['"&&"', '"|"']) assert.ok(refused.stderr.includes(token), `${token} in:\n${refused.stderr}`);
    assert.equal(existsSync(join(bad, "kiln.yaml")), false);
    assert.equal(existsSync(join(bad, ".gitignore")), false);
  });

  test("help has examples", (t) => {
    const r = kiln(["init", "--help"], temp(t));
    assert.equal(r.status, 0);
    assert.match(r.stdout, /Examples?:/);
  });
});

// Baking uses kiln's real Node runtime base (~11 s the first time): one store for both apps.
describe("the kiln.yaml init writes validates and bakes", () => {
  let root: string;
  let store: Store;
  before(() => {
    root = mkdtempSync(join(tmpdir(), "kiln-init-bake-"));
    store = openStore(join(root, "store"));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  async function initAndBake(app: string) {
    const r = initProject(app);
    const loaded = loadSpec(join(app, "kiln.yaml"));
    const baked = await bake(recipeOf(loaded), { store, sourceDateEpoch: 1_700_000_000 });
    return { r, loaded, baked };
  }

  test("examples/hello without its kiln.yaml", async () => {
    const app = join(root, "hello");
    cpSync(join(repoRoot, "examples/hello"), app, { recursive: true, filter: (src) => !src.includes("/.kiln") });
    rmSync(join(app, "kiln.yaml"));
    const { r, loaded, baked } = await initAndBake(app);
    assert.equal(r.plan.runtime, "node");
    const { spec } = loaded;
    assert.equal(spec.name, "hello");
    assert.deepEqual(spec.image.cmd, ["/app/server.js"]);
    assert.deepEqual(spec.image.files.map((f) => f.src), ["server.js"]);
    assert.deepEqual(spec.image.config.map((f) => f.src), ["config"]);
    assert.equal(spec.health.path, "/healthz");
    assert.deepEqual(baked.layers.map((l) => l.role), ["base", "app", "config"]);
    assert.match(baked.digest, /^sha256:[0-9a-f]{64}$/);
  });

  test("an Express-style app (package.json scripts.start, routes in src/)", async () => {
    const app = join(root, "express-app");
    cpSync(EXPRESS, app, { recursive: true });
    mkdirSync(join(app, "bin"));
    writeFileSync(join(app, "bin", "run"), "#!/bin/sh\n");
    chmodSync(join(app, "bin", "run"), 0o755);
    const { loaded, baked } = await initAndBake(app);
    const { spec } = loaded;
    assert.equal(spec.name, "express-app");
    assert.equal(spec.version, "1.2.0");
    assert.deepEqual(spec.image.entrypoint, ["/usr/local/bin/node"]);
    assert.deepEqual(spec.image.cmd, ["/app/src/server.js"]);
    assert.deepEqual(spec.image.files.map((f) => f.src), ["bin", "package.json", "src"], "no README, .env or tests in the image");
    assert.deepEqual(spec.image.dependencies, [], "no dependencies: no node_modules layer");
    assert.equal(spec.health.path, "/health");
    assert.equal(baked.ref, "express-app:1.2.0");
    assert.deepEqual(baked.layers.map((l) => l.role), ["base", "app"]);
    const scanned = scanProject(app);
    assert.deepEqual(scanned.healthRoutes, [{ route: "/health", file: "src/routes.js" }]);
  });
});

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { recipeOf } from "../../src/ops/recipe.js";
import { KilnError } from "../../src/errors.js";
import { parsePackagesLabel } from "../../src/generate/index.js";
import { bake, openStore, type Store } from "../../src/image/index.js";
import {
  entryFromStartScript,
  initProject,
  parseCandidate,
  parseDockerfile,
  parseInstalled,
  parsePackageList,
  planInit,
  resolvePackages,
  scanProject,
  serviceName,
  type ProjectFacts,
  type Runner,
} from "../../src/init/index.js";
import { loadSpec, parseSpec } from "../../src/spec/index.js";
import { KILN_BIN as kilnBin } from "../support/kiln-bin.js";

const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
const EXPRESS = join(repoRoot, "test/fixtures/init/express-app");

function temp(t: { after(fn: () => void): void }, prefix = "kiln-init-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function code(e: unknown): string | undefined {
  return e instanceof KilnError ? e.code : undefined;
}

function facts(over: Partial<ProjectFacts>): ProjectFacts {
  return { dirName: "app", entries: [], healthRoutes: [], readsPort: true, staticRoots: [], ...over };
}

const file = (name: string, extra: Partial<{ executable: boolean; elf: boolean }> = {}) => ({ name, kind: "file" as const, executable: false, elf: false, ...extra });
const dir = (name: string) => ({ name, kind: "dir" as const, executable: false, elf: false });

function specOf(plan: { files: { path: string; content: string }[] }) {
  const r = parseSpec(plan.files[0]!.content, "kiln.yaml");
  if ("errors" in r) assert.fail(`invalid kiln.yaml: ${JSON.stringify(r.errors)}\n${plan.files[0]!.content}`);
  return r.spec;
}

describe("detection", () => {
  test("service names from package names and directories", () => {
    assert.equal(serviceName("@acme/Express_App"), "express-app");
    assert.equal(serviceName("hello"), "hello");
    assert.equal(serviceName("9lives"), "lives");
    assert.equal(serviceName("---"), "app");
  });

  test("`node FILE` start scripts", () => {
    assert.deepEqual(entryFromStartScript("node src/server.js"), { file: "src/server.js", args: [] });
    assert.deepEqual(entryFromStartScript("NODE_ENV=production node --enable-source-maps server.js --port 1"), { file: "server.js", args: ["--port", "1"] });
    assert.equal(entryFromStartScript("nodemon server.js"), undefined);
    assert.equal(entryFromStartScript("node a.js && node b.js"), undefined);
  });

  test("Dockerfile: the last stage's exec-form CMD/ENTRYPOINT, EXPOSE, USER, ENV", () => {
    const d = parseDockerfile(`FROM node:20 AS build\nCMD ["npm","test"]\nEXPOSE 9999\n\nFROM gcr.io/distroless/nodejs20\nWORKDIR /srv\nENV NODE_ENV=production\nCOPY . .\nUSER 1001:1001\nEXPOSE 3000/tcp\nENTRYPOINT ["node"]\nCMD ["server.js", \\\n  "--quiet"]\n`);
    assert.deepEqual(d, { entrypoint: ["node"], cmd: ["server.js", "--quiet"], expose: 3000, workdir: "/srv", user: "1001:1001", env: { NODE_ENV: "production" } });
  });

  test("a Dockerfile is followed, with node mapped to the base's binary", () => {
    const plan = planInit(facts({ entries: [file("Dockerfile"), file("server.js")], dockerfile: parseDockerfile(`FROM node:20\nWORKDIR /srv\nUSER 1001\nEXPOSE 3000\nCMD ["node", "server.js"]\n`) }));
    const spec = specOf(plan);
    assert.equal(plan.runtime, "dockerfile");
    assert.deepEqual([spec.image.entrypoint, spec.image.cmd, spec.image.workdir, spec.image.user, spec.image.port], [["/usr/local/bin/node"], ["/srv/server.js"], "/srv", "1001", 3000]);
    assert.deepEqual(spec.image.files.map((f) => f.src), ["server.js"], "the Dockerfile itself is not baked in");
  });

  test("`npm start` in a Dockerfile defers to package.json; a shell form is refused", () => {
    const npm = planInit(facts({ entries: [file("Dockerfile"), file("package.json"), file("app.js")], packageJson: { main: "app.js" }, dockerfile: parseDockerfile(`FROM node\nEXPOSE 5000\nCMD ["npm", "start"]\n`) }));
    assert.equal(npm.runtime, "node");
    assert.deepEqual(specOf(npm).image.cmd, ["/app/app.js"]);
    assert.equal(specOf(npm).image.port, 5000);
    assert.throws(() => planInit(facts({ dockerfile: parseDockerfile("FROM x\nCMD node server.js\n") })), (e: unknown) => code(e) === "KILN_E_USAGE");
  });

  test("a static site gets static-server.js; a binary runs as is; nothing found is a clear error", () => {
    const site = planInit(facts({ entries: [dir("public"), file("README.md")], staticRoots: ["public"] }));
    assert.equal(site.runtime, "static");
    assert.deepEqual(site.files.map((f) => f.path), ["kiln.yaml", "static-server.js"]);
    assert.deepEqual(specOf(site).image.files.map((f) => f.src), ["static-server.js", "public"]);
    assert.equal(specOf(site).health.path, "/healthz");
    assert.match(site.files[1]!.content, /path\.resolve\(__dirname, "public"\)/);

    const bin = planInit(facts({ dirName: "api", entries: [file("api", { executable: true, elf: true }), dir("static")] }));
    assert.deepEqual(specOf(bin).image.entrypoint, ["/app/api"]);

    assert.throws(() => planInit(facts({ entries: [file("notes.txt")] })), (e: unknown) => code(e) === "KILN_E_USAGE" && /cannot tell how to start/.test((e as Error).message));
  });

  test("health path: the first route found, else /healthz with a comment", () => {
    const found = planInit(facts({ entries: [file("server.js")], healthRoutes: [{ route: "/up", file: "server.js" }] }));
    assert.equal(specOf(found).health.path, "/up");
    assert.match(found.files[0]!.content, /path: \/up\s+# found in server\.js/);
    const none = planInit(facts({ entries: [file("server.js")], readsPort: false }));
    assert.equal(specOf(none).health.path, "/healthz");
    assert.match(none.files[0]!.content, /no \/healthz, \/health, \/up or \/status route found/);
    assert.match(none.files[0]!.content, /no PORT found in the source/);
  });
});

describe("--packages", () => {
  const fake: Runner = ({ argv }) => {
    const name = argv.at(-1)!;
    if (argv[0] === "dpkg-query") return name === "curl" ? { status: 0, stdout: "install ok installed\t7.88.1-10+deb12u8" } : { status: 1, stdout: "" };
    if (name === "jq") return { status: 0, stdout: "jq:\n  Installed: (none)\n  Candidate: 1.6-2.1\n" };
    return { status: 0, stdout: "" };
  };

  test("pins installed versions first, then apt's candidate; keeps versions written in the file", () => {
    const lines = parsePackageList("# tools\ncurl\njq   # json\ntzdata=2024a-0+deb12u1\n", "pk.txt");
    assert.deepEqual(resolvePackages(lines, "pk.txt", fake), [
      { name: "curl", version: "7.88.1-10+deb12u8" },
      { name: "jq", version: "1.6-2.1" },
      { name: "tzdata", version: "2024a-0+deb12u1" },
    ]);
  });

  test("unresolvable names are one error naming each, with file:line", () => {
    assert.throws(
      () => resolvePackages(parsePackageList("curl\nnot-a-package\nalso-missing\n", "pk.txt"), "pk.txt", fake),
      (e: unknown) => code(e) === "KILN_E_USAGE" && (e as KilnError).details.map((d) => d.where).join() === "pk.txt:2,pk.txt:3",
    );
    assert.throws(() => parsePackageList("Bad_Name\n", "pk.txt"), (e: unknown) => code(e) === "KILN_E_USAGE");
  });

  test("parsers of dpkg-query and apt-cache output", () => {
    assert.equal(parseInstalled("install ok installed\t1.2-3"), "1.2-3");
    assert.equal(parseInstalled("deinstall ok config-files\t1.2-3"), undefined);
    assert.equal(parseCandidate("x:\n  Installed: (none)\n  Candidate: (none)\n"), undefined);
  });

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

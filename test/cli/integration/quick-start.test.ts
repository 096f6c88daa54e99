// A short verb loads only what it uses (issue 17: `kiln --help`, `validate` and `status` start in
// ≤ 0.3 s). Timings are bench/cli.ts's business; this asserts what each command line loads, which
// is what start-up cost comes from: no verb module for --help, no TypeBox ever, and neither the
// Docker client, SQLite, PostgreSQL's worker nor the SBOM library for validate or status.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { after, test } from "node:test";
import { kiln, repoRoot } from "../../integration/support.js";

const dir = mkdtempSync(join(tmpdir(), "kiln-quick-start-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const spec = join(repoRoot, "examples/hello/kiln.yaml");

// Preloaded into the CLI: every ES module and CommonJS file it loads, one path a line.
writeFileSync(
  join(dir, "hooks.mjs"),
  `import { appendFileSync } from "node:fs";
export async function load(url, context, next) {
  const r = await next(url, context);
  appendFileSync(process.env.KILN_TEST_LOADED, url + "\\n");
  return r;
}
`,
);
writeFileSync(
  join(dir, "trace.mjs"),
  `import { register, createRequire } from "node:module";
import { appendFileSync } from "node:fs";
const Module = createRequire(import.meta.url)("node:module");
const load = Module._load;
Module._load = function (request, parent, isMain) {
  const r = load.apply(this, arguments);
  try { appendFileSync(process.env.KILN_TEST_LOADED, Module._resolveFilename(request, parent, isMain) + "\\n"); } catch {}
  return r;
};
register("./hooks.mjs", import.meta.url);
`,
);

let n = 0;
/** What `kiln ARGS` loads: file paths and URLs, deduplicated. */
async function loaded(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; files: string[] }> {
  const list = join(dir, `loaded-${n++}.txt`);
  writeFileSync(list, "");
  const r = await kiln(args, { cwd: dir, env: { KILN_HOME: join(dir, "home"), ...env, KILN_TEST_LOADED: list, NODE_OPTIONS: `--import=${pathToFileURL(join(dir, "trace.mjs")).href}` } });
  return { code: r.code, stdout: r.stdout, files: [...new Set(readFileSync(list, "utf8").split("\n").filter(Boolean))] };
}

const verbModules = (files: string[]) => files.filter((f) => /\/dist\/src\/cli\/verbs\/[^/]+\.js$/.test(f)).map((f) => f.replace(/.*\/verbs\//, ""));
const packages = (files: string[]) => new Set(files.map((f) => /node_modules\/((@[^/]+\/)?[^/]+)\//.exec(f)?.[1]).filter((p): p is string => p !== undefined));
const HEAVY = ["@sinclair/typebox", "dockerode", "better-sqlite3", "synckit", "pg", "@cyclonedx/cyclonedx-library", "fflate", "@hazae41/foras", "hono", "prom-client"];

test("kiln --help and an unknown verb load no verb module and no TypeBox", async () => {
  const help = await loaded(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Commands:[\s\S]*\n {2}deploy \[options\] \[ref\]/);
  assert.ok(help.files.length > 0, "the trace recorded nothing");
  assert.deepEqual(verbModules(help.files), []);
  assert.deepEqual([...packages(help.files)], ["commander"]);
  assert.deepEqual(help.files.filter((f) => f.endsWith("/dist/src/config/schema.js")), []);
  const unknown = await loaded(["deplyo"]);
  assert.equal(unknown.code, 2);
  assert.deepEqual(verbModules(unknown.files), []);
});

test("kiln deploy --help loads the deploy verbs' module alone", async () => {
  const r = await loaded(["deploy", "--help"]);
  assert.equal(r.code, 0);
  assert.deepEqual(verbModules(r.files), ["deploy.js"]);
});

test("kiln validate and kiln status load none of the heavy libraries they do not use", async () => {
  const validate = await loaded(["validate", "-f", spec]);
  assert.equal(validate.code, 0);
  assert.match(validate.stdout, /: valid/);
  const status = await loaded(["status", "-f", spec]);
  assert.equal(status.code, 0);
  assert.match(status.stdout, /controller\s+not running/);
  for (const [name, r] of [["validate", validate], ["status", status]] as const) {
    const pkgs = packages(r.files);
    assert.ok(pkgs.has("yaml"), `${name}: the trace missed yaml`);
    assert.deepEqual(HEAVY.filter((p) => pkgs.has(p)), [], `${name} loaded them`);
    // the TypeBox definition itself (spec-schema.ts falls back to it only without the build's JSON)
    assert.deepEqual(r.files.filter((f) => f.endsWith("/dist/src/config/schema.js")), [], `${name} loaded schema.js`);
  }
});

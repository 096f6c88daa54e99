// What kiln init writes for apps started by a dependency's command, from facts (planInit) and
// from a project on disk (scanProject resolves the bin); the launch-time preload; .gitignore;
// the missing-kiln.yaml hint. Spawns nothing: files only.

import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, test } from "node:test";
import { runInNewContext } from "node:vm";
import { KilnError } from "../../src/errors.js";
import { argvPreloadSource, ARGV_PRELOAD_FILE } from "../../src/init/argv-preload.js";
import { planInit, scanProject, type ProjectFacts } from "../../src/init/index.js";
import { DEFAULT_PORT, gitignoreWithKiln } from "../../src/init/plan.js";
import { resolveCommand } from "../../src/init/scan.js";
import { loadSpec, parseSpec } from "../../src/config/index.js";

const file = (name: string) => ({ name, kind: "file" as const, executable: false, elf: false });
const dir = (name: string) => ({ name, kind: "dir" as const, executable: false, elf: false });

function facts(over: Partial<ProjectFacts>): ProjectFacts {
  return { dirName: "app", entries: [], healthRoutes: [], readsPort: false, staticRoots: [], ...over };
}

function specOf(plan: { files: { path: string; content: string }[] }) {
  const r = parseSpec(plan.files[0]!.content, "kiln.yaml");
  if ("errors" in r) assert.fail(`invalid kiln.yaml: ${JSON.stringify(r.errors)}\n${plan.files[0]!.content}`);
  return r.spec;
}

function temp(t: { after(fn: () => void): void }): string {
  const d = mkdtempSync(join(tmpdir(), "kiln-init-plan-"));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

function write(root: string, rel: string, text: string) {
  mkdirSync(dirname(join(root, rel)), { recursive: true });
  writeFileSync(join(root, rel), text);
}

const jsonServerFacts = facts({
  entries: [file("db.json"), dir("node_modules"), file("package.json"), file("package-lock.json"), file("README.md")],
  packageJson: { name: "todo-api", version: "1.0.0", scripts: { start: "json-server --port 3000 db.json" }, dependencies: { "json-server": "0.17.4" } },
  commands: { "json-server": { file: "node_modules/json-server/lib/cli/bin.js", via: "node_modules/.bin/json-server", package: "json-server", node: true, readsPort: false } },
});

describe("planInit: a dependency's server", () => {
  test("json-server --port 3000: its bin in exec form, the port kept as ${PORT:-3000}, the preload added", () => {
    const plan = planInit(jsonServerFacts);
    const spec = specOf(plan);
    assert.equal(plan.runtime, "node");
    assert.deepEqual(spec.image.entrypoint, ["/usr/local/bin/node", "--require", `/app/${ARGV_PRELOAD_FILE}`]);
    assert.deepEqual(spec.image.cmd, ["/app/node_modules/json-server/lib/cli/bin.js", "--port", "${PORT:-3000}", "db.json"]);
    assert.deepEqual(spec.image.files.map((f) => f.src), ["db.json", ARGV_PRELOAD_FILE, "package-lock.json", "package.json"]);
    assert.deepEqual(spec.image.dependencies.map((f) => f.src), ["node_modules"]);
    assert.equal(spec.image.port, 3000);
    assert.equal(spec.listen, "127.0.0.1:3000");
    assert.equal(spec.health.path, "/", "json-server has no /healthz: its root page answers");
    assert.deepEqual(plan.files.map((f) => f.path), ["kiln.yaml", ARGV_PRELOAD_FILE, ".gitignore"]);
    assert.ok(plan.summary.some((l) => /note: --port 3000 → --port \$\{PORT:-3000\}/.test(l)), plan.summary.join("\n"));
    assert.match(plan.files[0]!.content, /# note: --port 3000 → --port \$\{PORT:-3000\}/);
  });

  test("http-server public: the app's own static server, not static-server.js; no preload when nothing expands", () => {
    const plan = planInit(facts({
      entries: [dir("node_modules"), file("package.json"), dir("public")],
      staticRoots: ["public"],
      packageJson: { name: "site", scripts: { start: "http-server public -c-1" }, dependencies: { "http-server": "14.1.1" } },
      commands: { "http-server": { file: "node_modules/http-server/bin/http-server", via: "node_modules/.bin/http-server", package: "http-server", node: true, readsPort: true } },
    }));
    const spec = specOf(plan);
    assert.equal(plan.runtime, "node");
    assert.deepEqual([...spec.image.entrypoint, ...spec.image.cmd], ["/usr/local/bin/node", "/app/node_modules/http-server/bin/http-server", "public", "-c-1"]);
    assert.deepEqual(plan.files.map((f) => f.path), ["kiln.yaml", ".gitignore"]);
    assert.deepEqual(spec.image.files.map((f) => f.src), ["package.json", "public"]);
    assert.equal(spec.image.port, DEFAULT_PORT);
    assert.match(plan.files[0]!.content, /no port named by the app: kiln init's default, 3000/);
  });

  test("a refused start script with another way to start: used, and the reason is noted, not dropped", () => {
    const plan = planInit(facts({
      entries: [file("package.json"), file("server.js")],
      packageJson: { scripts: { start: "tsc && node server.js" } },
    }));
    assert.deepEqual(specOf(plan).image.cmd, ["/app/server.js"]);
    assert.ok(plan.summary.includes('note: scripts.start not used: "&&": runs a second command: an image runs one program, without a shell'), plan.summary.join("\n"));
  });

  test("a refused start script and nothing else: one error listing each token", () => {
    assert.throws(
      () => planInit(facts({ entries: [file("package.json")], packageJson: { scripts: { start: "vite build && vite preview --port $(cat port)" } } })),
      (e: unknown) => {
        assert.ok(e instanceof KilnError && e.code === "KILN_E_USAGE");
        assert.match(e.message, /cannot translate package\.json scripts\.start/);
        assert.deepEqual(e.details.map((d) => d.message.split(":")[0]), ['"&&"', '"$(cat port)"']);
        assert.ok(e.details.every((d) => d.where === "package.json scripts.start"));
        return true;
      },
    );
  });

  test("the port: the script's, else the source's `PORT || N`, else 3000 (never the hello example's 8080)", () => {
    const own = (over: Partial<ProjectFacts>) => specOf(planInit(facts({ entries: [file("server.js")], readsPort: true, ...over })));
    assert.deepEqual([own({}).image.port, own({}).listen], [3000, "127.0.0.1:3000"]);
    assert.deepEqual([own({ sourcePort: 5000 }).image.port, own({ sourcePort: 5000 }).listen], [5000, "127.0.0.1:5000"]);
    const privileged = own({ sourcePort: 80 });
    assert.deepEqual([privileged.image.port, privileged.listen], [80, "127.0.0.1:3000"], "the proxy does not take a privileged port");
    const script = own({ entries: [file("server.js"), file("package.json")], packageJson: { scripts: { start: "PORT=4100 node server.js" } }, sourcePort: 5000 });
    assert.equal(script.image.port, 4100);
    assert.equal(script.image.env.PORT, undefined, "PORT is kiln's to pass, not baked in");
  });
});

describe("scan: a start script's command resolved on disk", () => {
  test("node_modules/.bin symlink → the package's file; devDependency, shebang and PORT reading recorded", (t) => {
    const app = temp(t);
    write(app, "package.json", JSON.stringify({ scripts: { start: "json-server --port 3000 db.json" }, dependencies: { "json-server": "0.17.4" }, devDependencies: { nodemon: "3.0.0" } }));
    write(app, "node_modules/json-server/lib/cli/bin.js", "#!/usr/bin/env node\nrequire('./index')();\n");
    write(app, "node_modules/json-server/lib/cli/index.js", "module.exports = () => {};\n");
    mkdirSync(join(app, "node_modules/.bin"));
    symlinkSync("../json-server/lib/cli/bin.js", join(app, "node_modules/.bin/json-server"));
    write(app, "node_modules/nodemon/bin/nodemon.js", "#!/usr/bin/env node\nconst p = process.env.PORT;\n");
    write(app, "node_modules/nodemon/package.json", JSON.stringify({ name: "nodemon", bin: { nodemon: "bin/nodemon.js" } }));
    write(app, "node_modules/@acme/tool/package.json", JSON.stringify({ name: "@acme/tool", bin: "run.sh" }));
    write(app, "node_modules/@acme/tool/run.sh", "#!/bin/sh\nexec true\n");

    const f = scanProject(app);
    assert.deepEqual(f.commands, {
      "json-server": { file: "node_modules/json-server/lib/cli/bin.js", via: "node_modules/.bin/json-server", package: "json-server", devOnly: false, readsPort: false, node: true, shebang: "#!/usr/bin/env node" },
    });
    const pkg = f.packageJson!;
    assert.deepEqual(resolveCommand(app, "nodemon", pkg), { file: "node_modules/nodemon/bin/nodemon.js", via: `the "bin" of nodemon's package.json`, package: "nodemon", devOnly: true, readsPort: true, node: true, shebang: "#!/usr/bin/env node" });
    assert.equal(resolveCommand(app, "tool", { dependencies: { "@acme/tool": "1.0.0" } })?.node, false, "a scoped package's string bin is named after the package; #!/bin/sh is not Node");
    assert.equal(resolveCommand(app, "vite", pkg), undefined);
    assert.equal(resolveCommand(app, "../outside.js", pkg), undefined);
  });

  test("a bin symlink pointing out of the app is not followed", (t) => {
    const app = temp(t);
    mkdirSync(join(app, "node_modules/.bin"), { recursive: true });
    symlinkSync("/usr/bin/env", join(app, "node_modules/.bin/evil"));
    assert.equal(resolveCommand(app, "evil", {}), undefined);
  });

  test("the source's default port next to PORT; .gitignore read", (t) => {
    const app = temp(t);
    write(app, "src/server.js", "const port = Number(process.env.PORT) || 5050;\n");
    write(app, ".gitignore", "node_modules\n");
    const f = scanProject(app);
    assert.equal(f.sourcePort, 5050);
    assert.equal(f.gitignore, "node_modules\n");
  });
});

describe("the argv preload (kiln-argv.cjs)", () => {
  // [argv after the main module, environment, what the app sees]
  const rows: [string[], Record<string, string>, string[]][] = [
    [["--port", "${PORT:-3000}", "db.json"], { PORT: "41234" }, ["--port", "41234", "db.json"]],
    [["--port", "${PORT:-3000}"], {}, ["--port", "3000"]],
    [["--port", "${PORT:-3000}"], { PORT: "" }, ["--port", "3000"]],
    [["-a", "${HOST:-127.0.0.1}", "--listen=${HOST}:${PORT}"], { HOST: "0.0.0.0", PORT: "9" }, ["-a", "0.0.0.0", "--listen=0.0.0.0:9"]],
    [["--db", "${DATABASE_URL}", "$PORT", "a$b"], {}, ["--db", "", "$PORT", "a$b"]],
  ];
  for (const [args, env, want] of rows) {
    test(`${args.join(" ")} with ${JSON.stringify(env)}`, () => {
      const proc = { argv: ["/usr/local/bin/node", "/app/node_modules/x/bin.js", ...args], env };
      runInNewContext(argvPreloadSource(), { process: proc });
      assert.deepEqual(proc.argv, ["/usr/local/bin/node", "/app/node_modules/x/bin.js", ...want]);
    });
  }
});

describe(".gitignore gets .kiln/ (the image store: ~100 MB an image)", () => {
  const rows: [string | undefined, string | undefined, boolean | undefined][] = [
    [undefined, "# kiln's local state: baked images, their unpacked root filesystems, instance logs\n.kiln/\n", undefined],
    ["node_modules\n", "node_modules\n.kiln/\n", true],
    ["node_modules", "node_modules\n.kiln/\n", true],
    ["", ".kiln/\n", true],
    ["node_modules\n.kiln/\n", undefined, undefined],
    ["/.kiln\n", undefined, undefined],
    [".kiln-notes\n", ".kiln-notes\n.kiln/\n", true],
  ];
  for (const [before, after, update] of rows) {
    test(JSON.stringify(before), () => {
      const f = gitignoreWithKiln(before);
      assert.equal(f?.content, after);
      assert.equal(f?.update, update);
    });
  }
});

test("a missing kiln.yaml: the hint names kiln init", (t) => {
  const app = temp(t);
  assert.throws(() => loadSpec(app), (e: unknown) => e instanceof KilnError && e.code === "KILN_E_SPEC" && /cannot read \(ENOENT\)/.test(e.message) && /`kiln init` writes it/.test(e.hint ?? ""));
});

// kiln init's pure parts: detection from project facts (planInit), service names, Dockerfiles,
// and the --packages list. Spawns nothing; the CLI, dpkg-query and bakes are in integration/.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { KilnError } from "../../src/errors.js";
import {
  entryFromStartScript,
  parseCandidate,
  parseDockerfile,
  parseInstalled,
  parsePackageList,
  planInit,
  resolvePackages,
  serviceName,
  type ProjectFacts,
  type Runner,
} from "../../src/init/index.js";
import { parseSpec } from "../../src/config/index.js";

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
    assert.deepEqual(entryFromStartScript("NODE_ENV=production node --enable-source-maps server.js --port 1"), { file: "server.js", args: ["--port", "${PORT:-1}"] });
    assert.equal(entryFromStartScript("nodemon server.js"), undefined, "nodemon is not node: its bin must be resolved (start-script.test.ts)");
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
    assert.deepEqual(site.files.map((f) => f.path), ["kiln.yaml", "static-server.js", ".gitignore"]);
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
});

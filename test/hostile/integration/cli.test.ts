// The CLI's contract for hostile input, end to end: `kiln bake` of a hostile
// base, `kiln validate` of hostile kiln.yaml files — exit 2, a KILN_E_ code,
// no stack trace, and nothing written outside the store.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, test } from "node:test";
import { tempDir } from "../../image/helpers.js";
import { layerOf, ociLayoutFiles, snapshot, tarOf, type HostileEntry } from "../support.js";

const kilnBin = fileURLToPath(new URL("../../../src/cli/main.js", import.meta.url));

function kiln(args: string[], cwd: string, home: string) {
  return spawnSync(process.execPath, [kilnBin, ...args], { cwd, encoding: "utf8", timeout: 120_000, env: { ...process.env, NO_COLOR: "1", KILN_HOME: home } });
}

function assertCleanRefusal(r: ReturnType<typeof kiln>, code: string): void {
  assert.equal(r.status, 2, `exit 2, got ${r.status}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  assert.match(r.stderr + r.stdout, new RegExp(code));
  assert.doesNotMatch(r.stderr, /^\s+at .+:\d+:\d+\)?$/m, `no stack trace:\n${r.stderr}`);
}

const APP = "require('node:http').createServer((q, s) => s.end('ok')).listen(process.env.PORT);\n";

const hostileBases: { name: string; layers: HostileEntry[][] }[] = [
  { name: "traversal", layers: [[{ name: "../../../../tmp/kiln-cli-pwned", body: "x" }]] },
  { name: "absolute path", layers: [[{ name: "/tmp/kiln-cli-pwned", body: "x" }]] },
  { name: "symlink escape", layers: [[{ name: "usr/", type: "directory" }, { name: "usr/up", type: "symlink", linkname: "../../../.." }]] },
  { name: "hard-link escape", layers: [[{ name: "shadow", type: "link", linkname: "../../../etc/shadow" }]] },
  { name: "hard link to a symlink", layers: [[{ name: "a/b/l", type: "symlink", linkname: "../../x" }, { name: "top", type: "link", linkname: "a/b/l" }]] },
];

describe("kiln bake refuses a hostile base at import", () => {
  for (const c of hostileBases) {
    test(c.name, async (t) => {
      const dir = await tempDir(t, "kiln-hostile-cli-");
      const project = join(dir, "project");
      await mkdir(project);
      await writeFile(join(project, "server.js"), APP);
      const layers = await Promise.all(c.layers.map((e) => layerOf(e)));
      await writeFile(join(project, "base.tar"), await tarOf(ociLayoutFiles(layers)));
      await writeFile(join(project, "kiln.yaml"), `name: hostile\nversion: 1.0.0\nimage:\n  base: oci:base.tar:1\n  files: [server.js]\n  entrypoint: [/usr/local/bin/node]\n  cmd: [/server.js]\n`);
      const home = join(dir, "home");
      const before = await snapshot(dir, [home]);
      const r = kiln(["bake", "-f", join(project, "kiln.yaml")], project, home);
      assertCleanRefusal(r, "KILN_E_UNSAFE");
      assert.deepEqual(await snapshot(dir, [home]), before, "nothing outside KILN_HOME changed");
      const list = kiln(["images", "--json"], project, home);
      assert.doesNotMatch(list.stdout, /hostile/, "no image was stored");
    });
  }
});

describe("kiln validate refuses hostile values with a location", () => {
  const files: { name: string; yaml: string }[] = [
    { name: "a 99999999999h timeout", yaml: "health:\n  timeout: 99999999999h\n" },
    { name: "env PORT", yaml: 'env:\n  PORT: "1"\n' },
    { name: "a /proc volume", yaml: "volumes:\n  - {name: p, path: /proc/sys}\n" },
  ];
  for (const f of files) {
    test(f.name, async (t) => {
      const dir = await tempDir(t, "kiln-hostile-cli-");
      await writeFile(join(dir, "kiln.yaml"), `name: hostile\nversion: 1.0.0\nimage:\n  files: [server.js]\n${f.yaml}`);
      const r = kiln(["validate", "-f", join(dir, "kiln.yaml")], dir, join(dir, "home"));
      assertCleanRefusal(r, "KILN_E_SPEC");
      assert.match(r.stderr + r.stdout, /kiln\.yaml:\d+:\d+/);
    });
  }
});

// --env on the command line: usage errors (exit 2, nothing changed) and what validate says about
// an environment that tries to override the image. No daemons start here.

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { kiln } from "../../integration/support.js";

const BASE = `name: hello
version: 1.0.0
image:
  base: node
  files: [server.js]
  cmd: ["/usr/local/bin/node", "/app/server.js"]
`;

describe("--env on the command line", () => {
  const dir = mkdtempSync(join(tmpdir(), "kiln-env-cli-"));
  writeFileSync(join(dir, "server.js"), "");
  after(() => rmSync(dir, { recursive: true, force: true }));
  const write = (text: string) => writeFileSync(join(dir, "kiln.yaml"), text);

  it("--env without environments in kiln.yaml: exit 2, says so", async () => {
    write(BASE);
    const r = await kiln(["status", "--env", "staging"], { cwd: dir });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /KILN_E_USAGE: --env staging: kiln\.yaml declares no environments/);
    assert.equal(existsSync(join(dir, ".kiln", "env")), false, "nothing created");
  });

  it("an unknown environment (flag or KILN_ENV): exit 2 with a suggestion", async () => {
    write(`${BASE}environments:\n  staging: { listen: 127.0.0.1:18081 }\n  production: { listen: 127.0.0.1:18082 }\n`);
    const r = await kiln(["-e", "prod", "history"], { cwd: dir });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /unknown environment "prod"/);
    assert.match(r.stderr, /did you mean "production"\?/);
    const k = await kiln(["history"], { cwd: dir, env: { KILN_ENV: "qa" } });
    assert.equal(k.code, 2);
    assert.match(k.stderr, /unknown environment "qa"/);
  });

  it("validate: an environment overriding the image is refused at that key", async () => {
    write(`${BASE}environments:\n  production:\n    image: { base: node@24 }\n`);
    const r = await kiln(["validate"], { cwd: dir });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /kiln\.yaml:9:5 {2}environments\.production\.image: "image" cannot differ between environments/);
    assert.match(readFileSync(join(dir, "kiln.yaml"), "utf8"), /node@24/, "the file is untouched");
  });

  it("promote-release: refused without two environments, and with --env instead of --from/--to", async () => {
    write(BASE);
    const one = await kiln(["promote-release", "--to", "production"], { cwd: dir });
    assert.equal(one.code, 2);
    assert.match(one.stderr, /declares no environments|needs two environments/);
    write(`${BASE}environments:\n  staging: { listen: 127.0.0.1:18081 }\n  production: { listen: 127.0.0.1:18082 }\n`);
    const first = await kiln(["promote-release", "--to", "staging"], { cwd: dir });
    assert.equal(first.code, 2);
    assert.match(first.stderr, /staging is the first environment/);
    const env = await kiln(["promote-release", "--env", "staging", "--to", "production"], { cwd: dir });
    assert.equal(env.code, 2);
    assert.match(env.stderr, /takes --from and --to, not --env/);
    const nothing = await kiln(["promote-release", "--to", "production"], { cwd: dir });
    assert.equal(nothing.code, 2);
    assert.match(nothing.stderr, /KILN_E_POLICY[\s\S]*nothing is live in staging/);
  });
});

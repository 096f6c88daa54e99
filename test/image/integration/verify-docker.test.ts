// `kiln verify --docker` against a real Docker Engine: a container of the hello
// image (pushed to the local registry, pulled by Docker), labelled as an
// instance of the service, is clean until something is written into it outside
// its declared volume and /tmp (docker exec, the kind of hand edit immutable
// infrastructure forbids): then that path is a finding and the exit status is 1.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { loadSpec } from "../../../src/config/index.js";
import { bake, openStore } from "../../../src/image/index.js";
import { parseRegistryRef, pushImage } from "../../../src/image/registry/index.js";
import { recipeOf } from "../../../src/ops/recipe.js";
import { helloWorkspace } from "../../integration/support.js";
import { KILN_BIN as CLI } from "../../support/kiln-bin.js";
import { dockerSocket, registryAddress } from "../../support/services.js";

test("kiln verify --docker: a clean instance passes; a file written into it is drift (exit 1); its volume and /tmp are not", async (t) => {
  const reg = await registryAddress(t);
  if (!reg || !dockerSocket(t)) return;
  const ws = await helloWorkspace("kiln-verify-docker-");
  const RUN = randomBytes(4).toString("hex");
  const service = `verify-${RUN}`;
  const yaml = join(ws.dir, "kiln.yaml");
  await writeFile(yaml, (await readFile(yaml, "utf8")).replace(/^name: .*$/m, `name: ${service}`)); // it declares the volume /data
  const store = openStore(join(ws.dir, ".kiln"));
  const baked = await bake(recipeOf(loadSpec(yaml)), { store });
  const repo = `kiln-it/verify-${RUN}`;
  await pushImage(store, baked.ref, parseRegistryRef(`${reg}/${repo}:1`));
  const ref = `${reg}/${repo}@${baked.digest}`;
  const name = `kiln-verify-it-${RUN}`;
  t.after(() => {
    spawnSync("docker", ["rm", "-f", "-v", name], { stdio: "ignore", timeout: 30_000 });
    spawnSync("docker", ["rmi", ref], { stdio: "ignore", timeout: 30_000 });
    spawnSync("rm", ["-rf", ws.dir]);
  });
  const docker = (args: string[]) => spawnSync("docker", args, { encoding: "utf8", timeout: 120_000 });
  assert.equal(docker(["pull", ref]).status, 0);
  const run = docker(["run", "-d", "--name", name, "--network", "none", "--label", `dev.kiln.service=${service}`, "--label", "dev.kiln.instance=i-1", "--label", `dev.kiln.image-digest=${baked.digest}`, "-v", "/data", "--entrypoint", "/usr/local/bin/node", ref, "-e", "setInterval(() => {}, 1 << 30)"]);
  assert.equal(run.status, 0, run.stderr);
  const kiln = (args: string[]) => spawnSync(process.execPath, [CLI, "-f", yaml, ...args], { encoding: "utf8", timeout: 120_000 });

  const clean = kiln(["verify", "--docker", "--json"]);
  assert.equal(clean.status, 0, clean.stdout + clean.stderr);
  assert.deepEqual(JSON.parse(clean.stdout).containers.map((c: { instance: string; findings: unknown[] }) => [c.instance, c.findings]), [["i-1", []]]);

  // Writes where an instance may write (its volume, /tmp) are not drift; one in /app is.
  const exec = docker(["exec", "-u", "0", name, "/usr/local/bin/node", "-e", "const f=require('fs'); f.writeFileSync('/data/ok','1'); f.writeFileSync('/tmp/ok','1'); f.writeFileSync('/app/hotfix.js','1')"]);
  assert.equal(exec.status, 0, exec.stderr);
  const drift = kiln(["verify", "--docker"]);
  assert.equal(drift.status, 1, drift.stdout + drift.stderr);
  assert.match(drift.stdout, /^DRIFT i-1 .*: 1 change\n  added +\/app\/hotfix\.js$/m);
});

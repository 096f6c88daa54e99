// scripts/services.sh is eval'ed by .ci/run: its stdout must be export lines and nothing else,
// whatever the services' own tools print (pg_ctl's "Removed stale pid file." once failed CI
// with exit 127). Here every tool it calls is a stub that is noisy on stdout.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

const script = new URL("../../../../scripts/services.sh", import.meta.url).pathname;

function stubs(dir: string): string {
  const bin = join(dir, "bin");
  mkdirSync(bin);
  const stub = (name: string, body: string) => {
    writeFileSync(join(bin, name), `#!/usr/bin/env bash\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  };
  const up = (what: string) => `[ -e "${dir}/${what}.up" ]`;
  // Each service is down until its daemon is started, and every tool talks on stdout.
  stub("dockerd", `echo "dockerd starting (stdout noise)"; touch "${dir}/docker.up"`);
  stub("docker", `echo "Client: stub"; ${up("docker")}`);
  stub("docker-registry", `echo "registry: listening (stdout noise)"; touch "${dir}/registry.up"`);
  stub("curl", `echo '{}'; ${up("registry")}`);
  stub("pg_ctlcluster", `echo "Removed stale pid file."; touch "${dir}/pg.up"`);
  stub("pg_isready", `echo "127.0.0.1:5432 - accepting connections"; ${up("pg")}`);
  stub("su", `echo 1`);
  stub("nohup", `"$@"`);
  return bin;
}

test("services.sh prints only export lines on stdout, whatever the services print", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "kiln-services-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const bin = stubs(dir);
  mkdirSync(join(dir, "pg-etc", "15"), { recursive: true });
  const r = spawnSync("bash", [script, "start"], {
    encoding: "utf8",
    timeout: 30_000,
    env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, KILN_DOCKER_DIR: join(dir, "docker"), KILN_REGISTRY_DIR: join(dir, "registry"), KILN_PG_ETC: join(dir, "pg-etc") },
  });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.split("\n").filter((l) => l !== "");
  assert.deepEqual(lines, [
    `export DOCKER_HOST=unix://${join(dir, "docker")}/docker.sock`,
    "export KILN_TEST_REGISTRY=127.0.0.1:5000",
    "export KILN_TEST_PG=postgres://kiln:kiln@127.0.0.1:5432/kiln",
  ]);
  assert.match(r.stderr, /Removed stale pid file/, "the tools' own output goes to stderr, not away");
  // And what .ci/run does with it runs clean under `set -e`.
  const ev = spawnSync("bash", ["-euo", "pipefail", "-c", `eval "$(cat)"; echo "$KILN_TEST_PG"`], { input: r.stdout, encoding: "utf8" });
  assert.equal(ev.status, 0, ev.stderr);
  assert.equal(ev.stdout.trim(), "postgres://kiln:kiln@127.0.0.1:5432/kiln");
});

test("services.sh with an unknown verb exits 2 with usage, and prints nothing to eval", () => {
  const r = spawnSync("bash", [script, "restart"], { encoding: "utf8" });
  assert.equal(r.status, 2);
  assert.equal(r.stdout, "");
  assert.match(r.stderr, /usage/);
});

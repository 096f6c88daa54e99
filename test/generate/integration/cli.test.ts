// `kiln generate` through the real CLI (a subprocess, so this is integration): where the image comes from (the store,
// or --image), stdout versus -o DIR, refusing to overwrite, exit codes, help.

import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { resolveImageInfo } from "../../../src/ops/image-info.js";
import { canonicalBytes } from "../../../src/image/digest.js";
import { ANNOTATION, MEDIA_TYPE, openStore } from "../../../src/image/index.js";
import { loadSpec } from "../../../src/config/index.js";
import { helloCopy, run } from "../helpers.js";
import { KILN_BIN as kilnBin } from "../../support/kiln-bin.js";

const kiln = (args: string[], cwd: string, env: Record<string, string> = {}) => run([process.execPath, kilnBin, ...args], { cwd, env: { NO_COLOR: "1", KILN_HOME: "", ...env } });

/** A store holding hello:1.0.0 (a manifest with kiln's annotations; no layers are needed to generate). */
async function storeWithHello(home: string): Promise<string> {
  const store = openStore(home);
  const config = await store.putBlob(canonicalBytes({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } }));
  const manifest = await store.putBlob(
    canonicalBytes({
      schemaVersion: 2,
      mediaType: MEDIA_TYPE.manifest,
      config: { mediaType: MEDIA_TYPE.config, ...config },
      layers: [],
      annotations: {
        [ANNOTATION.created]: "2023-11-14T22:13:20Z",
        [ANNOTATION.revision]: "0123456789abcdef0123456789abcdef01234567",
        [ANNOTATION.timestampedName]: "hello-1.0.0-20231114221320",
        [ANNOTATION.version]: "1.0.0",
      },
    }),
  );
  await store.tag("hello:1.0.0", { mediaType: MEDIA_TYPE.manifest, ...manifest });
  return manifest.digest;
}

describe("image resolution", () => {
  test("NAME:VERSION from the store, with its created time, revision and name", async (t) => {
    const dir = helloCopy(t);
    const digest = await storeWithHello(join(dir, ".kiln"));
    const info = await resolveImageInfo(loadSpec(join(dir, "kiln.yaml")), { env: {} });
    assert.deepEqual(info, {
      repository: "hello",
      digest,
      reference: `hello@${digest}`,
      created: "2023-11-14T22:13:20Z",
      timestampedName: "hello-1.0.0-20231114221320",
      revision: "0123456789abcdef0123456789abcdef01234567",
    });
  });

  test("--image REPO@sha256:…: times from SOURCE_DATE_EPOCH when the store does not have it", async (t) => {
    const dir = helloCopy(t);
    const digest = `sha256:${"7".repeat(64)}`;
    const info = await resolveImageInfo(loadSpec(join(dir, "kiln.yaml")), { image: `registry.example.com:5000/team/hello:1.0.0@${digest}`, env: { SOURCE_DATE_EPOCH: "1700000000" } });
    assert.equal(info.repository, "registry.example.com:5000/team/hello");
    assert.equal(info.reference, `registry.example.com:5000/team/hello@${digest}`);
    assert.equal(info.created, "2023-11-14T22:13:20Z");
    assert.equal(info.timestampedName, "hello-1.0.0-20231114221320");
  });
});

describe("kiln generate", () => {
  test("no image baked: exit 2 and a hint to bake or pass --image; nothing created", (t) => {
    const dir = helloCopy(t);
    const r = kiln(["generate", "kubernetes"], dir);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /KILN_E_NOT_FOUND: no image hello:1\.0\.0/);
    assert.match(r.stderr, /kiln bake.*--image/);
    assert.deepEqual(readdirSync(dir).sort(), ["config", "kiln.yaml", "server.js"]);
  });

  test("a tag instead of a digest, or an unknown target: exit 2", (t) => {
    const dir = helloCopy(t);
    const tag = kiln(["generate", "kubernetes", "--image", "hello:1.0.0"], dir);
    assert.equal(tag.status, 2);
    assert.match(tag.stderr, /not pinned by digest/);
    const unknown = kiln(["generate", "kubernetess", "--image", `hello@sha256:${"1".repeat(64)}`], dir);
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /unknown target "kubernetess".*\n.*kubernetes/);
  });

  test("one file goes to stdout, byte-identical on every run", async (t) => {
    const dir = helloCopy(t);
    const digest = await storeWithHello(join(dir, ".kiln"));
    const a = kiln(["generate", "kubernetes"], dir);
    const b = kiln(["generate", "kubernetes"], dir, { SOURCE_DATE_EPOCH: "42" });
    assert.equal(a.status, 0, a.stderr);
    assert.equal(a.stdout, b.stdout, "the image's own created time is used, not the environment's");
    assert.match(a.stdout, new RegExp(`image: hello@${digest}`));
  });

  test("several files need -o; existing files are kept unless --force", async (t) => {
    const dir = helloCopy(t);
    await storeWithHello(join(dir, ".kiln"));
    const noDir = kiln(["generate", "aws-blue-green"], dir);
    assert.equal(noDir.status, 2);
    assert.match(noDir.stderr, /writes 2 files.*\n.*-o DIR/);

    const first = kiln(["generate", "aws-blue-green", "-o", "deploy/aws"], dir);
    assert.equal(first.status, 0, first.stderr);
    const out = join(dir, "deploy/aws");
    assert.deepEqual(readdirSync(out).sort(), ["cloudformation.yaml", "shift.sh"]);
    assert.equal(statSync(join(out, "shift.sh")).mode & 0o777, 0o755);
    const before = readFileSync(join(out, "cloudformation.yaml"), "utf8");

    writeFileSync(join(out, "shift.sh"), "# edited by hand\n");
    const again = kiln(["generate", "aws-blue-green", "-o", "deploy/aws"], dir);
    assert.equal(again.status, 2);
    assert.match(again.stderr, /refusing to overwrite 2 existing files/);
    assert.equal(readFileSync(join(out, "shift.sh"), "utf8"), "# edited by hand\n", "nothing was written");

    const forced = kiln(["generate", "aws-blue-green", "-o", "deploy/aws", "--force", "--json"], dir);
    assert.equal(forced.status, 0, forced.stderr);
    assert.deepEqual((JSON.parse(forced.stdout) as { written: string[] }).written.map((p) => p.slice(out.length + 1)), ["cloudformation.yaml", "shift.sh"]);
    assert.equal(readFileSync(join(out, "cloudformation.yaml"), "utf8"), before, "deterministic across runs");
    assert.notEqual(readFileSync(join(out, "shift.sh"), "utf8"), "# edited by hand\n");
  });

  test("help lists the targets and has examples", (t) => {
    const r = kiln(["generate", "--help"], helloCopy(t));
    assert.equal(r.status, 0);
    assert.match(r.stdout, /Examples?:/);
    for (const target of ["packer", "aws-asg", "aws-blue-green", "kubernetes", "argo-rollouts", "swarm", "nomad", "haproxy"]) assert.match(r.stdout, new RegExp(`\\n  ${target} `));
  });
});

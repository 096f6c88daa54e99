// derive/: the label vocabulary, volume names, the listen port and the health-check command.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { parseDocument } from "yaml";
import { batchOf, capacityOf, digestLabel, engineVolumeName, healthCheckCommand, LABEL, LEGACY_LABEL, limitsOf, listenPort, sharedVolumeName } from "../../src/derive/index.js";
import { parseSpec, type Spec } from "../../src/config/index.js";

const helloYaml = readFileSync(fileURLToPath(new URL("../../../examples/hello/kiln.yaml", import.meta.url)), "utf8");
function spec(edits: [string[], unknown][] = []): Spec {
  const doc = parseDocument(helloYaml);
  for (const [path, value] of edits) doc.setIn(path, value);
  const r = parseSpec(doc.toString(), "kiln.yaml");
  if (!("spec" in r)) throw new Error(`bad test spec: ${JSON.stringify(r.errors)}`);
  return r.spec;
}

describe("labels", () => {
  test("one name for the image digest; the Docker provider's old name is still read", () => {
    assert.equal(LABEL.digest, "dev.kiln.image-digest");
    assert.equal(digestLabel({ [LABEL.digest]: "sha256:new" }), "sha256:new");
    assert.equal(digestLabel({ [LEGACY_LABEL.digest]: "sha256:old" }), "sha256:old");
    assert.equal(digestLabel({ [LABEL.digest]: "sha256:new", [LEGACY_LABEL.digest]: "sha256:old" }), "sha256:new");
    assert.equal(digestLabel({}), undefined);
  });
  test("every name is distinct and in dev.kiln.", () => {
    const names: string[] = Object.values(LABEL);
    assert.equal(new Set(names).size, names.length);
    for (const n of [...names, ...Object.values(LEGACY_LABEL)]) assert.match(n, /^dev\.kiln\.[a-z-]+$/);
    assert.ok(!names.includes(LEGACY_LABEL.digest));
  });
});

describe("volume names", () => {
  test("engine volumes kiln owns are prefixed; platform-named ones are SERVICE-VOLUME", () => {
    assert.equal(engineVolumeName("hello", "data"), "kiln-hello-data");
    assert.equal(sharedVolumeName("hello", "data"), "hello-data");
  });
});

describe("spec settings", () => {
  test("listen port", () => {
    assert.equal(listenPort({ listen: "127.0.0.1:8080" }), 8080);
    assert.equal(listenPort({ listen: "[::1]:9000" }), 9000);
  });
  test("capacity and limits follow the active strategy", () => {
    const bg = spec([[["strategy", "type"], "blue-green"]]);
    assert.equal(capacityOf(bg).surge, bg.instances);
    assert.equal(limitsOf(bg).warmup, 0);
    const canary = spec([[["strategy", "type"], "canary"], [["strategy", "canary", "deadline"], "17m"]]);
    assert.equal(limitsOf(canary).deadline, 17 * 60_000);
  });
});

describe("batchOf", () => {
  // The rows of its doc comment.
  const rows: [string, { surge: number; maxUnavailable: number }, { parallelism: number; order: string }][] = [
    ["3 at 100/150", { surge: 1, maxUnavailable: 0 }, { parallelism: 1, order: "start-first" }],
    ["6 at 100/150", { surge: 3, maxUnavailable: 0 }, { parallelism: 3, order: "start-first" }],
    ["4 at 75/100", { surge: 0, maxUnavailable: 1 }, { parallelism: 1, order: "stop-first" }],
    ["4 at 75/125: the safe side", { surge: 1, maxUnavailable: 1 }, { parallelism: 1, order: "start-first" }],
    ["nothing may change at once: still one", { surge: 0, maxUnavailable: 0 }, { parallelism: 1, order: "stop-first" }],
  ];
  for (const [name, cap, want] of rows) test(name, () => assert.deepEqual(batchOf(cap), want));
});

describe("health-check command", () => {
  test("node base: an exec-form Node probe that prints what it saw", () => {
    const c = healthCheckCommand(spec());
    assert.deepEqual(c.slice(0, 3), ["CMD", "/usr/local/bin/node", "-e"]);
    const s = spec();
    assert.ok(c[3]!.includes(JSON.stringify(`http://127.0.0.1:${s.image.port}${s.health.path}`)));
    assert.ok(c[3]!.includes(`{timeout:${s.health.timeout}}`));
    assert.ok(c[3]!.includes('console.log("GET "+u+" "+s.statusCode)'));
  });
  test("another base: wget with whole seconds, rounded up", () => {
    const s = spec();
    const other = { ...s, image: { ...s.image, base: "oci:base.tar" }, health: { ...s.health, timeout: 2500 } };
    assert.deepEqual(healthCheckCommand(other), ["CMD", "wget", "-q", "-O", "/dev/null", "--timeout=3", `http://127.0.0.1:${s.image.port}${s.health.path}`]);
  });
});

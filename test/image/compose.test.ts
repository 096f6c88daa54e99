import assert from "node:assert/strict";
import { test } from "node:test";
import { parseBaseSource } from "../../src/image/base.js";
import { parseLdd } from "../../src/image/node-base.js";
import { composeAnnotations, composeConfig, composeManifest, DEFAULT_PATH, isoFromEpoch, mergeEnv, timestampedName, type ComposeInput } from "../../src/image/compose.js";
import { canonicalJson } from "../../src/image/digest.js";
import { nearbyTags } from "../../src/image/images.js";
import { resolveLinkTarget, unsafeEntryName } from "../../src/image/paths.js";

const D = (c: string) => `sha256:${c.repeat(64)}`;

function input(over: Partial<ComposeInput["recipe"]> = {}): ComposeInput {
  return {
    recipe: { name: "shop", version: "1.2.0", workdir: "/app", env: { B: "2", A: "3" }, entrypoint: [], cmd: ["/app/server.js"], user: "1000:1000", port: 8080, labels: { z: "1", a: "2" }, ...over },
    createdEpoch: 1_700_000_000,
    base: {
      name: "kiln/node:20",
      digest: D("b"),
      config: { architecture: "amd64", os: "linux", created: "1970-01-01T00:00:00Z", config: { Env: ["PATH=/bin", "A=1"], Entrypoint: ["/usr/local/bin/node"], Cmd: ["--version"] }, rootfs: { type: "layers", diff_ids: [D("1")] } },
      layers: [{ descriptor: { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: D("a"), size: 10 }, diffId: D("1") }],
    },
    layers: [{ role: "app", record: { descriptor: { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: D("c"), size: 5 }, diffId: D("2") } }],
  };
}

test("canonicalJson sorts keys at every depth and drops undefined", () => {
  assert.equal(canonicalJson({ b: 1, a: { d: [{ y: 1, x: 2 }], c: undefined } }), '{"a":{"d":[{"x":2,"y":1}]},"b":1}');
});

test("isoFromEpoch and timestampedName", () => {
  assert.equal(isoFromEpoch(0), "1970-01-01T00:00:00Z");
  assert.equal(isoFromEpoch(1_700_000_000), "2023-11-14T22:13:20Z");
  assert.equal(timestampedName("shop", "1.2.0", 1_700_000_000), "shop-1.2.0-20231114221320");
  assert.equal(timestampedName("team/shop", "1", 0), "team-shop-1-19700101000000");
});

test("mergeEnv", () => {
  const cases: [string[], Record<string, string>, string[]][] = [
    [["PATH=/bin", "A=1"], { B: "2", A: "3" }, ["PATH=/bin", "A=3", "B=2"]],
    [[], { Z: "1", A: "2" }, [`PATH=${DEFAULT_PATH}`, "A=2", "Z=1"]],
    [["A=1"], { PATH: "/x" }, ["A=1", "PATH=/x"]],
    [["A=1", "A=2"], {}, [`PATH=${DEFAULT_PATH}`, "A=1"]],
  ];
  for (const [base, env, want] of cases) assert.deepEqual(mergeEnv(base, env), want);
});

test("composeConfig: recipe over base, Docker entrypoint/cmd semantics, fixed history", () => {
  const c = composeConfig(input());
  assert.equal(c.created, "2023-11-14T22:13:20Z");
  assert.deepEqual(c.config?.Env, ["PATH=/bin", "A=3", "B=2", "KILN_IMAGE_VERSION=1.2.0"], "the image's own version is in its env");
  assert.deepEqual(c.config?.Entrypoint, ["/usr/local/bin/node"]);
  assert.deepEqual(c.config?.Cmd, ["/app/server.js"]);
  assert.deepEqual(c.config?.ExposedPorts, { "8080/tcp": {} });
  assert.deepEqual(Object.keys(c.config?.Labels ?? {}), ["a", "z"]);
  assert.deepEqual(c.rootfs.diff_ids, [D("1"), D("2")]);
  assert.deepEqual(c.history?.map((h) => h.created), ["1970-01-01T00:00:00Z", "2023-11-14T22:13:20Z"]);

  // own entrypoint: the base's Cmd no longer applies
  const own = composeConfig(input({ entrypoint: ["/bin/run"], cmd: [] }));
  assert.deepEqual(own.config?.Entrypoint, ["/bin/run"]);
  assert.equal(own.config?.Cmd, undefined);
  // nothing set: base Cmd stays
  assert.deepEqual(composeConfig(input({ cmd: [] })).config?.Cmd, ["--version"]);
  assert.equal(composeConfig(input({ port: 0 })).config?.ExposedPorts, undefined);
});

test("composeManifest: annotations, layer order, key order independent of input order", () => {
  const a = input();
  const m = composeManifest({ mediaType: "x", digest: D("f"), size: 3 }, a);
  assert.deepEqual(m.layers.map((l) => l.digest), [D("a"), D("c")]);
  assert.equal(m.config.mediaType, "application/vnd.oci.image.config.v1+json");
  assert.deepEqual(m.annotations, {
    "dev.kiln.timestamped-name": "shop-1.2.0-20231114221320",
    "org.opencontainers.image.base.digest": D("b"),
    "org.opencontainers.image.base.name": "kiln/node:20",
    "org.opencontainers.image.created": "2023-11-14T22:13:20Z",
    "org.opencontainers.image.ref.name": "shop:1.2.0",
    "org.opencontainers.image.title": "shop",
    "org.opencontainers.image.version": "1.2.0",
  });
  assert.equal(composeAnnotations(input({ revision: "abc123" }))["org.opencontainers.image.revision"], "abc123");
  const shuffled = input({ env: { A: "3", B: "2" }, labels: { a: "2", z: "1" } });
  assert.equal(canonicalJson(composeConfig(shuffled)), canonicalJson(composeConfig(a)));
});

test("parseBaseSource", () => {
  assert.deepEqual(parseBaseSource("node"), { kind: "node" });
  assert.deepEqual(parseBaseSource("oci:./base"), { kind: "oci", path: "./base" });
  assert.deepEqual(parseBaseSource("oci:/root/.kiln:shop:1.2"), { kind: "oci", path: "/root/.kiln", tag: "shop:1.2" });
  assert.deepEqual(parseBaseSource("docker-archive:img.tar"), { kind: "docker-archive", path: "img.tar" });
  for (const bad of ["ubuntu", "oci:", "docker:x", "oci:x:"]) assert.throws(() => parseBaseSource(bad), /base/);
});

test("parseLdd", () => {
  const out = [
    "\tlinux-vdso.so.1 (0x00007ffd)",
    "\tlibdl.so.2 => /lib/x86_64-linux-gnu/libdl.so.2 (0x00007f1)",
    "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2)",
    "\t/lib64/ld-linux-x86-64.so.2 (0x00007f3)",
    "\tlibgone.so => not found",
  ].join("\n");
  assert.deepEqual(parseLdd(out), {
    paths: ["/lib/x86_64-linux-gnu/libdl.so.2", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"],
    missing: ["libgone.so"],
  });
  assert.deepEqual(parseLdd("\tstatically linked\n"), { paths: [], missing: [] });
});

test("path safety helpers", () => {
  assert.equal(unsafeEntryName("usr/bin/x"), undefined);
  assert.equal(unsafeEntryName("./usr/bin/x"), undefined);
  assert.equal(unsafeEntryName("/etc/passwd"), "absolute path");
  assert.equal(unsafeEntryName("a/../../b"), '".." component');
  assert.deepEqual(resolveLinkTarget(["usr", "lib"], "../bin/x"), ["usr", "bin", "x"]);
  assert.deepEqual(resolveLinkTarget(["usr", "lib"], "/etc/x"), ["etc", "x"]);
  assert.equal(resolveLinkTarget(["usr"], "../../x"), undefined);
});

test("nearbyTags: same name first, then close names", () => {
  const refs = ["shop:1.0.0", "shop:1.1.0", "shoq:2", "billing:1", "sh:1"];
  assert.deepEqual(nearbyTags("shop:9", refs), ["shop:1.0.0", "shop:1.1.0", "shoq:2", "sh:1"]);
  assert.deepEqual(nearbyTags("zzzzzzzz:1", refs), []);
});

// The Docker provider's pure parts: what the engine is asked for, the image's port, the log
// stream, and engine errors as kiln errors.

import assert from "node:assert/strict";
import { test } from "node:test";
import { isKilnError } from "../../src/errors.js";
import { DEFAULT_CONTAINER_PORT, HOST_PORT_LABEL, badEnvName, demuxLogs, engineTime, imagePort, planContainer, planPrepContainer } from "../../src/providers/docker/container-plan.js";
import { layersToOmit, translateDockerError } from "../../src/providers/docker/engine.js";
import { planEngineGc } from "../../src/providers/docker/engine-gc.js";
import type { LaunchRequest } from "../../src/providers/provider.js";

const req: LaunchRequest = {
  instanceId: "hello-r2-1a2b3c",
  service: "hello",
  release: "r2",
  digest: `sha256:${"ab".repeat(32)}`,
  env: { DATA_DIR: "/data", PORT: "1", HOST: "127.0.0.1" },
  volumes: [{ name: "data", path: "/data" }],
};

test("planContainer: the engine image ID, the image user as numbers, hardening, 127.0.0.1 with an engine-picked port, labels, declared volumes only", () => {
  const plan = planContainer({ req, imageId: `sha256:${"cd".repeat(32)}`, uid: 1000, gid: 1001, containerPort: 8080, tmpSizeBytes: 1024 });
  assert.deepEqual(plan, {
    name: "kiln-hello-r2-1a2b3c",
    Image: `sha256:${"cd".repeat(32)}`,
    Hostname: "hello-r2-1a2b3c",
    User: "1000:1001",
    // PORT and HOST are the provider's: a declared value cannot move the app off its published port
    Env: ["DATA_DIR=/data", "PORT=8080", "HOST=0.0.0.0", "KILN_INSTANCE_ID=hello-r2-1a2b3c"],
    ExposedPorts: { "8080/tcp": {} },
    Labels: { "dev.kiln.service": "hello", "dev.kiln.release": "r2", "dev.kiln.image-digest": req.digest, "dev.kiln.instance": "hello-r2-1a2b3c" },
    HostConfig: {
      ReadonlyRootfs: true,
      Tmpfs: { "/tmp": "rw,nosuid,nodev,size=1024" },
      CapDrop: ["ALL"],
      SecurityOpt: ["no-new-privileges"],
      Init: true,
      PortBindings: { "8080/tcp": [{ HostIp: "127.0.0.1", HostPort: "" }] },
      Mounts: [{ Type: "volume", Source: "kiln-hello-data", Target: "/data", ReadOnly: false }],
      RestartPolicy: { Name: "no" },
      LogConfig: { Type: "json-file", Config: { "max-size": "10m", "max-file": "2" } },
    },
  });
});

test("planPrepContainer: never started, no network, the volumes under /kiln-volumes, not labelled as an instance", () => {
  const plan = planPrepContainer(req, "sha256:x");
  assert.equal(plan.name, "kiln-hello-r2-1a2b3c-prep");
  assert.equal(plan.NetworkDisabled, true);
  assert.deepEqual(plan.HostConfig?.Mounts, [{ Type: "volume", Source: "kiln-hello-data", Target: "/kiln-volumes/data", ReadOnly: false }]);
  assert.equal(plan.Labels?.["dev.kiln.instance"], undefined, "list() never reports it");
  assert.equal(plan.Labels?.["dev.kiln.service"], "hello");
});

test("imagePort: the lowest declared TCP port, else the default", () => {
  assert.equal(imagePort({ ExposedPorts: { "9090/tcp": {}, "8080/tcp": {}, "53/udp": {} } }), 8080);
  assert.equal(imagePort({ ExposedPorts: { "53/udp": {} } }), DEFAULT_CONTAINER_PORT);
  assert.equal(imagePort({}), DEFAULT_CONTAINER_PORT);
});

test("badEnvName: names the engine cannot pass", () => {
  assert.equal(badEnvName({ A: "x=y z" }), undefined);
  assert.equal(badEnvName({ "A=B": "x" }), "A=B");
  assert.equal(badEnvName({ "": "x" }), "");
  assert.equal(badEnvName({ A: "a\0b" }), "A");
});

test("engineTime: the engine's zero time is no time", () => {
  assert.equal(engineTime("0001-01-01T00:00:00Z"), undefined);
  assert.equal(engineTime(undefined), undefined);
  assert.equal(engineTime("2024-05-01T10:00:00.123456789Z"), Date.UTC(2024, 4, 1, 10, 0, 0, 123));
});

test("demuxLogs: stdout and stderr frames in order; raw output as is", () => {
  const frame = (kind: number, text: string) => {
    const body = Buffer.from(text);
    const h = Buffer.alloc(8);
    h[0] = kind;
    h.writeUInt32BE(body.length, 4);
    return Buffer.concat([h, body]);
  };
  assert.equal(demuxLogs(Buffer.concat([frame(1, "out 1\n"), frame(2, "err\n"), frame(1, "out 2\n")])), "out 1\nerr\nout 2\n");
  assert.equal(demuxLogs(Buffer.from("plain tty output\n")), "plain tty output\n");
  assert.equal(demuxLogs(Buffer.alloc(0)), "");
});

test("translateDockerError: unreachable engine, taken port and missing image each say what to do", () => {
  const unreachable = translateDockerError(Object.assign(new Error("connect ENOENT /x.sock"), { code: "ENOENT" }), "list instances");
  assert.ok(isKilnError(unreachable));
  assert.equal(unreachable.code, "KILN_E_PROVIDER");
  assert.match(unreachable.message, /could not list instances: the Docker Engine is unreachable/);
  assert.match(unreachable.hint ?? "", /DOCKER_HOST/);

  const port = translateDockerError({ statusCode: 500, json: { message: "driver failed programming external connectivity: Bind for 127.0.0.1:8080 failed: port is already allocated" } }, "start hello-1");
  assert.match(port.message, /a host port is taken/);
  assert.ok(port.hint);

  const image = translateDockerError({ statusCode: 404, json: { message: "No such image: sha256:abc" } }, "create hello-1");
  assert.match(image.message, /no such image/);
  assert.match(image.hint ?? "", /kiln bake|re-run the deploy/);
});

test("layersToOmit: the longest leading run some engine image starts with, less diff IDs needed again above it", () => {
  const rows: { image: string[]; engine: string[][]; omit: string[] }[] = [
    { image: ["a", "b", "c"], engine: [["a", "b", "x"]], omit: ["a", "b"] },
    { image: ["a", "b", "c"], engine: [["x", "b", "c"], ["a"]], omit: ["a"] },
    { image: ["a", "b", "c"], engine: [["a", "b", "c"]], omit: ["a", "b", "c"] },
    { image: ["a", "b", "a"], engine: [["a"]], omit: [] },
    { image: ["a", "b"], engine: [], omit: [] },
    // an engine image longer than ours that starts with all of it
    { image: ["a"], engine: [["a", "b", "c"]], omit: ["a"] },
    // the best of several partial matches wins
    { image: ["a", "b", "c", "d"], engine: [["a"], ["a", "b", "c", "y"], ["a", "b"]], omit: ["a", "b", "c"] },
    { image: [], engine: [["a"]], omit: [] },
  ];
  for (const r of rows) assert.deepEqual([...layersToOmit(r.image, r.engine)].sort(), r.omit, JSON.stringify(r));
});

test("planContainer in the host's network: no hostname, nothing published, the chosen port in PORT and a label, HOST=127.0.0.1", () => {
  const plan = planContainer({ req: { ...req, network: "host" }, imageId: `sha256:${"cd".repeat(32)}`, uid: 1000, gid: 1001, containerPort: 41234, hostNetwork: true, tmpSizeBytes: 1024 });
  assert.equal(plan.Hostname, undefined, "the engine refuses a hostname with the host's network");
  assert.equal(plan.ExposedPorts, undefined);
  assert.deepEqual(plan.Env, ["DATA_DIR=/data", "PORT=41234", "HOST=127.0.0.1", "KILN_INSTANCE_ID=hello-r2-1a2b3c"]);
  assert.equal(plan.Labels?.[HOST_PORT_LABEL], "41234");
  assert.equal(plan.HostConfig?.NetworkMode, "host");
  assert.equal(plan.HostConfig?.PortBindings, undefined);
  // the hardening is the same as on a bridge
  const bridge = planContainer({ req, imageId: `sha256:${"cd".repeat(32)}`, uid: 1000, gid: 1001, containerPort: 8080, tmpSizeBytes: 1024 });
  const { NetworkMode: _n, ...hostRest } = plan.HostConfig!;
  const { PortBindings: _p, ...bridgeRest } = bridge.HostConfig!;
  assert.deepEqual(hostRest, bridgeRest);
});

test("planEngineGc: only kiln's images, kept when pinned, tagged or used by a container, removed otherwise", () => {
  const id = (c: string) => `sha256:${c.repeat(64)}`;
  const plan = planEngineGc(
    [
      { id: id("f"), tags: [], ours: false, containers: [] },
      { id: id("a"), tags: [], ours: true, containers: [] },
      { id: id("b"), tags: ["web:1"], ours: true, containers: [] },
      { id: id("c"), tags: [], ours: true, containers: ["kiln-web-r3-a1b2"] },
      { id: id("d"), tags: [], ours: true, containers: [] },
      { id: id("e"), tags: ["x:1"], ours: true, containers: ["c1", "c2"] },
    ],
    new Map([[id("a"), ["release r7 (live)"]], [id("e"), ["instance web-r2-1 runs it"]]]),
  );
  assert.deepEqual(plan, {
    remove: [id("d")],
    keep: [
      { id: id("a"), reasons: ["release r7 (live)"] },
      { id: id("b"), reasons: ["tagged web:1 in the engine"] },
      { id: id("c"), reasons: ["used by container kiln-web-r3-a1b2"] },
      { id: id("e"), reasons: ["instance web-r2-1 runs it", "tagged x:1 in the engine", "used by container c1", "used by container c2"] },
    ],
  });
});

// The CLI's contracts: validate's report and exit code, reproducible bakes in two stores,
// immutable tags, exports another tool (skopeo) accepts, and clear errors for bad input.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { appendFileSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { helloWorkspace, kiln, requireTool } from "./support.js";

let ws: Awaited<ReturnType<typeof helloWorkspace>>;
const scratch = mkdtempSync(join(tmpdir(), "kiln-cli-"));
const epoch = { SOURCE_DATE_EPOCH: "1700000000" };

const has = (cmd: string, args: string[]) => {
  try {
    execFileSync(cmd, args, { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
};

before(async () => {
  ws = await helloWorkspace("kiln-cli-ws-");
});
after(() => {
  rmSync(ws.dir, { recursive: true, force: true });
  rmSync(scratch, { recursive: true, force: true });
});

test("validate lists every problem with file:line:col and exits 2, changing nothing", async () => {
  const file = join(scratch, "broken.yaml");
  writeFileSync(
    file,
    [
      "name: Hello_World",
      "version: 1.0.0",
      "instnces: 3",
      "image:",
      "  user: root",
      "health:",
      "  interval: 5 min",
      "strategy:",
      "  type: blue-gren",
      "  rolling:",
      "    minHealthyPercent: 120",
      "",
    ].join("\n"),
  );
  const r = await kiln(["validate", "-f", file], { cwd: scratch });
  assert.equal(r.code, 2, r.stderr);
  assert.equal(r.stdout, "");
  for (const [line, key] of [
    [1, "name"],
    [3, "instnces"],
    [5, "image.user"],
    [7, "health.interval"],
    [9, "strategy.type"],
    [11, "strategy.rolling.minHealthyPercent"],
  ] as const) {
    assert.match(r.stderr, new RegExp(`broken\\.yaml:${line}:\\d+\\s+${key.replace(/\./g, "\\.")}:`), `expected ${key} at line ${line} in:\n${r.stderr}`);
  }
  assert.match(r.stderr, /did you mean "instances"/);
  assert.match(r.stderr, /did you mean "blue-green"/);
  const j = await kiln(["validate", "-f", file, "--json"], { cwd: scratch });
  assert.equal(j.code, 2);
  assert.ok(JSON.parse(j.stdout).problems.length >= 6);
});

test("the same inputs bake the same digest in two different stores, on 1 thread and on 2; gzip -t reads the multi-member runtime layer", async (t) => {
  const digests: string[] = [];
  const results: { threads: number; layers: { role: string; digest: string; diffId: string; size: number }[] }[] = [];
  for (const [store, threads] of [["a", "1"], ["b", "2"]] as const) {
    // The machine's layer cache off: each store gzips the runtime layer itself, on its own thread count.
    const r = await kiln(["bake", "--json"], { cwd: ws.dir, env: { ...epoch, KILN_HOME: join(scratch, `store-${store}`), KILN_BAKE_THREADS: threads, KILN_LAYER_CACHE: "off" } });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    digests.push(out.digest);
    results.push(out);
  }
  assert.equal(digests[0], digests[1]);
  assert.deepEqual(results.map((r) => r.threads), [1, 2]);
  assert.deepEqual(results[0]!.layers, results[1]!.layers);
  // The runtime layer (~100 MB of tar) is many 1 MiB gzip members: gzip itself checks every member's CRC and length.
  const runtime = results[1]!.layers.find((l) => l.role === "base")!;
  assert.ok(runtime.size > 8 << 20, `the runtime layer is ${runtime.size} bytes`);
  if (requireTool(has("gzip", ["--version"]), "gzip is not installed", t)) {
    const blob = join(scratch, "store-b", "blobs/sha256", runtime.digest.slice(7));
    execFileSync("gzip", ["-t", blob], { stdio: "pipe" });
    const sum = execFileSync("sh", ["-c", 'gzip -dc "$1" | sha256sum', "sh", blob]).toString().split(" ")[0];
    assert.equal(`sha256:${sum}`, runtime.diffId);
  }
  const again = await kiln(["bake", "--json"], { cwd: ws.dir, env: { ...epoch, KILN_HOME: join(scratch, "store-a") } });
  assert.equal(JSON.parse(again.stdout).cached, true);
});

test("a tag never moves: changed inputs under the same version are refused with exit 2", async () => {
  const home = join(scratch, "store-a");
  appendFileSync(join(ws.dir, "server.js"), "\n// a change\n");
  const r = await kiln(["bake"], { cwd: ws.dir, env: { ...epoch, KILN_HOME: home } });
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /KILN_E_TAG_IMMUTABLE/);
  const imgs = JSON.parse((await kiln(["images", "--json"], { cwd: ws.dir, env: { KILN_HOME: home } })).stdout) as { images: { ref: string }[] };
  assert.deepEqual(imgs.images.map((i) => i.ref), ["hello:1.0.0"]);
});

test("exports are accepted by skopeo in both formats", async (t) => {
  if (!requireTool(has("skopeo", ["--version"]), "skopeo is not installed (apt-get install skopeo)", t)) return;
  const home = join(scratch, "store-b");
  for (const [format, transport] of [["oci", "oci-archive"], ["docker-archive", "docker-archive"]] as const) {
    const out = join(scratch, `hello.${format}.tar`);
    const r = await kiln(["export", "hello:1.0.0", "--format", format, "-o", out], { cwd: ws.dir, env: { KILN_HOME: home } });
    assert.equal(r.code, 0, r.stderr);
    const info = JSON.parse(execFileSync("skopeo", ["inspect", `${transport}:${out}`]).toString()) as { Layers: string[]; Labels?: Record<string, string> };
    assert.ok(info.Layers.length >= 2, `${format}: ${JSON.stringify(info)}`);
  }
});

test("image.compression: none bakes plain-tar layers that skopeo reads in both export formats; kiln push refuses them with exit 2", async (t) => {
  const dir = mkdtempSync(join(scratch, "plain-"));
  for (const f of ["server.js", "config", "kiln.yaml"]) cpSync(join(ws.dir, f), join(dir, f), { recursive: true });
  const yaml = readFileSync(join(dir, "kiln.yaml"), "utf8");
  writeFileSync(join(dir, "kiln.yaml"), yaml.replace(/^image:\n/m, "image:\n  compression: none\n"));
  const home = join(scratch, "store-plain");
  const r = await kiln(["bake", "--json"], { cwd: dir, env: { ...epoch, KILN_HOME: home } });
  assert.equal(r.code, 0, r.stderr);
  const baked = JSON.parse(r.stdout) as { digest: string; layers: { role: string; digest: string; diffId: string }[] };
  assert.ok(baked.layers.length >= 3);
  for (const l of baked.layers) assert.equal(l.digest, l.diffId, `${l.role}: a plain tar's digest is its diff_id`);
  if (requireTool(has("skopeo", ["--version"]), "skopeo is not installed (apt-get install skopeo)", t)) {
    for (const [format, transport] of [["oci", "oci-archive"], ["docker-archive", "docker-archive"]] as const) {
      const out = join(scratch, `plain.${format}.tar`);
      const e = await kiln(["export", "hello:1.0.0", "--format", format, "-o", out], { cwd: dir, env: { KILN_HOME: home } });
      assert.equal(e.code, 0, e.stderr);
      const info = JSON.parse(execFileSync("skopeo", ["inspect", "--raw", `${transport}:${out}`]).toString()) as { layers?: { mediaType: string }[]; Layers?: unknown };
      if (format === "oci") assert.ok(info.layers!.every((l) => l.mediaType === "application/vnd.oci.image.layer.v1.tar"), JSON.stringify(info));
    }
  }
  const push = await kiln(["push", "hello:1.0.0", "127.0.0.1:9/kiln/plain"], { cwd: dir, env: { KILN_HOME: home } });
  assert.equal(push.code, 2, push.stdout + push.stderr);
  assert.match(push.stderr, /uncompressed layers/);
  assert.match(push.stderr, /image\.compression/);
});

test("bad input gets a clear error and exit 2; an unreachable controller gets exit 1 and a hint", async () => {
  const bad = await kiln(["deploy", "--strategy", "sideways"], { cwd: ws.dir });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown strategy "sideways"/);
  const missing = await kiln(["status", "-f", join(scratch, "nope.yaml")], { cwd: ws.dir });
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /no kiln.yaml/);
  // (`kiln status` answers "not running" instead: test/cli/integration/rough-edges.test.ts)
  const down = await kiln(["history"], { cwd: ws.dir, env: { KILN_HOME: join(scratch, "store-a") } });
  assert.equal(down.code, 1);
  assert.match(down.stderr, /controller unreachable[\s\S]*kiln up/);
  const unknown = await kiln(["frobnicate"], { cwd: ws.dir });
  assert.equal(unknown.code, 2);
});

test("every verb has --help with an example", async () => {
  for (const verb of ["validate", "schema", "bake", "images", "export", "up", "down", "deploy", "rollback", "scale", "status", "history", "logs", "demo", "promote", "promote-release", "drill", "rollout watch", "completion"]) {
    const r = await kiln([...verb.split(" "), "--help"], { cwd: scratch });
    assert.equal(r.code, 0, `${verb}: ${r.stderr}`);
    assert.match(r.stdout, /Example/, `${verb} --help has an example`);
  }
});

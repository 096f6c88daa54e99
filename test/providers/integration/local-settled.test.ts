// The local provider's listing of exited instances whose exit is fully handled: answered from
// memory after the first listing that settles them (no directory read on every controller pass),
// and still exactly what a listing from their directories says.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LocalProvider } from "../../../src/providers/local/index.js";
import type { LaunchRequest } from "../../../src/providers/provider.js";
import { APP_GID, APP_UID, buildTestRootfs } from "../local-fixtures.js";

const haveBwrap = spawnSync("bwrap", ["--version"]).status === 0;
const skip = haveBwrap ? undefined : "needs bubblewrap (apt-get install bubblewrap)";
if (skip && process.env.KILN_REQUIRE_ALL === "1") throw new Error(`KILN_REQUIRE_ALL=1 but this test ${skip}`);

let base = "";
let rootfs = "";
before(() => {
  if (skip) return;
  base = mkdtempSync(join(tmpdir(), "kiln-settled-test-"));
  rootfs = join(base, "rootfs");
  mkdirSync(rootfs, { mode: 0o700 });
  buildTestRootfs(rootfs);
});
after(() => {
  if (base) rmSync(base, { recursive: true, force: true });
});

const provider = (home: string) =>
  new LocalProvider({
    home,
    sandbox: "bwrap",
    rootfs: async () => rootfs,
    imageConfig: async () => ({ env: ["PATH=/usr/local/bin:/usr/bin:/bin"], entrypoint: ["/usr/local/bin/node"], cmd: ["/app/crash.mjs"], user: `${APP_UID}:${APP_GID}`, workdir: "/app" }),
    log: () => undefined,
  });
const req = (instanceId: string): LaunchRequest => ({ instanceId, service: "hello", release: "r1", digest: "sha256:" + "cd".repeat(32), env: {}, volumes: [] });

async function exitedOf(p: LocalProvider, id: string) {
  for (let i = 0; i < 400; i++) {
    const seen = (await p.list("hello")).find((x) => x.id === id);
    if (seen?.state === "exited" && seen.exitCode !== null) return seen;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${id} was not seen exited`);
}

test("an exited instance is listed the same from memory as from its directory, and forgotten with its directory", { skip }, async () => {
  const home = join(base, "home");
  const p = provider(home);
  await p.launch(req("crash-1"));
  const first = await exitedOf(p, "crash-1");
  assert.equal(first.exitCode, 3);
  await p.terminate("crash-1", { graceMs: 100 });

  const again = (await p.list("hello")).find((x) => x.id === "crash-1");
  const fresh = (await provider(home).list("hello")).find((x) => x.id === "crash-1");
  assert.deepEqual(again, first);
  assert.deepEqual(fresh, first, "a provider that reads the directory says the same");
  assert.deepEqual(await p.list("another-service"), []);

  // what a caller does with a listed object is its own
  again!.exitCode = 99;
  assert.equal((await p.list("hello")).find((x) => x.id === "crash-1")?.exitCode, 3);

  // the directory goes behind the provider's back (another controller's removeRecord): gone from the listing,
  // and the same id launched again is a new instance
  rmSync(join(home, "instances", "crash-1"), { recursive: true, force: true });
  assert.deepEqual(await p.list("hello"), []);
  const relaunched = await p.launch(req("crash-1"));
  assert.notEqual(relaunched.pid, first.pid);
  const second = await exitedOf(p, "crash-1");
  assert.equal(second.pid, relaunched.pid);
  assert.equal(second.exitCode, 3);
  await p.terminate("crash-1", { graceMs: 100 });
  await p.removeRecord("crash-1");
  assert.deepEqual(await p.list("hello"), []);
});

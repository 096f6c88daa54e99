// kiln.yaml `resources` through the controller (issue 12), in the fake world: each launch asks
// the provider for the live release's limits, and `kiln status` says them and how the provider
// enforces them.

import assert from "node:assert/strict";
import { test } from "node:test";
import type { LaunchRequest } from "../../src/providers/provider.js";
import { deployReq, releaseSpec, world } from "./fake-world.js";

test("a release's resources reach every launch, and status names them with the provider's enforcement", async () => {
  const w = world();
  const asked: LaunchRequest[] = [];
  const launch = w.provider.launch.bind(w.provider);
  w.provider.launch = (req) => {
    asked.push(req);
    return launch(req);
  };
  Object.assign(w.provider, { limitsEnforcement: () => "cgroup-v1" });
  const resources = { memoryBytes: 64 * 1024 * 1024, pids: 64 };
  w.controller.deploy(deployReq("r1", releaseSpec({ instances: 2, resources })));
  await w.run(() => w.controller.liveRelease()?.id === "r1" && w.db.activeRollout("svc") === undefined);
  assert.ok(asked.length >= 2);
  for (const req of asked) assert.deepEqual(req.resources, resources);
  assert.deepEqual((await w.controller.status()).limits, { enforcement: "cgroup-v1", resources: "memory 64Mi, pids 64" });
});

test("without resources: launches carry none; a provider that enforces nothing adds no limits to status", async () => {
  const w = world();
  const asked: LaunchRequest[] = [];
  const launch = w.provider.launch.bind(w.provider);
  w.provider.launch = (req) => {
    asked.push(req);
    return launch(req);
  };
  w.controller.deploy(deployReq("r1", releaseSpec({ instances: 1 })));
  await w.run(() => w.controller.liveRelease()?.id === "r1" && w.db.activeRollout("svc") === undefined);
  assert.ok(asked.length >= 1);
  for (const req of asked) assert.equal("resources" in req, false);
  assert.equal((await w.controller.status()).limits, undefined);
});

test("an instance killed at its memory limit: the exit event carries the provider's log line that says so", async () => {
  const { mkdtempSync, writeFileSync, rmSync } = await import("node:fs");
  const { join } = await import("node:path");
  const { tmpdir } = await import("node:os");
  const { exitMessage } = await import("../../src/controller/observe.js");
  const { limitHitsLine } = await import("../../src/providers/local/limits.js");
  const dir = mkdtempSync(join(tmpdir(), "kiln-exit-event-"));
  try {
    const log = join(dir, "log");
    const line = limitHitsLine({ oomKills: 1, pidsRefused: 0 }, { memoryBytes: 96 * 1024 * 1024 })!;
    writeFileSync(log, `[kiln] 2026-12-03T00:00:00.000Z launching i1 (svc, sha256:…) on 127.0.0.1:1, limits memory 96Mi (cgroup-v1)\napp started\n[kiln] 2026-12-03T00:00:01.000Z ${line}\n`);
    const m = exitMessage("i1", 137, log);
    assert.match(m, /^instance i1 exited \(exit code 137, signal 9\); its log ends: .*resources: the kernel killed 1 process at the memory limit \(96Mi\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("status says the provider's sandbox and each instance's network; a question the provider cannot answer now is left out", async () => {
  const w = world();
  w.controller.deploy(deployReq("r1", releaseSpec({ instances: 2 })));
  await w.run(() => w.controller.liveRelease()?.id === "r1" && w.db.activeRollout("svc") === undefined);
  // The fake world's provider isolates nothing: no sandbox line, no network.
  let s = await w.controller.status();
  assert.equal(s.sandbox, undefined);
  assert.ok(s.instances.every((i) => i.network === undefined));
  Object.assign(w.provider, { sandboxKind: () => "bwrap", networkOf: (id: string) => `private (own namespace) for ${id}` });
  s = await w.controller.status();
  assert.equal(s.sandbox, "bwrap");
  assert.deepEqual(s.instances.map((i) => i.network), s.instances.map((i) => `private (own namespace) for ${i.id}`));
  // bubblewrap removed since: the provider throws when asked, status still answers, without the line.
  Object.assign(w.provider, {
    sandboxKind: () => {
      throw new Error("bubblewrap is not installed");
    },
  });
  s = await w.controller.status();
  assert.equal(s.sandbox, undefined);
  assert.equal(s.instances.length, 2);
});

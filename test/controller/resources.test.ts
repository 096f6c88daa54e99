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

// kiln.yaml secrets in the controller, in the fake world: values reach each launch with the
// declared env and never state; skipMatching keeps instances while the secrets' digest is equal
// and replaces them when it changes; a restarted controller reads the sources again and launches
// only with the values the release was deployed with.

import assert from "node:assert/strict";
import { test } from "node:test";
import type { ReleaseSettings } from "../../src/controller/types.js";
import type { LaunchRequest } from "../../src/providers/provider.js";
import { computeSecretsDigest, SecretKeeper } from "../../src/secrets/index.js";
import { deployReq, releaseSpec, world } from "./fake-world.js";

const key = Buffer.alloc(32, 9);
const sources = { TOKEN: { fromEnv: "KILN_T" } };

function setup(controllerEnv: NodeJS.ProcessEnv) {
  const env = { ...controllerEnv };
  const w = world(undefined, { secrets: () => new SecretKeeper({ key: () => key, env }) });
  const launched: LaunchRequest[] = [];
  const launch = w.provider.launch.bind(w.provider);
  w.provider.launch = (req) => {
    launched.push(req);
    return launch(req);
  };
  return { w, launched, env };
}

const spec = (value: string): ReleaseSettings =>
  releaseSpec(
    { env: { PLAIN: "p" }, secrets: { sources, digest: computeSecretsDigest(key, { TOKEN: value }) } },
    { rolling: { minHealthyPercent: 100, maxHealthyPercent: 150, instanceWarmup: 100, deadline: 60_000, autoRollback: true, skipMatching: true } },
  );
const settled = (w: ReturnType<typeof world>) => () => w.db.activeRollout("svc") === undefined;

test("secret values join the env of each launch and are in no state row", async () => {
  const { w, launched } = setup({});
  w.controller.deploy({ ...deployReq("v1", spec("marker-v1")), secretValues: { TOKEN: "marker-v1" } });
  await w.run(settled(w));
  assert.equal(w.controller.liveRelease()?.id, "r1");
  assert.equal(launched.length, 3);
  for (const r of launched) assert.deepEqual(r.env, { PLAIN: "p", TOKEN: "marker-v1" });
  const rows = JSON.stringify([w.db.getRelease("r1"), w.db.events("svc", 0), w.db.liveInstances("svc")]);
  assert.ok(!rows.includes("marker-v1"), "no value in releases, events or instances");
  assert.ok(rows.includes("hmac-sha256:"), "the release records the digest");
});

test("skipMatching: equal secrets keep the instances, a changed secret replaces them", async () => {
  const { w, launched } = setup({});
  w.controller.deploy({ ...deployReq("v1", spec("a")), secretValues: { TOKEN: "a" } });
  await w.run(settled(w));
  w.controller.deploy({ ...deployReq("v1", spec("a")), ref: "svc:v1-again", secretValues: { TOKEN: "a" } });
  await w.run(settled(w));
  assert.equal(launched.length, 3, "same digest, config and secrets: nothing launched");
  w.controller.deploy({ ...deployReq("v1", spec("b")), ref: "svc:v1-rotated", secretValues: { TOKEN: "b" } });
  await w.run(settled(w));
  assert.equal(w.controller.liveRelease()?.id, "r3");
  assert.equal(launched.length, 6, "a changed secret replaced every instance");
  assert.ok(launched.slice(3).every((r) => r.env.TOKEN === "b"));
});

test("a deploy whose values do not match the digest is refused before anything is recorded", () => {
  const { w } = setup({});
  assert.throws(() => w.controller.deploy({ ...deployReq("v1", spec("a")), secretValues: { TOKEN: "other" } }), /does not match/);
  assert.equal(w.db.getRelease("r1"), undefined);
});

test("after a restart the sources are read again: same values heal, changed values do not launch", async () => {
  const { w, launched, env } = setup({ KILN_T: "a" });
  w.controller.deploy({ ...deployReq("v1", spec("a")), secretValues: { TOKEN: "a" } });
  await w.run(settled(w));
  w.restart();
  await w.controller.adopt();
  w.provider.crash(w.provider.running()[0]!.id);
  await w.run(() => w.provider.running().length === 3 && launched.length === 4);
  assert.equal(launched[3]!.env.TOKEN, "a", "healed with the value read again from the controller's environment");

  env.KILN_T = "changed";
  w.restart();
  await w.controller.adopt();
  w.provider.crash(w.provider.running()[0]!.id);
  await w.run(() => w.db.events("svc", 0).some((e) => /secrets changed since it was deployed/.test(e.message)), { maxTicks: 400 });
  const refusal = w.db.events("svc", 0).find((e) => /secrets changed since it was deployed/.test(e.message));
  assert.ok(refusal, "the refusal is an event");
  assert.equal(launched.length, 4, "no instance launched with values the release was not deployed with");
  assert.ok(!JSON.stringify(w.db.events("svc", 0)).includes("changed\""), "the new value is in no event");
});

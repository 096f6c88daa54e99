// `kiln gc` with the Docker provider on the real Docker Engine ($DOCKER_HOST): the engine images
// kiln loaded that nothing pins are removed with the store's; the live release's image, one
// somebody tagged, one a container was created from and one of another kiln home stay. A dry
// run removes nothing. Crafted images keep this run apart from anything else on the engine.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { homePaths } from "../../../src/home.js";
import { gcHome } from "../../../src/doctor/index.js";
import { openStore } from "../../../src/image/index.js";
import { connectDocker, ensureImage, hasImage } from "../../../src/providers/docker/engine.js";
import { dockerSocket } from "../../support/services.js";
import { addRelease, SERVICE, withDb } from "../../doctor/helpers.js";
import { craftedImage, layerTar } from "../crafted-images.js";

test("kiln gc (provider docker) removes the engine images no kept release needs, and only those", async (t: TestContext) => {
  const socket = dockerSocket(t);
  if (!socket) return;
  const docker = connectDocker(socket);
  const home = mkdtempSync(join(tmpdir(), "kiln-engine-gc-"));
  const other = mkdtempSync(join(tmpdir(), "kiln-engine-gc-other-"));
  const store = openStore(home);
  const ids: string[] = [];
  const containers: string[] = [];
  const tag = `kiln-engine-gc-it:${randomBytes(3).toString("hex")}`;
  t.after(async () => {
    for (const c of containers) await docker.getContainer(c).remove({ force: true }).catch(() => undefined);
    await docker.getImage(tag).remove().catch(() => undefined);
    for (const id of ids) await docker.getImage(id).remove().catch(() => undefined);
    rmSync(home, { recursive: true, force: true });
    rmSync(other, { recursive: true, force: true });
  });
  const nonce = randomBytes(8).toString("hex");
  const base = await layerTar({ "base.txt": Buffer.from(`base ${nonce}\n`) });
  const app = async (name: string) => [base, await layerTar({ "app.txt": Buffer.from(`${name} ${nonce}\n`) })];
  const running = await craftedImage(store, await app("running"), ["V=running"]);
  const unneeded = await craftedImage(store, await app("unneeded"), ["V=unneeded"]);
  const used = await craftedImage(store, await app("used"), ["V=used"]);
  const tagged = await craftedImage(store, await app("tagged"), ["V=tagged"]);
  const foreign = await craftedImage(openStore(other), await app("foreign"), ["V=foreign"]);
  const engineId: Record<string, string> = {};
  for (const [name, digest, s] of [["running", running, store], ["unneeded", unneeded, store], ["used", used, store], ["tagged", tagged, store], ["foreign", foreign, openStore(other)]] as const) {
    engineId[name] = await ensureImage(docker, s, digest);
    ids.push(engineId[name]!);
  }
  // The service's live release is `running`: in the keep window.
  withDb(homePaths(home), (db) => addRelease(db, running, { live: true }));
  // Somebody created a container from `used`, and tagged `tagged`.
  const c2 = await docker.createContainer({ Image: engineId.used, Cmd: ["/nothing"] });
  containers.push(c2.id);
  const [repo, version] = tag.split(":");
  await docker.getImage(engineId.tagged!).tag({ repo, tag: version });

  const dry = await gcHome({ home, provider: "docker", dryRun: true, graceMs: 0 });
  assert.deepEqual(dry.engineImages?.removed, [engineId.unneeded]);
  assert.ok(await hasImage(docker, engineId.unneeded!), "a dry run removes nothing");

  const r = await gcHome({ home, provider: "docker", graceMs: 0 });
  assert.deepEqual(r.warnings, []);
  assert.deepEqual(r.engineImages?.removed, [engineId.unneeded]);
  const kept = new Map(r.engineImages!.kept.map((k) => [k.id, k.reasons.join("; ")]));
  assert.match(kept.get(engineId.running!) ?? "", new RegExp(`release r\\d+ .* of ${SERVICE}: .*live`));
  assert.match(kept.get(engineId.used!) ?? "", /used by container/);
  assert.match(kept.get(engineId.tagged!) ?? "", /tagged kiln-engine-gc-it/);
  assert.equal(kept.has(engineId.foreign!), false, "another home's image is not kiln's business here");
  assert.equal(await hasImage(docker, engineId.unneeded!), false);
  for (const name of ["running", "used", "tagged", "foreign"]) assert.ok(await hasImage(docker, engineId[name]!), `${name} is still in the engine`);
  // The store's own sweep ran after: the unneeded image is gone from it too.
  assert.equal(await store.hasBlob(unneeded), false);
  assert.equal(await store.hasBlob(running), true);
});

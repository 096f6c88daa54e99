// ensureImage ships only the layers the engine lacks, on the real Docker Engine ($DOCKER_HOST):
// a second release on the same base loads its app layer alone, a config-only change loads no
// layer at all, and a wrong belief about the engine's layers (an image removed between the look
// and the load) falls back to loading the whole image. Each image's files are read back through
// the engine, so a layer the engine did not really have would show.
//
// The images are crafted with random content, so no earlier run's layers are in the engine.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import tar from "tar-stream";
import { openStore } from "../../../src/image/index.js";
import type { OciImageConfig } from "../../../src/image/types.js";
import { connectDocker, ensureImage, type Docker, type ImageLoad } from "../../../src/providers/docker/engine.js";
import { dockerSocket } from "../../support/services.js";
import { craftedImage as image, layerTar } from "../crafted-images.js";

/** A file of the image, read through a container created (never started) from it. */
async function readFromImage(docker: Docker, imageId: string, path: string): Promise<string> {
  const c = await docker.createContainer({ Image: imageId, Cmd: ["/nothing"], NetworkDisabled: true });
  try {
    const stream = await c.getArchive({ path });
    const extract = tar.extract();
    let text = "";
    await new Promise<void>((resolve, reject) => {
      extract.on("entry", (_h, body, next) => {
        body.on("data", (d: unknown) => (text += String(d)));
        body.on("end", next);
      });
      extract.on("finish", resolve);
      extract.on("error", reject);
      stream.pipe(extract);
    });
    return text;
  } finally {
    await c.remove({ force: true });
  }
}

test("ensureImage loads only the layers the engine lacks, and everything when its belief was wrong", async (t: TestContext) => {
  const socket = dockerSocket(t);
  if (!socket) return;
  const docker = connectDocker(socket);
  const dir = mkdtempSync(join(tmpdir(), "kiln-docker-load-it-"));
  const store = openStore(join(dir, ".kiln"));
  const loaded: string[] = [];
  t.after(async () => {
    for (const id of loaded.reverse()) await docker.getImage(id).remove({ noprune: false }).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });
  const nonce = randomBytes(8).toString("hex");
  const base = await layerTar({ "base.txt": Buffer.from(`base ${nonce}\n`), "filler.bin": randomBytes(4 << 20) });
  const appA = await layerTar({ "app.txt": Buffer.from(`app A ${nonce}\n`) });
  const appB = await layerTar({ "app.txt": Buffer.from(`app B ${nonce}\n`) });
  const a = await image(store, [base, appA], ["V=a"]);
  const b = await image(store, [base, appB], ["V=b"]);
  const aConfigOnly = await image(store, [base, appA], ["V=a2"]);
  const orphan = await image(store, [await layerTar({ "o.txt": Buffer.from(`orphan base ${nonce}\n`) }), appA], ["V=o"]);

  const loads: ImageLoad[] = [];
  const onLoad = (l: ImageLoad) => loads.push(l);

  // A fresh base: everything goes.
  loaded.push(await ensureImage(docker, store, a, { onLoad }));
  assert.deepEqual(loads.at(-1), { layers: 2, omitted: 0, bytes: loads.at(-1)!.bytes, fellBack: false });
  assert.ok(loads.at(-1)!.bytes > 4 << 20, "the 4 MiB base layer was in the archive");

  // The next release on the same base: only its app layer.
  loaded.push(await ensureImage(docker, store, b, { onLoad }));
  assert.deepEqual({ ...loads.at(-1)!, bytes: 0 }, { layers: 2, omitted: 1, bytes: 0, fellBack: false });
  assert.ok(loads.at(-1)!.bytes < 1 << 20, `the base layer stayed out (${loads.at(-1)!.bytes} bytes)`);
  assert.equal(await readFromImage(docker, loaded.at(-1)!, "/base.txt"), `base ${nonce}\n`);
  assert.equal(await readFromImage(docker, loaded.at(-1)!, "/app.txt"), `app B ${nonce}\n`);

  // Only the config changed: no layer at all.
  loaded.push(await ensureImage(docker, store, aConfigOnly, { onLoad }));
  assert.deepEqual({ ...loads.at(-1)!, bytes: 0 }, { layers: 2, omitted: 2, bytes: 0, fellBack: false });
  const env = (await docker.getImage(loaded.at(-1)!).inspect()).Config.Env;
  assert.ok(env.includes("V=a2"), JSON.stringify(env));
  assert.equal(await readFromImage(docker, loaded.at(-1)!, "/app.txt"), `app A ${nonce}\n`);

  // Believing the engine holds a base it does not: the engine refuses the partial archive, the whole image follows.
  const manifest = JSON.parse((await store.readBlob(orphan)).toString()) as { config: { digest: string } };
  const cfg = JSON.parse((await store.readBlob(manifest.config.digest)).toString()) as OciImageConfig;
  loaded.push(await ensureImage(docker, store, orphan, { onLoad, engineLayers: [[cfg.rootfs.diff_ids[0]!]] }));
  assert.deepEqual({ ...loads.at(-1)!, bytes: 0 }, { layers: 2, omitted: 0, bytes: 0, fellBack: true });
  assert.equal(await readFromImage(docker, loaded.at(-1)!, "/o.txt"), `orphan base ${nonce}\n`);

  // Already there: nothing is loaded.
  const before = loads.length;
  await ensureImage(docker, store, b, { onLoad });
  assert.equal(loads.length, before);
});

// Small images with chosen layers and config, written straight into a store, for the Docker
// engine tests: random content keeps one run's layers apart from every other run's.

import { gzipSync } from "node:zlib";
import tar from "tar-stream";
import { canonicalBytes, sha256Digest } from "../../src/image/digest.js";
import type { Store } from "../../src/image/index.js";
import { MEDIA_TYPE, type OciImageConfig } from "../../src/image/types.js";

/** An uncompressed layer tar of the given files. */
export async function layerTar(files: Record<string, Buffer>): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
  })();
  for (const [name, body] of Object.entries(files)) {
    await new Promise<void>((res, rej) => pack.entry({ name, mode: 0o644, mtime: new Date(0) }, body, (e) => (e ? rej(e) : res())));
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** An image of the given layers (raw tars, stored gzipped) and environment; returns its manifest digest. */
export async function craftedImage(store: Store, layers: Buffer[], env: string[]): Promise<string> {
  const descs = [];
  for (const t of layers) descs.push({ mediaType: MEDIA_TYPE.layerGzip, ...(await store.putBlob(gzipSync(t))) });
  const config: OciImageConfig = { architecture: "amd64", os: "linux", config: { Env: env, Cmd: ["/nothing"] }, rootfs: { type: "layers", diff_ids: layers.map((t) => sha256Digest(t)) } };
  const c = await store.putBlob(canonicalBytes(config));
  return (await store.putBlob(canonicalBytes({ schemaVersion: 2, mediaType: MEDIA_TYPE.manifest, config: { mediaType: MEDIA_TYPE.config, ...c }, layers: descs }))).digest;
}

// Fixtures for the outdated/rebake tests: a small Debian-like base in an OCI layout whose tag can
// be moved (as skopeo copy moves it), and a home with one live release of an image baked from it.

import { createHash } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { canonicalBytes } from "../../src/image/digest.js";
import { bake, openStore, type Store } from "../../src/image/index.js";
import { planLayer, writeLayer, type LayerEntry } from "../../src/image/layer.js";
import { MEDIA_TYPE, type OciImageConfig, type OciManifest } from "../../src/image/types.js";
import { StateDb } from "../../src/state/db.js";
import { addRelease, SERVICE } from "../doctor/helpers.js";
import { copyFixtureApp, recipe, tempDir } from "../image/helpers.js";

function file(path: string, text: string): LayerEntry {
  const data = Buffer.from(text);
  return { path, kind: "file", mode: 0o644, file: { size: data.length, sha256: createHash("sha256").update(data).digest("hex"), data } };
}

const status = (libssl: string) => `Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\nVersion: ${libssl}\n\nPackage: tzdata\nStatus: install ok installed\nArchitecture: all\nVersion: 2024a-0+deb12u1\n`;

/** A Debian-like base in an OCI layout at `root`, tagged "debianish:12": its dpkg status holds libssl3 at `libssl`. */
export async function debianishBase(root: string, libssl: string): Promise<{ digest: string; descriptor: { mediaType: string; digest: string; size: number } }> {
  const store = openStore(root);
  const l1 = await writeLayer(store, planLayer([file("etc/os-release", "ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n"), file("var/lib/dpkg/status", status(libssl))]), 1_000_000);
  const config: OciImageConfig = { created: "1970-01-12T13:46:40Z", architecture: "amd64", os: "linux", config: { Env: ["PATH=/bin"] }, rootfs: { type: "layers", diff_ids: [l1.diffId] } };
  const c = await store.putBlob(canonicalBytes(config));
  const manifest: OciManifest = { schemaVersion: 2, mediaType: MEDIA_TYPE.manifest, config: { mediaType: MEDIA_TYPE.config, ...c }, layers: [l1.descriptor] };
  const m = await store.putBlob(canonicalBytes(manifest));
  return { digest: m.digest, descriptor: { mediaType: MEDIA_TYPE.manifest, ...m } };
}

/** Point the layout's tag at another manifest, as `skopeo copy … oci:DIR:TAG` does (a kiln store never moves a tag). */
export async function retag(root: string, descriptor: { mediaType: string; digest: string; size: number }): Promise<void> {
  await writeFile(join(root, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [{ ...descriptor, annotations: { "org.opencontainers.image.ref.name": "debianish:12" } }] }));
}

/** A home whose live release runs svc:1.0.0, baked on that base (libssl3 3.0.11-1~deb12u2); `lockfile`: the dependencies layer's npm lockfile. */
export async function world(t: Parameters<typeof tempDir>[0], lockfile?: string): Promise<{ home: string; store: Store; ctx: string; baseDir: string; digest: string }> {
  const dir = await tempDir(t);
  const baseDir = join(dir, "base");
  const v1 = await debianishBase(baseDir, "3.0.11-1~deb12u2");
  await retag(baseDir, v1.descriptor);
  const ctx = join(dir, "ctx");
  await mkdir(ctx);
  await copyFixtureApp(ctx);
  if (lockfile !== undefined) await writeFile(join(ctx, "deps", ".package-lock.json"), lockfile);
  const home = join(dir, "home");
  const store = openStore(home);
  const r = await bake(recipe(ctx, `oci:${baseDir}:debianish:12`, { name: SERVICE }), { store, sourceDateEpoch: 1_700_000_000, today: "2026-12-02" });
  const db = new StateDb(join(home, "state.db"));
  try {
    addRelease(db, r.digest, { live: true, version: "1.0.0" });
  } finally {
    db.close();
  }
  return { home, store, ctx, baseDir, digest: r.digest };
}


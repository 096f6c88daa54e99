// What an imported base holds, for the SBOM: its operating system
// (/etc/os-release) and Debian packages (/var/lib/dpkg/status, or one file per
// package in /var/lib/dpkg/status.d/ as distroless images have). Read from the
// base's layers in order, later layers winning and whiteouts deleting, and
// remembered per base digest (reading a 30 MB base costs about a second).

import { createGunzip } from "node:zlib";
import { PassThrough, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import tar from "tar-stream";
import { digestHex } from "./digest.js";
import { parseDpkgStatus, type DebPackage } from "./dpkg.js";
import type { BaseImage } from "./base-image.js";
import { parseOsRelease, type OsRelease } from "./sbom.js";
import type { Store } from "./store.js";
import { MEDIA_TYPE } from "./types.js";

export interface BaseInventory {
  os?: OsRelease;
  packages: DebPackage[];
}

const OS_RELEASE = ["etc/os-release", "usr/lib/os-release"];
const DPKG_STATUS = "var/lib/dpkg/status";
const DPKG_STATUS_D = "var/lib/dpkg/status.d/";

const wanted = (p: string) => OS_RELEASE.includes(p) || p === DPKG_STATUS || (p.startsWith(DPKG_STATUS_D) && !p.slice(DPKG_STATUS_D.length).includes("/") && !p.endsWith(".md5sums"));
const CAP = 64 * 1024 * 1024;

export async function baseInventory(store: Store, base: BaseImage): Promise<BaseInventory> {
  if (base.packages) return { os: base.os, packages: base.packages };
  const key = digestHex(base.digest.startsWith("sha256:") ? base.digest : `sha256:${base.digest}`);
  const known = await store.cacheGet<BaseInventory>("base-inventory", key);
  if (known && Array.isArray(known.packages)) return known;

  const files = new Map<string, Buffer>();
  for (const layer of base.layers) await scanLayer(store, layer.descriptor.digest, layer.descriptor.mediaType, files);
  let os: OsRelease | undefined;
  for (const p of OS_RELEASE) {
    const text = files.get(p);
    if (text && !os) os = parseOsRelease(text.toString("utf8"));
  }
  const texts = [...files].filter(([p]) => p === DPKG_STATUS || p.startsWith(DPKG_STATUS_D)).map(([, b]) => b.toString("utf8"));
  const packages = parseDpkgStatus(texts.join("\n\n"));
  const inv: BaseInventory = os ? { os, packages } : { packages };
  await store.cachePut("base-inventory", key, inv);
  return inv;
}

/** Apply one layer to `files` (the wanted paths only): entries replace, whiteouts delete. */
async function scanLayer(store: Store, digest: string, mediaType: string, files: Map<string, Buffer>): Promise<void> {
  const extract = tar.extract();
  extract.on("entry", (header, stream, next) => {
    const name = header.name.replace(/^\.?\//, "").replace(/\/$/, "");
    const slash = name.lastIndexOf("/");
    const dir = slash === -1 ? "" : name.slice(0, slash + 1);
    const leaf = name.slice(slash + 1);
    if (leaf === ".wh..wh..opq") {
      for (const p of [...files.keys()]) if (p.startsWith(dir)) files.delete(p);
    } else if (leaf.startsWith(".wh.")) {
      const gone = dir + leaf.slice(4);
      for (const p of [...files.keys()]) if (p === gone || p.startsWith(`${gone}/`)) files.delete(p);
    } else if (header.type === "file" && wanted(name) && (header.size ?? 0) <= CAP) {
      const chunks: Buffer[] = [];
      stream.on("data", (c: unknown) => chunks.push(c as Buffer));
      stream.on("end", () => {
        files.set(name, Buffer.concat(chunks));
        next();
      });
      return;
    }
    stream.on("end", next);
    stream.resume();
  });
  const gz = mediaType === MEDIA_TYPE.layerTar || mediaType === MEDIA_TYPE.dockerLayerTar ? new PassThrough() : createGunzip();
  await pipeline(store.openBlob(digest) as Readable, gz, extract);
}

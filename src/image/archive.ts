// Reading image archives (oci-archive, docker-archive) without trusting them:
// every regular file is copied to its own numbered file under the store's
// tmp/, never to a path taken from the archive, and symlinks are resolved
// lexically inside the archive.

import { createReadStream } from "node:fs";
import { mkdir, open, rm } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import tar from "tar-stream";
import { KilnError } from "../errors.js";
import { countingTap, LAYER_LIMITS, LayerMeter, type LayerLimits } from "./layer-check.js";
import { entryComponents, resolveLinkTarget, unsafeEntryName } from "./paths.js";
import type { Store } from "./store.js";

/** An archive holds the layers (each capped on its own) plus small JSON: a layer's caps, times a few layers' worth of entries. */
const ARCHIVE_LIMITS: LayerLimits = { ...LAYER_LIMITS, layerEntries: 100_000 };

export interface ExtractedArchive {
  /** host path of the archive member `name`, following symlinks inside the archive */
  file(name: string): string | undefined;
  names(): string[];
  cleanup(): Promise<void>;
}

export async function isGzipFile(path: string): Promise<boolean> {
  const fh = await open(path, "r");
  try {
    const buf = Buffer.alloc(2);
    const { bytesRead } = await fh.read(buf, 0, 2, 0);
    return bytesRead === 2 && buf[0] === 0x1f && buf[1] === 0x8b;
  } finally {
    await fh.close();
  }
}

export async function extractArchive(store: Store, archivePath: string): Promise<ExtractedArchive> {
  const dir = store.tmpPath("archive");
  await mkdir(dir, { recursive: true });
  const files = new Map<string, string>();
  const links = new Map<string, string>();
  let n = 0;
  const extract = tar.extract();
  const consume = async () => {
    for await (const entry of extract) {
      const h = entry.header;
      if (++n > ARCHIVE_LIMITS.layerEntries) {
        throw new KilnError("KILN_E_UNSAFE", `archive ${archivePath} has more than ${ARCHIVE_LIMITS.layerEntries} entries`, {
          hint: "an image archive holds a few files per layer; do not use this one",
          details: [{ where: archivePath, message: "entry count over the cap" }],
        });
      }
      const bad = unsafeEntryName(h.name);
      if (bad) {
        throw new KilnError("KILN_E_UNSAFE", `archive ${archivePath} has an unsafe entry ${JSON.stringify(h.name)} (${bad})`, {
          hint: "the archive was not written by a trustworthy tool; do not use it",
          details: [{ where: archivePath, message: h.name }],
        });
      }
      const name = entryComponents(h.name).join("/");
      if (h.type === "file" || h.type === "contiguous-file") {
        const path = join(dir, String(n));
        const fh = await open(path, "wx", 0o600);
        try {
          for await (const chunk of entry) await fh.write(chunk as Buffer);
        } finally {
          await fh.close();
        }
        files.set(name, path);
      } else if (h.type === "symlink" || h.type === "link") {
        // Hard links name another member by its archive path; symlinks are relative to their directory.
        links.set(name, h.type === "link" ? "/" + (h.linkname ?? "") : (h.linkname ?? ""));
        entry.resume();
      } else {
        entry.resume();
      }
    }
  };
  try {
    const gz = await isGzipFile(archivePath);
    const source = createReadStream(archivePath);
    // The same caps as a layer's (bytes, ratio): a gzipped archive may be a decompression bomb too.
    let read = 0;
    const counter = countingTap((b) => (read += b));
    const meter = new LayerMeter(archivePath, ARCHIVE_LIMITS, () => (gz ? read : 0));
    const feed = gz ? pipeline(source, counter, createGunzip(), meter, extract) : pipeline(source, meter, extract);
    await Promise.all([
      feed,
      consume().catch((e: unknown) => {
        extract.destroy(e as Error);
        source.destroy();
        throw e;
      }),
    ]);
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    if (e instanceof KilnError) throw e;
    throw new KilnError("KILN_E_IMAGE", `cannot read archive ${archivePath}: ${(e as Error).message}`, { cause: e });
  }

  const lookup = (name: string, depth: number): string | undefined => {
    const clean = entryComponents(name).join("/");
    const direct = files.get(clean);
    if (direct !== undefined || depth > 16) return direct;
    const target = links.get(clean);
    if (target === undefined) return undefined;
    const resolved = resolveLinkTarget(entryComponents(clean).slice(0, -1), target);
    return resolved === undefined ? undefined : lookup(resolved.join("/"), depth + 1);
  };
  return {
    file: (name) => lookup(name, 0),
    names: () => [...files.keys(), ...links.keys()].sort(),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

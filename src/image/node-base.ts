// The "node" base: a Node binary at /usr/local/bin/node (this machine's, or a
// pinned release from runtime.ts), every shared library `ldd` lists for it (at its real path, with the symlinks that
// lead there, e.g. /lib → usr/lib), the CA bundle, minimal /etc files, /tmp
// and mount points. Its layer has mtime 0 (not the bake's time), so one cached
// base layer serves every app and every commit on this machine: re-bakes find
// it by cache key and never re-compress its ~100 MB.

import { execFile } from "node:child_process";
import { lstat, readFile, readlink, realpath, stat } from "node:fs/promises";
import { promisify } from "node:util";
import { KilnError } from "../errors.js";
import type { BaseContext, BaseImage } from "./base-image.js";
import { hostPackagesOwning, type DebPackage } from "./dpkg.js";
import { DEFAULT_PATH, isoFromEpoch, ociArchitecture } from "./compose.js";
import { canonicalBytes, canonicalJson, sha256Digest } from "./digest.js";
import { cachedLayer, hashFile, layerCacheKey, planLayer, type LayerEntry } from "./layer.js";
import { buildLayer } from "./machine-layers.js";
import { resolveLinkTarget } from "./paths.js";
import { parseOsRelease } from "./sbom.js";
import { RUNTIME_LABEL, type Runtime, type RuntimeInfo } from "./runtime.js";
import type { Store } from "./store.js";
import { ANNOTATION, MEDIA_TYPE, type LayerRecord, type OciImageConfig, type OciManifest } from "./types.js";

const execFileP = promisify(execFile);

const NODE_IN_IMAGE = "usr/local/bin/node";
const CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt";

const ETC_FILES: Record<string, string> = {
  "etc/passwd": "root:x:0:0:root:/root:/sbin/nologin\nkiln:x:1000:1000:kiln:/tmp:/sbin/nologin\n",
  "etc/group": "root:x:0:\nkiln:x:1000:\n",
  "etc/hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
  "etc/nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
};

/** Library paths from `ldd` output, the dynamic loader included, vdso excluded. */
export function parseLdd(stdout: string): { paths: string[]; missing: string[] } {
  const paths: string[] = [];
  const missing: string[] = [];
  for (const raw of stdout.split("\n")) {
    const line = raw.trim();
    if (line === "" || /statically linked/.test(line)) continue;
    const arrow = /^(\S+)\s+=>\s+(.*?)\s*(\(0x[0-9a-f]+\))?$/.exec(line);
    if (arrow) {
      if (arrow[2] === "not found") missing.push(arrow[1]!);
      else if (arrow[2]!.startsWith("/")) paths.push(arrow[2]!);
      continue;
    }
    const direct = /^(\/\S+)\s+\(0x[0-9a-f]+\)$/.exec(line);
    if (direct) paths.push(direct[1]!);
  }
  return { paths: [...new Set(paths)], missing };
}

interface HostInput {
  path: string;
  stat: { size: number; mtimeMs: number; ctimeMs: number; ino: number; mode: number };
}

/** Labels recording the runtime in the image config (they carry over into every image baked on it). */
export function runtimeLabels(info: RuntimeInfo): Record<string, string> {
  const l: Record<string, string> = {
    [RUNTIME_LABEL.name]: info.name,
    [RUNTIME_LABEL.version]: info.version,
    [RUNTIME_LABEL.source]: info.source,
    [RUNTIME_LABEL.origin]: info.origin,
    [RUNTIME_LABEL.sha256]: info.binarySha256,
  };
  if (info.archive) l[RUNTIME_LABEL.archive] = `${info.archive.name} ${info.archive.alg.toLowerCase().replace("-", "")}:${info.archive.hex}`;
  return l;
}

export async function nodeBase(ctx: BaseContext, runtime: Runtime): Promise<BaseImage> {
  const { store } = ctx;
  const binary = runtime.binaryPath;
  ctx.onProgress({ phase: "base", detail: `node v${runtime.info.version} runtime (${runtime.info.source})` });
  const entries = new Map<string, LayerEntry>();
  const inputs: HostInput[] = [];
  const hostFiles: { entry: LayerEntry; hostPath: string }[] = [];

  const addFile = async (imagePath: string, hostPath: string, forceMode?: number) => {
    const st = await stat(hostPath);
    inputs.push({ path: hostPath, stat: pickStat(st) });
    const entry: LayerEntry = { path: imagePath, kind: "file", mode: forceMode ?? (st.mode & 0o111 ? 0o755 : 0o644) };
    entries.set(imagePath, entry);
    hostFiles.push({ entry, hostPath });
  };

  // Re-create a host path and every symlink on the way to it (/lib → usr/lib,
  // libstdc++.so.6 → libstdc++.so.6.0.30…), so the loader finds libraries by
  // the names the binary was linked against.
  const addHostPath = async (hostPath: string, depth: number): Promise<void> => {
    if (depth > 40) throw new KilnError("KILN_E_IMAGE", `too many symlinks resolving ${hostPath}`);
    const parts = hostPath.split("/").filter((p) => p !== "" && p !== ".");
    for (let i = 1; i <= parts.length; i++) {
      const prefix = "/" + parts.slice(0, i).join("/");
      const st = await lstat(prefix);
      if (st.isSymbolicLink()) {
        const target = await readlink(prefix);
        inputs.push({ path: prefix, stat: pickStat(st) });
        const rel = parts.slice(0, i).join("/");
        entries.set(rel, { path: rel, kind: "symlink", mode: 0o777, linkTarget: target });
        const resolved = resolveLinkTarget(parts.slice(0, i - 1), target);
        if (resolved === undefined) throw new KilnError("KILN_E_IMAGE", `cannot resolve ${prefix} → ${target}`);
        return addHostPath("/" + [...resolved, ...parts.slice(i)].join("/"), depth + 1);
      }
      if (i === parts.length) return addFile(parts.join("/"), prefix);
      if (!st.isDirectory()) throw new KilnError("KILN_E_IMAGE", `${prefix} is not a directory`);
    }
  };

  // Layer files are opened with O_NOFOLLOW: hand over the real path.
  await addFile(NODE_IN_IMAGE, await realpath(binary), 0o755);
  const libs = parseLdd(await lddOutput(store, binary));
  if (libs.missing.length > 0) {
    throw new KilnError("KILN_E_IMAGE", `the Node binary needs libraries this machine lacks: ${libs.missing.join(", ")}`);
  }
  for (const lib of libs.paths) await addHostPath(lib, 0);
  try {
    if ((await stat(CA_BUNDLE)).isFile()) await addFile(CA_BUNDLE.slice(1), await realpath(CA_BUNDLE), 0o644);
  } catch {
    // no CA bundle on the host: the image goes without (Node warns on TLS use)
  }
  for (const [path, text] of Object.entries(ETC_FILES)) {
    const data = Buffer.from(text, "utf8");
    entries.set(path, { path, kind: "file", mode: 0o644, file: { size: data.length, sha256: sha256Digest(data).slice(7), data } });
  }
  entries.set("tmp", { path: "tmp", kind: "dir", mode: 0o1777 });
  // Mount points a sandbox with a read-only root cannot create itself.
  for (const dir of ["dev", "proc", "sys"]) entries.set(dir, { path: dir, kind: "dir", mode: 0o755 });

  // Hashing ~100 MB on every bake is avoidable: content hashes are cached by
  // the host files' (path, size, mtime, ctime, inode). ctime cannot be set
  // back by user tools, so a changed file always misses.
  const fingerprint = sha256Digest(canonicalJson({ v: 1, inputs })).slice(7);
  const known = await store.cacheGet<Record<string, { size: number; sha256: string }>>("node-runtime", fingerprint);
  // A downloaded or unpacked runtime's binary was hashed as it was unpacked (runtime.ts): not
  // hashed again here. Its layer re-checks every file's content against these hashes as it reads it.
  const binaryReal = await realpath(binary);
  const unpacked = runtime.info.binarySha256 !== "" ? { size: runtime.info.binarySize, sha256: runtime.info.binarySha256 } : undefined;
  for (const { entry, hostPath } of hostFiles) {
    const hit = known?.[hostPath] ?? (hostPath === binaryReal && unpacked && (await stat(hostPath)).size === unpacked.size ? unpacked : undefined);
    entry.file = { ...(hit ?? (await hashFile(hostPath))), hostPath };
  }
  if (!known) {
    await store.cachePut("node-runtime", fingerprint, Object.fromEntries(hostFiles.map(({ entry, hostPath }) => [hostPath, { size: entry.file!.size, sha256: entry.file!.sha256 }])));
  }
  const nodeFile = entries.get(NODE_IN_IMAGE)!.file!;
  const info: RuntimeInfo = { ...runtime.info, binarySha256: nodeFile.sha256, binarySize: nodeFile.size };

  // Which Debian packages the copied libraries come from (for the SBOM), looked up
  // once per set of host files: dpkg -S costs ~0.1 s.
  const libPaths = hostFiles.map((f) => f.hostPath).filter((p) => p !== binary).sort();
  let packages = await store.cacheGet<DebPackage[]>("node-runtime-debs", fingerprint);
  if (!Array.isArray(packages)) {
    packages = await hostPackagesOwning(libPaths);
    await store.cachePut("node-runtime-debs", fingerprint, packages);
  }

  const planned = planLayer([...entries.values()]);
  const write = ctx.layerWrite ?? {};
  const key = layerCacheKey("base", planned, 0, write.compression);
  const { record, cached } = await cachedLayer(store, "layers", key, () =>
    buildLayer(store, key, planned, 0, ctx.onProgress, "layer base", "building the node runtime layer, once per runtime", write),
  );

  const config: OciImageConfig = {
    created: isoFromEpoch(0),
    architecture: ociArchitecture(process.arch),
    os: "linux",
    config: { Env: [`PATH=${DEFAULT_PATH}`], Cmd: [`/${NODE_IN_IMAGE}`], Labels: runtimeLabels(info) },
    rootfs: { type: "layers", diff_ids: [record.diffId] },
    history: [{ created: isoFromEpoch(0), created_by: `kiln: node v${info.version} runtime from ${info.origin} (binary, ldd libraries, CA certificates, /etc basics, /tmp)` }],
  };
  const name = `kiln/node:${info.version}`;
  const digest = await putImage(store, config, [record], { [ANNOTATION.title]: name, [ANNOTATION.version]: info.version, ...runtimeLabels(info) });
  // The libraries are the host's, so their distribution is the host's.
  const os = parseOsRelease(await readFile("/etc/os-release", "utf8").catch(() => ""));
  return { name, digest, config, layers: [record], cached, runtime: info, packages, ...(os ? { os } : {}) };
}

/**
 * `ldd binary`'s output, kept in the store's cache: ldd costs a process (and the loader run
 * over the binary) on every bake. The key is what decides which libraries the loader picks:
 * the binary (real path, size, mtime, ctime, inode), the loader's cache /etc/ld.so.cache
 * (rewritten by ldconfig whenever a library is installed or removed), /etc/ld.so.preload and
 * LD_LIBRARY_PATH. Only an output naming every library is kept (a missing one fails the bake).
 * The libraries' contents are not part of it: they are hashed (or found by their stat) anyway.
 */
async function lddOutput(store: Store, binary: string): Promise<string> {
  const statOf = async (p: string) => {
    const st = await stat(p).catch(() => undefined);
    return st ? [st.size, st.mtimeMs, st.ctimeMs, st.ino] : null;
  };
  const real = await realpath(binary);
  const key = sha256Digest(
    canonicalJson({ v: 1, binary: real, st: await statOf(real), ldCache: await statOf("/etc/ld.so.cache"), preload: await statOf("/etc/ld.so.preload"), path: process.env.LD_LIBRARY_PATH ?? null }),
  ).slice(7);
  const known = await store.cacheGet<{ stdout?: string }>("node-ldd", key);
  if (typeof known?.stdout === "string") return known.stdout;
  let out: string;
  try {
    out = (await execFileP("ldd", [binary])).stdout;
  } catch (e) {
    // A statically linked binary makes ldd exit 1 ("not a dynamic executable").
    out = (e as { stdout?: string }).stdout ?? "";
    if (!/not a dynamic executable|statically linked/.test(out + String((e as { stderr?: string }).stderr ?? ""))) {
      throw new KilnError("KILN_E_IMAGE", `ldd ${binary} failed`, { cause: e, hint: "install libc-bin (ldd) or use an oci: base" });
    }
  }
  if (parseLdd(out).missing.length === 0) await store.cachePut("node-ldd", key, { stdout: out });
  return out;
}

function pickStat(st: { size: number; mtimeMs: number; ctimeMs: number; ino: number; mode: number }): HostInput["stat"] {
  return { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, mode: st.mode };
}

/** Store config + manifest blobs for an untagged image; returns the manifest digest. */
async function putImage(store: Store, config: OciImageConfig, layers: LayerRecord[], annotations: Record<string, string>): Promise<string> {
  const configBlob = await store.putBlob(canonicalBytes(config));
  const manifest: OciManifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE.manifest,
    config: { mediaType: MEDIA_TYPE.config, digest: configBlob.digest, size: configBlob.size },
    layers: layers.map((l) => ({ mediaType: l.descriptor.mediaType, digest: l.descriptor.digest, size: l.descriptor.size })),
    annotations,
  };
  return (await store.putBlob(canonicalBytes(manifest))).digest;
}

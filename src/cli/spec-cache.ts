// The checked kiln.yaml of the last verb, kept in the home so that the next verb on an unchanged
// file skips the YAML parser and the schema validator: loading those two is most of what a short
// verb such as `kiln status` spends before its own work (issue 17: ≤ 0.3 s).
//
// An entry is used only when its key matches: the file's path and exact text, the environment
// asked for, and the build of kiln's kiln.yaml loader (the size and mtime of every file beside
// load.js, and of the yaml package's manifest). So an edited kiln.yaml, another environment or a
// rebuilt kiln loads the file as before. Only a file that loaded without problems is kept (a
// problem is always reported by the loader itself), and only in a home that already exists: a
// verb that has nothing else to write there creates nothing. The entry holds what state.db's
// releases already hold (the spec), 0600 in the 0700 home. Every failure to read or write it is
// ignored: the cache can only make a verb faster, never fail one (a full disk included).

import { createHash } from "node:crypto";
import { closeSync, constants, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import type { LoadedSpec } from "../config/types.js";
import { homeFor } from "../home.js";

/** Bumped when an entry's layout changes. */
const FORMAT = 1;

export const SPEC_CACHE_FILE = join("cache", "kiln-yaml.json");

export interface SpecCacheKey {
  /** absolute path of kiln.yaml */
  file: string;
  /** its whole text */
  text: string;
  /** the environment asked for (undefined: kiln.yaml's default) */
  environment?: string;
  /** identifies the loader's build (buildStamp) */
  build: string;
}

/**
 * The key an entry is stored under: any change to one of its inputs changes it.
 *
 *   same file, text, environment and build        → the same key
 *   one character of the text changed             → another key
 *   environment "staging" instead of undefined    → another key
 *   kiln rebuilt (another build stamp)            → another key
 */
export function specCacheKey(k: SpecCacheKey): string {
  return createHash("sha256").update(JSON.stringify([FORMAT, k.build, k.file, k.environment ?? null, k.text])).digest("hex");
}

/** Size and mtime of the loader's files (dist/src/config/*) and of the yaml package: a rebuild or another yaml changes it. */
export function buildStamp(): string {
  const dir = new URL("../config/", import.meta.url);
  const parts: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const st = statSync(new URL(name, dir));
    parts.push(`${name}:${st.size}:${st.mtimeMs}`);
  }
  const yaml = statSync(createRequire(import.meta.url).resolve("yaml/package.json"));
  parts.push(`yaml:${yaml.size}:${yaml.mtimeMs}`);
  return parts.join("\n");
}

/** kiln.yaml's path as loadSpec reads it: a directory means the kiln.yaml in it. */
function specPath(file: string): string {
  return statSync(file).isDirectory() ? join(file, "kiln.yaml") : file;
}

interface Entry {
  key: string;
  loaded: LoadedSpec;
}

/**
 * kiln.yaml at `file` (an absolute path), loaded for `environment`: from the cache when its
 * entry matches, else by `load` (the real loader, imported only then), whose result is kept.
 */
export async function loadSpecCached(file: string, environment: string | undefined, load: () => Promise<(file: string, environment?: string) => LoadedSpec>): Promise<LoadedSpec> {
  let probe: { home: string; key: string; path: string; text: string } | undefined;
  try {
    const path = specPath(file);
    const text = readFileSync(path, "utf8");
    probe = { home: homeFor(path), key: specCacheKey({ file: path, text, environment, build: buildStamp() }), path, text };
    const entry = JSON.parse(readFileSync(join(probe.home, SPEC_CACHE_FILE), "utf8")) as Entry;
    if (entry.key === probe.key) return entry.loaded;
  } catch {
    // no entry, an unreadable one, or a kiln.yaml the loader will report on: load it
  }
  const loaded = (await load())(file, environment);
  if (probe) keep(probe, loaded);
  return loaded;
}

/** Writes the entry when it would give back exactly `loaded`, for the text that was loaded. */
function keep(probe: { home: string; key: string; path: string; text: string }, loaded: LoadedSpec): void {
  let tmp: string | undefined;
  try {
    if (!existsSync(probe.home)) return;
    // The file changed between the two reads: the entry could pair one text with another's spec.
    if (readFileSync(probe.path, "utf8") !== probe.text) return;
    const body = JSON.stringify({ key: probe.key, loaded } satisfies Entry);
    // Only what survives JSON unchanged (no undefined in arrays, no special numbers) is kept.
    if (!isDeepStrictEqual((JSON.parse(body) as Entry).loaded, stripUndefined(loaded))) return;
    const target = join(probe.home, SPEC_CACHE_FILE);
    mkdirSync(join(probe.home, "cache"), { recursive: true, mode: 0o700 });
    tmp = `${target}.${process.pid}.tmp`;
    const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
    try {
      writeSync(fd, body);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, target);
    tmp = undefined;
  } catch {
    // a read-only or full home: the next verb loads kiln.yaml again
  } finally {
    if (tmp) rmSync(tmp, { force: true });
  }
}

/** `loaded` as JSON gives it back: object members that are undefined are absent. */
function stripUndefined(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(stripUndefined);
  if (v !== null && typeof v === "object") return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) => [k, stripUndefined(x)]));
  return v;
}

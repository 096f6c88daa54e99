// The CLI's kiln.yaml cache gives back exactly what the loader gives, and only for the text,
// environment and build it was made from; it never fails a verb and never creates a home.

import assert from "node:assert/strict";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, describe, it } from "node:test";
import { loadSpec } from "../../src/config/index.js";
import type { LoadedSpec } from "../../src/config/types.js";
import { buildStamp, loadSpecCached, SPEC_CACHE_FILE, specCacheKey, type SpecCacheKey } from "../../src/cli/spec-cache.js";

const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), "kiln-spec-cache-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A project dir holding the hello example's kiln.yaml, with (or without) its home. */
function project(withHome: boolean): { dir: string; file: string; home: string } {
  const dir = mkdtempSync(join(scratch, "p-"));
  cpSync(join(repoRoot, "examples/hello/kiln.yaml"), join(dir, "kiln.yaml"));
  const home = join(dir, ".kiln");
  if (withHome) mkdirSync(home, { mode: 0o700 });
  return { dir, file: join(dir, "kiln.yaml"), home };
}

/** The real loader, counting its calls. */
function countingLoader() {
  const calls = { n: 0 };
  const load = async () => (file: string, environment?: string): LoadedSpec => {
    calls.n++;
    return loadSpec(file, environment);
  };
  return { calls, load };
}

describe("spec cache", () => {
  const saved = process.env.KILN_HOME;
  after(() => (saved === undefined ? delete process.env.KILN_HOME : (process.env.KILN_HOME = saved)));
  delete process.env.KILN_HOME;

  it("specCacheKey: the worked examples", () => {
    const base: SpecCacheKey = { file: "/p/kiln.yaml", text: "name: a\n", build: "b1" };
    const rows: Array<[string, SpecCacheKey, boolean]> = [
      ["same inputs", { ...base }, true],
      ["one character of the text", { ...base, text: "name: b\n" }, false],
      ["another environment", { ...base, environment: "staging" }, false],
      ["another build", { ...base, build: "b2" }, false],
      ["another path", { ...base, file: "/q/kiln.yaml" }, false],
    ];
    for (const [name, k, same] of rows) assert.equal(specCacheKey(k) === specCacheKey(base), same, name);
  });

  it("buildStamp is stable between calls", () => assert.equal(buildStamp(), buildStamp()));

  it("a second load of an unchanged file comes from the cache, equal to the loader's", async () => {
    const p = project(true);
    const { calls, load } = countingLoader();
    const first = await loadSpecCached(p.file, undefined, load);
    assert.equal(calls.n, 1);
    const entry = join(p.home, SPEC_CACHE_FILE);
    assert.equal(statSync(entry).mode & 0o777, 0o600);
    const second = await loadSpecCached(p.file, undefined, load);
    assert.equal(calls.n, 1, "served from the cache");
    assert.deepEqual(second, JSON.parse(JSON.stringify(first)));
    assert.deepEqual(second, JSON.parse(JSON.stringify(loadSpec(p.file))));
  });

  it("an edited file, or another environment, is loaded again", async () => {
    const p = project(true);
    const { calls, load } = countingLoader();
    await loadSpecCached(p.file, undefined, load);
    writeFileSync(p.file, readFileSync(p.file, "utf8").replace(/^instances: \d+/m, "instances: 5"));
    const edited = await loadSpecCached(p.file, undefined, load);
    assert.equal(calls.n, 2);
    assert.equal(edited.spec.instances, 5);
    await assert.rejects(loadSpecCached(p.file, "nope", load), /environment|nope/i);
    assert.equal(calls.n, 3);
  });

  it("a broken file is reported by the loader every time and never cached", async () => {
    const p = project(true);
    const { calls, load } = countingLoader();
    writeFileSync(p.file, "name: Bad_Name\ninstnces: 3\n");
    await assert.rejects(loadSpecCached(p.file, undefined, load), /problem/);
    await assert.rejects(loadSpecCached(p.file, undefined, load), /problem/);
    assert.equal(calls.n, 2);
    assert.equal(existsSync(join(p.home, SPEC_CACHE_FILE)), false);
  });

  it("creates no home, and a corrupt entry is only a miss", async () => {
    const p = project(false);
    const { calls, load } = countingLoader();
    await loadSpecCached(p.file, undefined, load);
    assert.equal(existsSync(p.home), false, "no home created");
    mkdirSync(join(p.home, "cache"), { recursive: true });
    writeFileSync(join(p.home, SPEC_CACHE_FILE), "{not json");
    const loaded = await loadSpecCached(p.file, undefined, load);
    assert.equal(calls.n, 2);
    assert.equal(loaded.spec.name, "hello");
    await loadSpecCached(p.file, undefined, load);
    assert.equal(calls.n, 2, "the corrupt entry was replaced");
  });
});

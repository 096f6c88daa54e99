// The store's crash safety, watched at the system-call level (issue 12, "store writes fsync
// files and their directories"): strace follows a process that writes a blob and a cache entry
// through the real store, and each file must be fsynced before it is renamed into place, and the
// directory it is renamed into fsynced after. A rename with no directory fsync after it is a
// blob that a power cut can lose although `kiln bake` said it was written.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "node:test";

const requireAll = process.env.KILN_REQUIRE_ALL === "1";
const haveStrace = spawnSync("strace", ["-V"]).status === 0;
const storeModule = fileURLToPath(new URL("../../../src/image/store.js", import.meta.url));

/** One system call strace printed for a process: its name, its arguments' text, its result. */
interface Call {
  pid: string;
  name: string;
  args: string;
  result: string;
}

/** strace -f -o lines ("PID name(args) = result"), joining "<unfinished …>" with its "<… resumed>". */
function parseStrace(text: string): Call[] {
  const calls: Call[] = [];
  const pending = new Map<string, string>();
  for (const line of text.split("\n")) {
    let m = /^(\d+)\s+(.*) <unfinished \.\.\.>$/.exec(line);
    if (m) {
      pending.set(m[1]!, m[2]!);
      continue;
    }
    m = /^(\d+)\s+<\.\.\. \w+ resumed>(.*)$/.exec(line);
    const whole = m ? [m[1]!, (pending.get(m[1]!) ?? "") + m[2]!] : (/^(\d+)\s+(.*)$/.exec(line)?.slice(1, 3) as [string, string] | undefined);
    if (!whole) continue;
    if (m) pending.delete(m[1]!);
    const c = /^(\w+)\((.*)\)\s+=\s+(-?\d+|\?)/.exec(whole[1]!);
    if (c) calls.push({ pid: whole[0]!, name: c[1]!, args: c[2]!, result: c[3]! });
  }
  return calls;
}

test("a blob and a cache entry: the file is fsynced before its rename, and its directory after", { skip: !haveStrace && !requireAll && "strace is not installed" }, () => {
  const dir = mkdtempSync(join(tmpdir(), "kiln-fsync-"));
  try {
    const root = join(dir, "store");
    const script = join(dir, "write.mjs");
    writeFileSync(
      script,
      `import { openStore } from ${JSON.stringify(storeModule)};
const store = openStore(${JSON.stringify(root)});
const w = await store.createBlobWriter();
await w.write(new TextEncoder().encode("a blob that must survive a power cut"));
const { digest } = await w.commit();
await store.cachePut("fsync-test", "0123456789abcdef", { digest });
console.log(digest);
`,
    );
    const log = join(dir, "strace.log");
    const r = spawnSync("strace", ["-f", "-qq", "-o", log, "-e", "trace=openat,fsync,fdatasync,rename,renameat,renameat2,close", process.execPath, script], { encoding: "utf8", timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const digest = r.stdout.trim();
    const calls = parseStrace(readFileSync(log, "utf8"));
    // Which path each descriptor names, as calls go by (descriptors are reused after close).
    const fdPath = new Map<string, string>();
    const synced: string[] = []; // paths fsynced, in order, interleaved with renames below
    const events: { kind: "sync" | "rename"; path: string; to?: string }[] = [];
    for (const c of calls) {
      if (c.name === "openat" && Number(c.result) >= 0) fdPath.set(c.result, /"([^"]*)"/.exec(c.args)?.[1] ?? "");
      else if (c.name === "fsync" || c.name === "fdatasync") {
        const path = fdPath.get(c.args.trim()) ?? "";
        synced.push(path);
        events.push({ kind: "sync", path });
      } else if (c.name.startsWith("rename") && c.result === "0") {
        const names = [...c.args.matchAll(/"([^"]*)"/g)].map((m) => m[1]!);
        events.push({ kind: "rename", path: names[0]!, to: names[1]! });
      }
    }
    const blobPath = join(root, "blobs", "sha256", digest.slice("sha256:".length));
    const cachePath = join(root, "cache", "fsync-test", "0123456789abcdef.json");
    for (const target of [blobPath, cachePath]) {
      const at = events.findIndex((e) => e.kind === "rename" && e.to === target);
      assert.ok(at >= 0, `no rename into ${target}: ${JSON.stringify(events)}`);
      const tmp = events[at]!.path;
      assert.ok(events.slice(0, at).some((e) => e.kind === "sync" && e.path === tmp), `${tmp} was not fsynced before its rename to ${target}: ${JSON.stringify(events)}`);
      const parent = target.slice(0, target.lastIndexOf("/"));
      assert.ok(events.slice(at + 1).some((e) => e.kind === "sync" && e.path === parent), `${parent} was not fsynced after the rename into it: ${JSON.stringify(events)}`);
    }
    assert.ok(synced.length >= 4);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

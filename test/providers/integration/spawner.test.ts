// spawner.ts: the same behaviour from both spawners (the calling thread's and the pool's), on
// real processes: descriptors of ours, bytes on pipes, the record written with the pid, a
// session of the child's own, exit codes and signals, and the failures.

import assert from "node:assert/strict";
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { KilnError } from "../../../src/errors.js";
import { isLiveStat, readStat } from "../../../src/providers/local/procfs.js";
import { DEFAULT_SPAWN_THREADS, InlineSpawner, parseSpawnThreads, SpawnFailure, ThreadSpawner, type ChildExit, type Spawned, type Spawner } from "../../../src/providers/local/spawner.js";

const dir = mkdtempSync(join(tmpdir(), "kiln-spawner-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const env = { PATH: "/usr/bin:/bin" };

/** Live processes whose argv holds `marker`. */
function running(marker: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readFileSync(`/proc/${e}/cmdline`, "latin1").includes(marker) && isLiveStat(readStat(Number(e)))) out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}

/** A child's exit, awaited: spawned children are unreferenced (they never hold a controller up), so a timer holds this test up meanwhile. */
async function exitOf(s: Spawned): Promise<ChildExit> {
  const hold = setInterval(() => undefined, 1000);
  try {
    return await s.exit;
  } finally {
    clearInterval(hold);
  }
}

const threads = new ThreadSpawner(2);
after(() => threads.close());

for (const [name, spawner] of [
  ["inline", new InlineSpawner()],
  ["threads", threads],
] as [string, Spawner][]) {
  describe(`${name} spawner`, () => {
    test("the child writes to our descriptors by number, and its exit code is told", async () => {
      const file = join(dir, `${name}-fds.txt`);
      const fd = openSync(file, "a");
      let s;
      try {
        s = await spawner.spawn({ file: "/bin/sh", args: ["-c", "echo out; echo err >&2; echo three >&3; exit 7"], env, stdio: ["ignore", fd, fd, fd] });
      } finally {
        closeSync(fd);
      }
      assert.deepEqual(await exitOf(s), { code: 7, signal: null });
      assert.deepEqual(readFileSync(file, "utf8").split("\n").sort(), ["", "err", "out", "three"]);
    });

    test("bytes for a pipe reach the child, text and binary, and the pipe is closed after them", async () => {
      const file = join(dir, `${name}-pipes.txt`);
      const fd = openSync(file, "w");
      let s;
      try {
        // cat reads each pipe to its end: it returns only once the spawner closed it.
        s = await spawner.spawn({ file: "/bin/sh", args: ["-c", "cat <&3; cat <&4"], env, stdio: ["ignore", fd, fd, { write: "text\n" }, { write: new Uint8Array([0x62, 0x69, 0x6e, 0x0a]) }] });
      } finally {
        closeSync(fd);
      }
      assert.deepEqual(await exitOf(s), { code: 0, signal: null });
      assert.equal(readFileSync(file, "utf8"), "text\nbin\n");
    });

    test("the record holds the fields, the pid and its /proc start time before the spawn settles; the child leads its own session", async () => {
      const marker = `kiln-spawner-record-${name}-${process.pid}`;
      const s = await spawner.spawn({
        file: "/bin/sh",
        args: ["-c", "sleep 30", marker],
        env,
        stdio: ["ignore", "ignore", "ignore"],
        record: { dir, file: `${name}-record.json`, fields: { schema: 1, id: "a" }, indent: 2 },
      });
      try {
        const rec = JSON.parse(readFileSync(join(dir, `${name}-record.json`), "utf8")) as Record<string, unknown>;
        const stat = readStat(s.pid);
        assert.ok(stat, "the child runs");
        assert.deepEqual(rec, { schema: 1, id: "a", pid: s.pid, startTime: stat.startTime });
        assert.equal(s.startTime, stat.startTime);
        assert.equal(stat.pgrp, s.pid, "detached: a process group (and session) of its own");
        assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith(".tmp")), [], "no temporary file left");
      } finally {
        process.kill(-s.pid, "SIGTERM");
      }
      assert.deepEqual(await exitOf(s), { code: null, signal: "SIGTERM" });
    });

    test("a program that does not exist: SpawnFailure at the spawn, with its code", async () => {
      await assert.rejects(spawner.spawn({ file: join(dir, "no-such-program"), args: [], env, stdio: ["ignore", "ignore", "ignore"] }), (e: unknown) => {
        assert.ok(e instanceof SpawnFailure, String(e));
        assert.equal(e.stage, "spawn");
        assert.equal(e.code, "ENOENT");
        return true;
      });
    });

    test("a record that cannot be written: the child is killed and the failure says so", async () => {
      const marker = `kiln-spawner-unrecorded-${name}-${process.pid}`;
      await assert.rejects(
        spawner.spawn({ file: "/bin/sh", args: ["-c", "sleep 30", marker], env, stdio: ["ignore", "ignore", "ignore"], record: { dir: join(dir, "missing"), file: "meta.json", fields: {} } }),
        (e: unknown) => {
          assert.ok(e instanceof SpawnFailure, String(e));
          assert.equal(e.stage, "record");
          assert.equal(e.code, "ENOENT");
          return true;
        },
      );
      // Killed: it dies as soon as it is scheduled (a zombie until reaped does not count as alive).
      for (let i = 0; i < 200 && running(marker).length > 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(running(marker), []);
    });
  });
}

test("a pool whose thread dies: what it was spawning fails, later spawns run on the calling thread, said once", async () => {
  const lines: string[] = [];
  const pool = new ThreadSpawner(1, (l) => lines.push(l));
  try {
    const first = await pool.spawn({ file: "/bin/true", args: [], env, stdio: ["ignore", "ignore", "ignore"] });
    await exitOf(first);
    // The one thread, ended from outside (what a crash of it looks like to the pool).
    const worker = (pool as unknown as { threads: { worker: { terminate(): Promise<number> } }[] }).threads[0]!.worker;
    await worker.terminate();
    for (let i = 0; i < 100 && lines.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /spawn thread failed .* started on the controller's own thread/);
    const s = await pool.spawn({ file: "/bin/sh", args: ["-c", "exit 3"], env, stdio: ["ignore", "ignore", "ignore"] });
    assert.deepEqual(await exitOf(s), { code: 3, signal: null });
    const again = await pool.spawn({ file: "/bin/true", args: [], env, stdio: ["ignore", "ignore", "ignore"] });
    await exitOf(again);
    assert.equal(lines.length, 1, "said once");
  } finally {
    await pool.close();
  }
});

test("a pool whose thread cannot load: its spawns run on the calling thread, once each", async () => {
  const lines: string[] = [];
  const pool = new ThreadSpawner(1, (l) => lines.push(l), new URL("./no-such-spawn-worker.js", import.meta.url));
  const marker = `kiln-spawner-noload-${process.pid}`;
  try {
    const s = await pool.spawn({ file: "/bin/sh", args: ["-c", "exit 4", marker], env, stdio: ["ignore", "ignore", "ignore"] });
    assert.deepEqual(await exitOf(s), { code: 4, signal: null });
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /spawn thread failed/);
  } finally {
    await pool.close();
  }
});

test("KILN_SPAWN_THREADS", () => {
  assert.equal(parseSpawnThreads(undefined), DEFAULT_SPAWN_THREADS);
  assert.equal(parseSpawnThreads(" "), DEFAULT_SPAWN_THREADS);
  assert.equal(parseSpawnThreads("0"), 0);
  assert.equal(parseSpawnThreads(" 8 "), 8);
  for (const bad of ["9", "-1", "two", "1.5"]) {
    assert.throws(() => parseSpawnThreads(bad), (e: unknown) => e instanceof KilnError && e.code === "KILN_E_USAGE" && e.message.includes(JSON.stringify(bad)), bad);
  }
});

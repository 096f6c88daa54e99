// spawner.ts: the same behaviour from both spawners (the calling thread's and the pool's), on
// real processes: descriptors of ours, bytes on pipes, the record written with the pid, a
// session of the child's own, exit codes and signals, and the failures.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { KilnError } from "../../../src/errors.js";
import { findExecutable } from "../../../src/providers/local/executable.js";
import { isLiveStat, readStat } from "../../../src/providers/local/procfs.js";
import { DEFAULT_SPAWN_THREADS, gatedCommand, InlineSpawner, parseSpawnThreads, SpawnFailure, ThreadSpawner, type ChildExit, type Spawned, type Spawner } from "../../../src/providers/local/spawner.js";

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

    test("a record that cannot be written: the program itself never ran (the gate held it)", async () => {
      const ran = join(dir, `${name}-ran-unrecorded`);
      await assert.rejects(
        spawner.spawn({ file: "/bin/touch", args: [ran], env, stdio: ["ignore", "ignore", "ignore"], record: { dir: join(dir, "missing"), file: "meta.json", fields: {} } }),
        (e: unknown) => e instanceof SpawnFailure && e.stage === "record",
      );
      await new Promise((r) => setTimeout(r, 200)); // room for a program that did run to finish
      assert.equal(existsSync(ran), false, "touch ran although its record was never written");
    });

    test("a program on the child's PATH, by name: found and run as on the spawn's own lookup", async () => {
      const marker = `kiln-spawner-path-${name}-${process.pid}`;
      const s = await spawner.spawn({ file: "sh", args: ["-c", "exit 3", marker], env, stdio: ["ignore", "ignore", "ignore"], record: { dir, file: `${name}-path.json`, fields: {} } });
      assert.deepEqual(await exitOf(s), { code: 3, signal: null });
      await assert.rejects(
        spawner.spawn({ file: "no-such-program-kiln", args: [], env, stdio: ["ignore", "ignore", "ignore"], record: { dir, file: `${name}-none.json`, fields: {} } }),
        (e: unknown) => e instanceof SpawnFailure && e.stage === "spawn" && e.code === "ENOENT",
      );
      assert.equal(existsSync(join(dir, `${name}-none.json`)), false, "nothing recorded for a program that never started");
    });

    test("arguments pass through the gate unchanged: spaces, quotes, globs and dollars", async () => {
      const file = join(dir, `${name}-args.txt`);
      const fd = openSync(file, "w");
      const args = ["a b", "'q'", '"d"', "$HOME", "*", "", "-n"];
      let s;
      try {
        s = await spawner.spawn({ file: "/usr/bin/printf", args: ["[%s]", ...args], env, stdio: ["ignore", fd, fd], record: { dir, file: `${name}-args.json`, fields: {} } });
      } finally {
        closeSync(fd);
      }
      assert.deepEqual(await exitOf(s), { code: 0, signal: null });
      assert.equal(readFileSync(file, "utf8"), args.map((a) => `[${a}]`).join(""));
    });

    test("the gate's descriptor is closed before the program runs: it sees what an ungated child sees", async () => {
      // The same program without a record (no gate) is the baseline: a descriptor this test's own
      // process inherited without close-on-exec shows in both.
      const fdsSeen = async (gated: boolean) => {
        const file = join(dir, `${name}-gate-fds-${gated}.txt`);
        const fd = openSync(file, "w");
        let s;
        try {
          s = await spawner.spawn({
            file: "/bin/ls",
            args: ["/proc/self/fd"],
            env,
            stdio: ["ignore", fd, "ignore", { write: "x" }],
            ...(gated ? { record: { dir, file: `${name}-fds.json`, fields: {} } } : {}),
          });
        } finally {
          closeSync(fd);
        }
        assert.deepEqual(await exitOf(s), { code: 0, signal: null });
        return readFileSync(file, "utf8").trim().split("\n").map(Number).sort((a, b) => a - b);
      };
      const plain = await fdsSeen(false);
      assert.ok(plain.includes(3), "the caller's pipe");
      assert.deepEqual(await fdsSeen(true), plain);
    });
  });
}

test("a spawner killed before the record is written: the program never runs, and its gate's sh is gone", async () => {
  // A helper process spawns through the real InlineSpawner, with the record's temporary file made
  // a FIFO: the write blocks in open() right after the spawn returned, before anything is recorded.
  // Killed there, as a controller can be, the helper leaves the gate closed unread.
  const work = mkdtempSync(join(dir, "killed-"));
  const ran = join(work, "ran");
  const marker = `kiln-spawner-killed-${process.pid}`;
  const spawnerJs = new URL("../../../src/providers/local/spawner.js", import.meta.url).href;
  const helper = spawn(
    process.execPath,
    [
      "--input-type=module",
      "-e",
      `import { execFileSync } from "node:child_process";
       const { InlineSpawner } = await import(${JSON.stringify(spawnerJs)});
       execFileSync("mkfifo", [${JSON.stringify(work)} + "/.meta.json." + process.pid + ".0.tmp"]);
       await new InlineSpawner().spawn({ file: "/bin/sh", args: ["-c", "touch " + ${JSON.stringify(ran)} + "; sleep 30", ${JSON.stringify(marker)}],
         env: { PATH: "/usr/bin:/bin" }, stdio: ["ignore", "ignore", "ignore"], record: { dir: ${JSON.stringify(work)}, file: "meta.json", fields: {} } });
       console.log("recorded"); // never: the FIFO has no reader`,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let out = "";
  helper.stdout.on("data", (d: Buffer) => (out += d.toString()));
  const helperExit = new Promise((r) => helper.once("exit", r));
  try {
    // The gated sh (its argv holds the marker) exists once the helper's spawn returned.
    for (let i = 0; i < 500 && running(marker).length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(running(marker).length, 1, "the helper's child, held on its gate");
    await new Promise((r) => setTimeout(r, 200)); // the helper is inside the blocked record write by now
    assert.equal(existsSync(ran), false, "the program ran before its record");
  } finally {
    helper.kill("SIGKILL");
    await helperExit;
  }
  assert.equal(out, "");
  for (let i = 0; i < 300 && running(marker).length > 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(running(marker), [], "the gate's sh ended with its spawner");
  assert.equal(existsSync(ran), false, "the program ran after its spawner died unrecorded");
  assert.equal(existsSync(join(work, "meta.json")), false);
});

test("gatedCommand and findExecutable", () => {
  const g = gatedCommand("/usr/bin/bwrap", ["--die-with-parent", "a b"], 6);
  assert.equal(g.file, "/bin/sh");
  assert.deepEqual(g.args, ["-c", 'read -r kiln_gate <&6 || exit 111; exec "$0" "$@" 6<&-', "/usr/bin/bwrap", "--die-with-parent", "a b"]);
  assert.throws(() => gatedCommand("/bin/true", [], 10), /3–9/);
  assert.deepEqual(findExecutable("sh", "/nonexistent:/bin"), { ok: true, file: "/bin/sh" });
  assert.deepEqual(findExecutable("no-such-kiln-program", "/bin:/usr/bin"), { ok: false, code: "ENOENT" });
  const plain = join(dir, "not-a-program");
  writeFileSync(plain, "#!/bin/sh\n", { mode: 0o644 });
  assert.deepEqual(findExecutable(plain, undefined), { ok: false, code: "EACCES" });
  assert.deepEqual(findExecutable("/bin", undefined), { ok: false, code: "ENOENT" }, "a directory is not a program");
});

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

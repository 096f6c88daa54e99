// procfs.ts's descendants on real processes: what terminate signals under bwrap's monitor.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { descendants, readStat } from "../../../src/providers/local/procfs.js";

test("descendants: children and grandchildren, from every thread's list, not the process itself", async () => {
  // sh → (a subshell → sleep) and sh → sleep: three descendants, two levels down.
  const root = spawn("/bin/sh", ["-c", "(sleep 30 & wait) & sleep 30 & wait"], { detached: true, stdio: "ignore" });
  try {
    let found: number[] = [];
    for (let i = 0; i < 200 && found.length < 3; i++) {
      await new Promise((r) => setTimeout(r, 10));
      found = descendants(root.pid!);
    }
    assert.equal(found.length, 3, `found ${found.join(",")}`);
    assert.ok(!found.includes(root.pid!));
    const comms = found.map((p) => readFileSync(`/proc/${p}/comm`, "utf8").trim()).sort();
    assert.deepEqual(comms, ["sh", "sleep", "sleep"]);
    const ppids = found.map((p) => readStat(p)!.ppid);
    assert.ok(ppids.some((pp) => pp !== root.pid), "a grandchild is among them");
    assert.deepEqual(descendants(2 ** 22 + 17), [], "no such process: none");
  } finally {
    process.kill(-root.pid!, "SIGKILL");
  }
});

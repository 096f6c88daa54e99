// logToFile never throws: failed writes are dropped, counted, and reported by the next line that
// can be written (the worked examples of its doc comment).

import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { logToFile } from "../src/log-line.js";

const enospc = () => Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });

/** A file system whose writes fail while `full` is set. */
function fakeDisk() {
  const disk = { full: false, text: "" };
  return { disk, append: (_f: string, t: string) => (disk.full ? (() => { throw enospc(); })() : (disk.text += t)) };
}

test("logToFile: the worked examples", () => {
  const { disk, append } = fakeDisk();
  const log = logToFile("/x/controller.log", { stamp: () => "T ", append });
  log("first");
  assert.equal(disk.text, "T first\n", "writes ok");
  disk.full = true;
  for (const l of ["a", "b", "c"]) assert.doesNotThrow(() => log(l));
  assert.equal(disk.text, "T first\n");
  disk.full = false;
  log("back");
  assert.equal(disk.text, "T first\nT (3 log lines dropped: ENOSPC)\nT back\n", "3 dropped, then ok");
  disk.full = true;
  log("lost");
  disk.full = false;
  log("again");
  assert.match(disk.text, /T \(1 log line dropped: ENOSPC\)\nT again\n$/, "the count starts over");
  disk.full = true;
  log("same");
  log("same");
  disk.full = false;
  log("same");
  assert.match(disk.text, /T \(2 log lines dropped: ENOSPC\)\nT same\n$/, "a dropped line is not the line above: its repeats are dropped too");
});

test("logToFile: repeated lines are counted, not written", () => {
  const { disk, append } = fakeDisk();
  let t = 0;
  const log = logToFile("/x/controller.log", { stamp: () => "T ", append, now: () => t });
  for (let i = 0; i < 5; i++) log("x");
  log("y");
  assert.equal(disk.text, "T x\nT (the line above 4 more times)\nT y\n", "x 5 times, then y");
  disk.text = "";
  log("z");
  t = 61_000;
  log("z");
  assert.equal(disk.text, "T z\nT (the line above 1 more time)\n", "a repeat a minute on");
  log("z");
  log("w");
  assert.equal(disk.text, "T z\nT (the line above 1 more time)\nT (the line above 1 more time)\nT w\n", "the count started over");
});

test("logToFile: a real file whose directory is gone, then back", () => {
  const dir = mkdtempSync(join(tmpdir(), "kiln-log-line-"));
  try {
    const file = join(dir, "logs", "controller.log");
    const log = logToFile(file, { stamp: () => "" });
    assert.doesNotThrow(() => log("nowhere to go"));
    mkdirSync(join(dir, "logs"));
    log("written");
    assert.equal(readFileSync(file, "utf8"), "(1 log line dropped: ENOENT)\nwritten\n");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

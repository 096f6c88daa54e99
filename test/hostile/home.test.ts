// KILN_HOME is the owner's alone, the socket fallback directory is trusted only
// when it is a private directory of this user, and pid files are trusted only
// while they name the process that wrote them.

import assert from "node:assert/strict";
import { chmodSync, chownSync, lstatSync, mkdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { homePaths, parseStartTime, processStartTime, readPidFile, socketDir, writePidFile } from "../../src/home.js";
import { tempDir } from "../image/helpers.js";
import { kilnError } from "./support.js";

const mode = (p: string) => statSync(p).mode & 0o777;

test("KILN_HOME, run and logs are 0700 and state files 0600, whatever the umask", async (t) => {
  const dir = await tempDir(t, "kiln-hostile-");
  const home = join(dir, "home");
  mkdirSync(home, { mode: 0o755 });
  chmodSync(home, 0o755);
  writeFileSync(join(home, "state.db"), "x", { mode: 0o644 });
  writeFileSync(join(home, "state.db-wal"), "x", { mode: 0o644 });
  const old = process.umask(0o022);
  try {
    const paths = homePaths(home);
    assert.equal(mode(home), 0o700);
    assert.equal(mode(paths.run), 0o700);
    assert.equal(mode(paths.logs), 0o700);
    assert.equal(mode(paths.stateDb), 0o600);
    assert.equal(mode(`${paths.stateDb}-wal`), 0o600);
  } finally {
    process.umask(old);
  }
});

test("a long KILN_HOME's socket directory is refused when someone else controls it", async (t) => {
  const dir = await tempDir(t, "kiln-hostile-");
  const run = join(dir, "x".repeat(120), "run");
  const env = {}; // no XDG_RUNTIME_DIR: the temp dir fallback
  const sockets = socketDir(run, env);
  t.after(() => rmSync(sockets, { recursive: true, force: true }));
  assert.notEqual(sockets, run);
  assert.equal(mode(sockets), 0o700);
  assert.equal(socketDir(run, env), sockets, "a private directory of ours is reused");

  chmodSync(sockets, 0o777);
  assert.throws(() => socketDir(run, env), kilnError("KILN_E_UNSAFE", "mode 777"));
  chmodSync(sockets, 0o700);
  if (process.getuid?.() === 0) {
    chownSync(sockets, 12345, 12345);
    assert.throws(() => socketDir(run, env), kilnError("KILN_E_UNSAFE", "owned by uid 12345"));
  }
  rmSync(sockets, { recursive: true, force: true });
  const decoy = join(dir, "decoy");
  mkdirSync(decoy, { mode: 0o700 });
  symlinkSync(decoy, sockets);
  assert.throws(() => socketDir(run, env), kilnError("KILN_E_UNSAFE", "symlink"));
  rmSync(sockets, { force: true });
  assert.equal(lstatSync(dirname(sockets)).isDirectory(), true);
});

test("pid files carry the start time and are trusted only while it matches", async (t) => {
  const dir = await tempDir(t, "kiln-hostile-");
  const file = join(dir, "controller.pid");
  writePidFile(file);
  assert.equal(mode(file), 0o600);
  assert.equal(readPidFile(file), process.pid);
  const start = processStartTime(process.pid)!;
  writeFileSync(file, `${process.pid} ${start + 1}\n`);
  assert.equal(readPidFile(file), undefined, "same pid, another process (pid reused)");
  writeFileSync(file, `${process.pid}\n`);
  assert.equal(readPidFile(file), undefined, "a pid file without a start time is not trusted");
  writeFileSync(file, "garbage");
  assert.equal(readPidFile(file), undefined);
  assert.equal(parseStartTime("42 (a) b) c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10"), 98765);
});

// A hostile image whose /etc/passwd is a symlink to a host FIFO (or is a FIFO)
// must not hang kiln: the read resolves inside the rootfs and refuses anything
// but a regular file. Spawns mkfifo, so it lives in the integration tier.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir, symlink } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { readImageFile } from "../../../src/image/index.js";
import { tempDir } from "../../image/helpers.js";
import { kilnError } from "../support.js";

test("a symlink to a host FIFO, and a FIFO inside the image, neither hang nor read the host", { timeout: 20_000 }, async (t) => {
  const dir = await tempDir(t, "kiln-hostile-");
  const rootfs = join(dir, "rootfs");
  await mkdir(join(rootfs, "etc"), { recursive: true });
  const hostFifo = join(dir, "host-fifo");
  execFileSync("mkfifo", [hostFifo]);
  await symlink(hostFifo, join(rootfs, "etc/passwd"));
  // Before the fix this blocked the event loop forever (readFileSync on a FIFO).
  assert.equal(readImageFile(rootfs, "/etc/passwd"), undefined);
  // The same FIFO path inside the image: refused, not opened for a blocking read.
  await mkdir(join(rootfs, dir.slice(1)), { recursive: true });
  execFileSync("mkfifo", [join(rootfs, hostFifo.slice(1))]);
  assert.throws(() => readImageFile(rootfs, "/etc/passwd"), kilnError("KILN_E_UNSAFE", "not a regular file"));
  execFileSync("mkfifo", [join(rootfs, "etc/group")]);
  assert.throws(() => readImageFile(rootfs, "/etc/group"), kilnError("KILN_E_UNSAFE", "not a regular file"));
});

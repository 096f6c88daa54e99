// Host-side reads of an image's files (its /etc/passwd, for the user to run
// as) stay inside the rootfs: symlinks resolve with the rootfs as "/", only
// small regular files are read. (A FIFO is in integration/: mkfifo is a process.)

import assert from "node:assert/strict";
import { mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { readImageFile } from "../../src/image/index.js";
import { resolveImageUser } from "../../src/providers/local/image-user.js";
import { tempDir } from "../image/helpers.js";
import { kilnError } from "./support.js";

async function rootfsWith(t: Parameters<typeof tempDir>[0]): Promise<{ dir: string; rootfs: string; host: string }> {
  const dir = await tempDir(t, "kiln-hostile-");
  const rootfs = join(dir, "rootfs");
  await mkdir(join(rootfs, "etc"), { recursive: true });
  const host = join(dir, "host-passwd");
  await writeFile(host, "evil:x:0:0::/root:/bin/sh\napp:x:0:0::/:/bin/sh\n");
  return { dir, rootfs, host };
}

test("an absolute symlink to a host file resolves inside the image, never to the host file", async (t) => {
  const { rootfs, host } = await rootfsWith(t);
  await symlink(host, join(rootfs, "etc/passwd"));
  assert.equal(readImageFile(rootfs, "/etc/passwd"), undefined, "the host file was not read");
  // …and so a user name is not resolved from the host's file
  assert.equal(resolveImageUser("app", readImageFile(rootfs, "/etc/passwd"), undefined).ok, false);
});

test("a relative symlink climbing out stops at the image root", async (t) => {
  const { rootfs, host } = await rootfsWith(t);
  const rel = "../".repeat(20) + host.slice(1);
  await symlink(rel, join(rootfs, "etc/passwd"));
  assert.equal(readImageFile(rootfs, "/etc/passwd"), undefined);
  // a symlinked /etc directory is followed inside the image
  await mkdir(join(rootfs, "real-etc"));
  await writeFile(join(rootfs, "real-etc/group"), "app:x:1000:\n");
  await symlink("/real-etc", join(rootfs, "etc2"));
  assert.equal(readImageFile(rootfs, "/etc2/group"), "app:x:1000:\n");
});

test("a directory, a symlink loop or an oversized file is refused with a KilnError", async (t) => {
  const { rootfs } = await rootfsWith(t);
  await mkdir(join(rootfs, "etc/passwd"));
  assert.throws(() => readImageFile(rootfs, "/etc/passwd"), kilnError("KILN_E_UNSAFE", "not a regular file"));
  await symlink("b", join(rootfs, "etc/a"));
  await symlink("a", join(rootfs, "etc/b"));
  assert.throws(() => readImageFile(rootfs, "/etc/a"), kilnError("KILN_E_UNSAFE", "loop"));
  await writeFile(join(rootfs, "etc/group"), Buffer.alloc(5 * 1024 * 1024, 0x61));
  assert.throws(() => readImageFile(rootfs, "/etc/group"), kilnError("KILN_E_UNSAFE", "bytes"));
});

// `files` in kiln.yaml: a symlink (the source itself, or a directory on its
// way) that leads out of the project is refused; a host file is never baked.

import assert from "node:assert/strict";
import { mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { collectFiles } from "../../src/image/layer.js";
import { tempDir } from "../image/helpers.js";
import { kilnError } from "./support.js";

test("a listed symlink to a host file, or through a symlinked directory, is refused", async (t) => {
  const dir = await tempDir(t, "kiln-hostile-");
  const project = join(dir, "project");
  const outside = join(dir, "outside");
  await mkdir(project);
  await mkdir(outside);
  await writeFile(join(outside, "secret"), "host secret\n");
  await symlink(join(outside, "secret"), join(project, "config.json"));
  await symlink("../outside", join(project, "lib"));
  await writeFile(join(project, "ok.js"), "1\n");
  await symlink("ok.js", join(project, "alias.js"));
  await assert.rejects(collectFiles(project, [{ src: "config.json", dest: "/app/config.json" }], "image.files"), kilnError("KILN_E_SPEC", "outside the project"));
  await assert.rejects(collectFiles(project, [{ src: "lib/secret", dest: "/app/secret" }], "image.files"), kilnError("KILN_E_SPEC", "outside the project"));
  await assert.rejects(collectFiles(project, [{ src: "lib", dest: "/app/lib" }], "image.files"), kilnError("KILN_E_SPEC", "outside the project"));
  // a link that stays inside the project is read from where it leads
  const { entries } = await collectFiles(project, [{ src: "alias.js", dest: "/app/alias.js" }], "image.files");
  assert.equal(entries[0]!.file!.size, 2);
});

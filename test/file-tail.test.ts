import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { tailLines } from "../src/file-tail.js";

test("tailLines: the last lines, from the file's last bytes only; [] when it cannot be read", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "kiln-tail-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const f = join(dir, "log");
  writeFileSync(f, "one\ntwo\n\nthree\nfour\n\n");
  assert.deepEqual(tailLines(f, 3), ["", "three", "four"]);
  assert.deepEqual(tailLines(f, 10), ["one", "two", "", "three", "four"]);
  assert.deepEqual(tailLines(f, 10, 12), ["three", "four"], "only the last 12 bytes are read");
  assert.deepEqual(tailLines(join(dir, "absent"), 3), []);
});

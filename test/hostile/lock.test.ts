// Taking over a stale store lock: of many contenders that all judge it stale
// at once, exactly one holds the lock at any time.

import assert from "node:assert/strict";
import { readdir, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { withLock } from "../../src/image/lock.js";
import { tempDir } from "../image/helpers.js";

test("20 contenders take over one stale lock: never two inside at once", async (t) => {
  const dir = await tempDir(t, "kiln-hostile-");
  for (let round = 0; round < 10; round++) {
    const lock = join(dir, `r${round}.lock`);
    // A holder that is gone: a pid that cannot exist on Linux (above pid_max's 2^22 ceiling).
    await writeFile(lock, `${2 ** 22 + 1}\n${hostname()}\n0\nstale${round}`);
    let inside = 0;
    let most = 0;
    // Staggered starts, so some contenders judge the lock stale while others are already taking it.
    const runs = Array.from({ length: 20 }, (_, i) =>
      new Promise((r) => setTimeout(r, i % 4)).then(() => withLock(
        lock,
        async () => {
          inside++;
          most = Math.max(most, inside);
          await new Promise((r) => setTimeout(r, 2));
          inside--;
        },
        { timeoutMs: 20_000 },
      )),
    );
    await Promise.all(runs);
    assert.equal(most, 1, `round ${round}: ${most} contenders held the lock at once`);
  }
  assert.deepEqual((await readdir(dir)).filter((f) => f.includes(".tmp") || f.includes("takeover")), [], "no temp or sentinel files left");
});

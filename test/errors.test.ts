// fromSystemError: which system errors reach the user as a KilnError (the worked examples of its doc comment).

import assert from "node:assert/strict";
import { test } from "node:test";
import { fromSystemError, KilnError } from "../src/errors.js";

const sys = (code: string, syscall: string, path?: string) => Object.assign(new Error(`${code}: x, ${syscall}`), { code, syscall, ...(path ? { path } : {}) });

test("fromSystemError: the worked examples", () => {
  const rows: Array<[string, unknown, string | undefined]> = [
    ["ENOSPC on write", sys("ENOSPC", "write"), "KILN_E_NO_SPACE no space left on device (write)"],
    ["ENOSPC on open, with its path", sys("ENOSPC", "open", "/h/store/tmp/x"), "KILN_E_NO_SPACE no space left on device (open /h/store/tmp/x)"],
    ["EDQUOT", sys("EDQUOT", "write"), "KILN_E_NO_SPACE disk quota exceeded (write)"],
    ["ENOENT", sys("ENOENT", "open", "/x"), undefined],
    ["a TypeError", new TypeError("x is not a function"), undefined],
    ["a KilnError stays what it is", new KilnError("KILN_E_IMAGE", "no space"), undefined],
    ["not an Error", "ENOSPC", undefined],
  ];
  for (const [name, e, want] of rows) {
    const k = fromSystemError(e);
    assert.equal(k && `${k.code} ${k.message}`, want, name);
    if (k) {
      assert.equal(k.exitCode, 1, `${name}: a failed operation, not bad input`);
      assert.match(k.hint ?? "", /free space/);
      assert.equal(k.cause, e);
    }
  }
});

// kiln's own uid range (issue 12, uid-range.ts): parsing, the conflict check's worked examples,
// and claims that are stable per service and distinct between services.

import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { isKilnError } from "../../src/errors.js";
import { checkUidRange } from "../../src/providers/local/index.js";
import { DEFAULT_UID_RANGE, claimUid, firstSlot, parseUidRange, rangeConflicts, serviceKey } from "../../src/providers/local/uid-range.js";
import { localUidRange } from "../../src/providers/registry.js";

describe("parseUidRange", () => {
  const rows: [string, unknown][] = [
    ["880000000-880065535", { start: 880000000, count: 65536 }],
    [" 5000 - 5009 ", { start: 5000, count: 10 }],
    ["5000-4000", "ends before it starts"],
    ["0-100", "includes uid 0"],
    ["abc", "is not START-END"],
    ["4294967295-4294967295", "past the largest uid"],
  ];
  for (const [text, want] of rows)
    it(JSON.stringify(text), () => {
      const r = parseUidRange(text);
      if (typeof want === "string") assert.match("error" in r ? r.error : "", new RegExp(want));
      else assert.deepEqual(r, want);
    });

  it("KILN_UID_RANGE: unset is the default; a bad one is a usage error", () => {
    assert.deepEqual(localUidRange({}), DEFAULT_UID_RANGE);
    assert.deepEqual(localUidRange({ KILN_UID_RANGE: "900-999" }), { start: 900, count: 100 });
    assert.throws(() => localUidRange({ KILN_UID_RANGE: "x" }), (e: unknown) => isKilnError(e) && e.code === "KILN_E_USAGE");
  });
});

describe("rangeConflicts", () => {
  it("the doc comment's examples", () => {
    assert.deepEqual(rangeConflicts({ start: 1000, count: 1000 }, { passwd: "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/bash\n" }), ["/etc/passwd: alice (uid 1000)"]);
    assert.deepEqual(rangeConflicts({ start: 150000, count: 100 }, { subuid: "alice:100000:65536\n" }), ["/etc/subuid: alice (100000–165535)"]);
    assert.deepEqual(rangeConflicts({ start: 880000000, count: 65536 }, { passwd: "alice:x:1000:1000::/:/bin/sh\n", subuid: "alice:100000:65536\n" }), []);
  });

  it("groups and subgid ranges count too; a range that only touches an edge conflicts", () => {
    assert.deepEqual(rangeConflicts({ start: 165535, count: 10 }, { group: "staff:x:165540:\n", subgid: "bob:100000:65536\n" }), ["/etc/group: staff (gid 165540)", "/etc/subgid: bob (100000–165535)"]);
  });

  it("the default range is free on this machine, and a range over its system accounts is refused with the names", () => {
    checkUidRange(DEFAULT_UID_RANGE);
    assert.throws(
      () => checkUidRange({ start: 1, count: 100 }),
      (e: unknown) => isKilnError(e) && e.code === "KILN_E_PROVIDER" && /\/etc\/passwd: \w+ \(uid \d+\)/.test(e.message) && /KILN_UID_RANGE/.test(e.hint ?? ""),
    );
  });
});

describe("claimUid", () => {
  it("one uid per service key, stable across calls, distinct between services, all inside the range", () => {
    const dir = mkdtempSync(join(tmpdir(), "kiln-uid-claims-"));
    try {
      const range = { start: 880_200_000, count: 4 };
      const a = claimUid(dir, range, serviceKey("/h", "alpha"));
      assert.equal(claimUid(dir, range, serviceKey("/h", "alpha")), a);
      const b = claimUid(dir, range, serviceKey("/h", "beta"));
      const c = claimUid(dir, range, serviceKey("/other-home", "alpha"));
      const d = claimUid(dir, range, serviceKey("/h", "delta"));
      const all = [a, b, c, d];
      assert.equal(new Set(all).size, 4);
      for (const u of all) assert.ok(u >= range.start && u < range.start + range.count);
      assert.throws(() => claimUid(dir, range, serviceKey("/h", "epsilon")), /every uid of 880200000–880200003 is claimed/);
      assert.deepEqual(readdirSync(dir).sort(), ["0", "1", "2", "3"], "no temporary files are left");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the first slot is a hash of the key within the range", () => {
    const k = serviceKey("/h", "alpha");
    assert.equal(firstSlot(k, 65536), Number(BigInt(`0x${k.slice(0, 12)}`) % 65536n));
    assert.ok(firstSlot(k, 7) < 7);
  });
});

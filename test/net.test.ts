import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type AddressInfo } from "node:net";
import { DEFAULT_PORT_RANGE, freeLoopbackPort, portRange } from "../src/net.js";
import { isKilnError } from "../src/errors.js";

test("portRange: the default stops short of the kernel's ephemeral range", () => {
  assert.deepEqual(portRange({}, 32768), [20000, 32767]);
  assert.deepEqual(portRange({}, 30000), [20000, 29999]);
  assert.deepEqual(portRange({}, undefined), [...DEFAULT_PORT_RANGE]);
  // an ephemeral range that leaves no room below it: the kernel picks (port 0)
  assert.equal(portRange({}, 20100), undefined);
});

test("portRange: KILN_PORT_RANGE is taken as written, and a bad one is a usage error", () => {
  assert.deepEqual(portRange({ KILN_PORT_RANGE: "21000-21999" }, 32768), [21000, 21999]);
  assert.deepEqual(portRange({ KILN_PORT_RANGE: " 40000 - 40100 " }, 32768), [40000, 40100]);
  for (const bad of ["20000", "a-b", "900-2000", "30000-20000", "20000-70000"]) {
    assert.throws(() => portRange({ KILN_PORT_RANGE: bad }), (e) => isKilnError(e) && e.code === "KILN_E_USAGE" && e.message.includes("KILN_PORT_RANGE"), bad);
  }
});

test("freeLoopbackPort: bindable ports from the range, none handed out twice", async () => {
  const saved = process.env.KILN_PORT_RANGE;
  process.env.KILN_PORT_RANGE = "23000-23039";
  // one port of the range is taken: it is never handed out
  const squatter = createServer();
  try {
    await new Promise<void>((r, j) => squatter.once("error", j).listen(23007, "127.0.0.1", () => r()));
  } catch {
    // someone else holds it: that serves the test just as well
  }
  try {
    const seen = new Set<number>();
    for (let i = 0; i < 20; i++) {
      const p = await freeLoopbackPort();
      assert.ok(p >= 23000 && p <= 23039, `${p} in range`);
      assert.notEqual(p, 23007);
      assert.ok(!seen.has(p), `${p} handed out twice`);
      seen.add(p);
      // and it really is free: it binds
      const s = createServer();
      await new Promise<void>((r, j) => s.once("error", j).listen(p, "127.0.0.1", () => r()));
      assert.equal((s.address() as AddressInfo).port, p);
      await new Promise<void>((r) => s.close(() => r()));
    }
  } finally {
    squatter.close();
    if (saved === undefined) delete process.env.KILN_PORT_RANGE;
    else process.env.KILN_PORT_RANGE = saved;
  }
});

// The shared HAProxy listener's lock (shared.ts withEdgeLock): holders in turn,
// never two at once; a lock left by a process that is gone is taken over; the
// entries a service writes are what the config is rendered from.

import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { describe, it } from "node:test";
import { renderSharedFiles, readServices, sharedEdgeFiles, withEdgeLock, type ServiceEntry } from "../../src/traffic/haproxy/shared.js";
import { tempDir } from "./helpers.js";

describe("withEdgeLock", () => {
  it("lets one holder in at a time and removes the lock after", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const files = sharedEdgeFiles(dir);
      let inside = 0;
      let most = 0;
      const order: number[] = [];
      await Promise.all(
        [1, 2, 3, 4].map((i) =>
          withEdgeLock(files, async () => {
            inside++;
            most = Math.max(most, inside);
            assert.equal(readFileSync(files.lock, "utf8").trim(), String(process.pid), "the lock names its holder");
            await new Promise((r) => setTimeout(r, 5));
            order.push(i);
            inside--;
          }),
        ),
      );
      assert.equal(most, 1);
      assert.equal(order.length, 4);
      assert.equal(existsSync(files.lock), false);
    } finally {
      await cleanup();
    }
  });
  it("takes over a lock whose holder is gone, and releases it when fn throws", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const files = sharedEdgeFiles(dir);
      writeFileSync(files.lock, "2147483646\n"); // no such process
      assert.equal(await withEdgeLock(files, async () => "ran"), "ran");
      await assert.rejects(withEdgeLock(files, async () => Promise.reject(new Error("boom"))), /boom/);
      assert.equal(existsSync(files.lock), false);
    } finally {
      await cleanup();
    }
  });
});

describe("renderSharedFiles", () => {
  it("renders every service's backend and the host map; creates missing maintenance maps", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const files = sharedEdgeFiles(dir);
      const health = { path: "/healthz", intervalMs: 1000, timeoutMs: 500, healthyThreshold: 1, unhealthyThreshold: 1 };
      const entry = (service: string, hosts: string[]): ServiceEntry => ({ service, backend: `kiln_svc_${service}`, route: { hosts }, health, serverOptions: { intervalMs: 1000, rise: 1, fall: 1 }, servers: [] });
      await renderSharedFiles(files, { listen: "127.0.0.1:8080", adminSocket: files.admin, requestLog: false, hardStopAfterMs: 1000, maxconn: 100, instanceHeader: true }, [entry("a", ["a.test"]), entry("b", ["*.b.test"])], health);
      const cfg = readFileSync(files.config, "utf8");
      assert.match(cfg, /\nbackend kiln_svc_a\n/);
      assert.match(cfg, /\nbackend kiln_svc_b\n/);
      assert.equal(readFileSync(files.hostMap, "utf8"), "a.test/ kiln_svc_a\n*.b.test/ kiln_svc_b\n");
      assert.ok(existsSync(`${dir}/maintenance.kiln_svc_a.map`) && existsSync(`${dir}/maintenance.kiln_svc_b.map`));
      assert.deepEqual(await readServices(files), [], "entries are written by the services themselves, not by rendering");
    } finally {
      await cleanup();
    }
  });
});

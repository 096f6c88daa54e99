// Broken homes, built by hand: a state database with what a crash leaves behind, pid
// files and sockets of dead daemons, a saved routing table, rootfs caches.

import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { homePaths, type HomePaths } from "../../src/home.js";
import { StateDb, type Release } from "../../src/state/db.js";
import { EMPTY_TABLE } from "../../src/traffic/proxy/table.js";
import type { RoutingTable, Target } from "../../src/traffic/router.js";
import { releaseSpec } from "../controller/fake-world.js";

export const SERVICE = "svc";

export function tempHome(t: { after(fn: () => void): void }): { home: string; paths: HomePaths } {
  const home = mkdtempSync(join(tmpdir(), "kiln-doctor-"));
  t.after(() => rmSync(home, { recursive: true, force: true }));
  return { home, paths: homePaths(home) };
}

/** The pid of a process that has exited (and been reaped). */
export function deadPid(): number {
  const r = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
  return Number(r.stdout);
}

/** A unix socket file nobody listens on: its server was SIGKILLed, so it could not unlink it. */
export function staleSocket(path: string): void {
  spawnSync(process.execPath, ["-e", `require("node:net").createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, "SIGKILL"))`], { timeout: 10_000 });
}

export function withDb<T>(paths: HomePaths, fn: (db: StateDb) => T): T {
  const db = new StateDb(paths.stateDb);
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

export function addRelease(db: StateDb, digest: string, opts: { live?: boolean; previous?: string; version?: string } = {}): Release {
  const version = opts.version ?? `1.0.${db.listReleases(SERVICE).length + 1}`;
  const r = db.createRelease({
    service: SERVICE, ref: `${SERVICE}:${version}`, version, digest, configHash: "sha256:0", env: {}, spec: releaseSpec(),
    strategy: "rolling", status: opts.live ? "live" : "superseded", createdAt: Date.now(), previous: opts.previous,
  });
  if (opts.live) db.setFact(SERVICE, "live", r.id);
  return r;
}

export function table(targets: Array<Partial<Target> & { id: string }>): RoutingTable {
  return { ...EMPTY_TABLE, version: 7, targets: targets.map((t) => ({ release: "r1", address: "127.0.0.1:1", weight: 1, state: "active" as const, ...t })) };
}

export const fakeDigest = (c: string) => `sha256:${c.repeat(64)}`;

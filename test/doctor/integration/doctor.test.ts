// kiln doctor over homes broken by hand: each finding is found, named and located, and
// --repair fixes what is safe (and only that).

import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { runDoctor, type DoctorReport } from "../../../src/doctor/index.js";
import { openStore } from "../../../src/image/index.js";
import { canonicalBytes } from "../../../src/image/digest.js";
import { MEDIA_TYPE } from "../../../src/image/types.js";
import { StateDb } from "../../../src/state/db.js";
import { loadTableFile, saveTableFile } from "../../../src/traffic/proxy/state-file.js";
import { addRelease, deadPid, fakeDigest, SERVICE, staleSocket, table, tempHome, withDb } from "../helpers.js";

const checks = (r: DoctorReport) => r.findings.map((f) => f.check).sort();
const find = (r: DoctorReport, check: string) => r.findings.filter((f) => f.check === check);

test("an empty home is healthy", async (t) => {
  const { home } = tempHome(t);
  const r = await runDoctor({ home, keep: 5, services: [SERVICE] });
  assert.deepEqual(r.findings, []);
  assert.equal(r.healthy, true);
  assert.equal(r.schemaVersion, 1);
});

test("a lease held by a dead controller is found and dropped; a live holder's lease is left alone", async (t) => {
  const { home, paths } = tempHome(t);
  const dead = `${deadPid()}@${hostname()}`;
  withDb(paths, (db) => {
    db.acquireLease(SERVICE, dead, Date.now(), 60_000);
    db.acquireLease("other", `${process.pid}@${hostname()}`, Date.now(), 60_000);
  });
  const r = await runDoctor({ home, keep: 5 });
  assert.deepEqual(checks(r), ["lease.dead"]);
  assert.equal(r.findings[0]!.where, `lease:${SERVICE}`);
  assert.match(r.findings[0]!.what, new RegExp(dead));
  assert.equal(r.healthy, false);

  const fixed = await runDoctor({ home, keep: 5, repair: true });
  assert.equal(fixed.findings[0]!.repaired?.ok, true);
  assert.equal(fixed.healthy, true);
  assert.deepEqual(withDb(paths, (db) => db.leases().map((l) => l.service)), ["other"]);
});

test("stale pid files and sockets of dead daemons are found and removed", async (t) => {
  const { home, paths } = tempHome(t);
  writeFileSync(paths.controllerPid, String(deadPid()));
  writeFileSync(paths.proxyPid, "garbage");
  staleSocket(paths.controllerSocket);
  assert.ok(existsSync(paths.controllerSocket), "the fixture left a socket file");
  const r = await runDoctor({ home, keep: 5 });
  assert.deepEqual(checks(r), ["daemon.stale-pidfile", "daemon.stale-pidfile", "daemon.stale-socket"]);
  assert.deepEqual(find(r, "daemon.stale-socket")[0]!.where, paths.controllerSocket);

  const fixed = await runDoctor({ home, keep: 5, repair: true });
  assert.ok(fixed.findings.every((f) => f.repaired?.ok), JSON.stringify(fixed.findings));
  assert.equal(fixed.healthy, true);
  for (const f of [paths.controllerPid, paths.proxyPid, paths.controllerSocket]) assert.equal(existsSync(f), false, f);
  assert.deepEqual((await runDoctor({ home, keep: 5 })).findings, []);
});

test("an instance recorded as running with no process is vanished: marked gone with no controller, left to a live one", async (t) => {
  const { home, paths } = tempHome(t);
  withDb(paths, (db) => {
    const r1 = addRelease(db, fakeDigest("a"), { live: true });
    db.insertInstance({ id: "svc-r1-gone01", service: SERVICE, release: r1.id, digest: r1.digest, state: "running", routing: "active", launchedAt: 1, pid: deadPid(), address: "127.0.0.1:1" });
    // a live controller holds the lease
    db.acquireLease(SERVICE, `${process.pid}@${hostname()}`, Date.now(), 60_000);
  });
  // (its image is missing too: that is reported, never "repaired")
  const withController = await runDoctor({ home, keep: 5, repair: true });
  const v = find(withController, "instance.vanished")[0]!;
  assert.equal(v.where, "svc-r1-gone01");
  assert.equal(v.repaired, undefined);
  assert.equal(v.blockedBy, "controller running: it will reconcile");
  assert.equal(withDb(paths, (db) => db.getInstance("svc-r1-gone01")!.state), "running");

  withDb(paths, (db) => db.releaseLease(SERVICE, `${process.pid}@${hostname()}`));
  const fixed = await runDoctor({ home, keep: 5, repair: true });
  assert.equal(find(fixed, "instance.vanished")[0]!.repaired?.ok, true);
  const rec = withDb(paths, (db) => db.getInstance("svc-r1-gone01")!);
  assert.equal(rec.state, "terminated");
  assert.equal(rec.routing, "none");
  assert.match(rec.reason ?? "", /doctor/);
  assert.equal(withDb(paths, (db) => db.listReleases(SERVICE).length), 1, "release records are never deleted");
  assert.equal(fixed.healthy, false, "the missing image remains a problem");
  assert.deepEqual(checks(fixed), ["instance.vanished", "release.image-missing"]);
});

test("a saved routing table that points at nothing is pruned while the proxy is down", async (t) => {
  const { home, paths } = tempHome(t);
  await saveTableFile(paths.routesFile, table([{ id: "svc-r1-nothere" }, { id: "svc-r1-alsogone", address: "127.0.0.1:2" }]));
  const r = await runDoctor({ home, keep: 5, services: [SERVICE] });
  const f = find(r, "routes.dead-target")[0]!;
  assert.match(f.what, /svc-r1-nothere, svc-r1-alsogone/);
  assert.equal(f.where, paths.routesFile);
  const fixed = await runDoctor({ home, keep: 5, services: [SERVICE], repair: true });
  assert.equal(fixed.healthy, true);
  const after = await loadTableFile(paths.routesFile);
  assert.ok(after.kind === "ok");
  assert.deepEqual(after.table.targets, []);
  assert.equal(after.table.version, 7, "the version is kept: the controller's next table still supersedes it");
});

test("a release in the keep window whose image is missing or incomplete is an error no repair hides", async (t) => {
  const { home, paths } = tempHome(t);
  const store = openStore(home);
  const layer = await store.putBlob(Buffer.from("layer"));
  const config = await store.putBlob(Buffer.from("{}"));
  const whole = await store.putBlob(canonicalBytes({ schemaVersion: 2, config: { mediaType: MEDIA_TYPE.config, ...config }, layers: [{ mediaType: MEDIA_TYPE.layerGzip, ...layer }] }));
  const lost = fakeDigest("b");
  const partial = await store.putBlob(canonicalBytes({ schemaVersion: 2, config: { mediaType: MEDIA_TYPE.config, ...config }, layers: [{ mediaType: MEDIA_TYPE.layerGzip, digest: fakeDigest("c"), size: 9 }] }));
  withDb(paths, (db) => {
    const r1 = addRelease(db, fakeDigest("d")); // outside a keep window of 3
    const r2 = addRelease(db, lost.toString(), { previous: r1.id });
    const r3 = addRelease(db, partial.digest, { previous: r2.id });
    const r4 = addRelease(db, whole.digest, { previous: r3.id, live: true });
    void r4;
  });
  const r = await runDoctor({ home, keep: 3, repair: true });
  const missing = find(r, "release.image-missing");
  assert.deepEqual(missing.map((f) => f.where).sort(), [lost, partial.digest].sort());
  assert.match(missing.find((f) => f.where === partial.digest)!.what, /r3 .*rollback target of the live release.*missing layer sha256:cccc/);
  assert.ok(missing.every((f) => f.repair === undefined && f.repaired === undefined));
  // the rollback target is what `kiln rollback` needs next: an error; an older release only narrows the window
  assert.equal(missing.find((f) => f.where === partial.digest)!.severity, "error");
  assert.equal(missing.find((f) => f.where === lost)!.severity, "warning");
  assert.equal(r.healthy, false);
  assert.equal(r.counts.remaining, 2);
});

test("a rollout past its deadline is reported as stuck; a paused one is only noted", async (t) => {
  const { home, paths } = tempHome(t);
  const now = Date.now();
  const store = openStore(home);
  const m = await store.putBlob(canonicalBytes({ schemaVersion: 2, config: { mediaType: MEDIA_TYPE.config, ...(await store.putBlob(Buffer.from("{}"))) }, layers: [] }));
  withDb(paths, (db) => {
    const r1 = addRelease(db, m.digest);
    db.createRollout({ service: SERVICE, kind: "deploy", strategy: "rolling", target: r1.id, state: "running", startedAt: now - 10 * 60_000, fast: false, promoteRequested: false });
  });
  const r = await runDoctor({ home, keep: 5, now });
  const f = find(r, "rollout.stuck")[0]!;
  assert.match(f.what, /deploy to r1 has run 10 min, past its 60 s deadline/);
  assert.match(f.fix, /kiln up/);
  withDb(paths, (db) => db.updateRollout(db.activeRollout(SERVICE)!.id, { paused: true }));
  const paused = await runDoctor({ home, keep: 5, now });
  assert.deepEqual(checks(paused), ["rollout.paused"]);
  assert.equal(paused.healthy, true, "a note is not a problem");
});

test("rootfs caches of digests not in the store are removed", async (t) => {
  const { home } = tempHome(t);
  const store = openStore(home);
  await store.readIndex();
  const hex = "e".repeat(64);
  mkdirSync(join(store.rootfsRoot(), hex, "usr", "bin"), { recursive: true });
  writeFileSync(join(store.rootfsRoot(), hex, "usr", "bin", "app"), "x".repeat(1000));
  const r = await runDoctor({ home, keep: 5, repair: true });
  assert.deepEqual(checks(r), ["rootfs.orphan"]);
  assert.equal(r.findings[0]!.repaired?.ok, true);
  assert.deepEqual(readdirSync(store.rootfsRoot()), []);
});

test("a state database that is not a database, or is newer than this kiln, is an error", async (t) => {
  const { home, paths } = tempHome(t);
  writeFileSync(paths.stateDb, "x".repeat(4096));
  const r = await runDoctor({ home, keep: 5 });
  assert.deepEqual(checks(r), ["state.unreadable"]);
  assert.equal(r.findings[0]!.where, paths.stateDb);

  const other = tempHome(t);
  const db = new StateDb(other.paths.stateDb);
  db.db.setSchemaVersion(99);
  db.close();
  const newer = await runDoctor({ home: other.home, keep: 5 });
  assert.deepEqual(checks(newer), ["state.schema"]);
  assert.match(newer.findings[0]!.what, /v99, newer than this kiln/);
});

// diagnose() is pure: facts in, findings out. Table tests for the decisions that matter:
// when a repair is offered and when it is withheld.

import assert from "node:assert/strict";
import { test } from "node:test";
import { diagnose } from "../../src/doctor/diagnose.js";
import type { Facts, ServiceFacts } from "../../src/doctor/types.js";
import type { ObservedInstance } from "../../src/providers/provider.js";
import type { InstanceRecord } from "../../src/state/db.js";

const NOW = 1_700_000_000_000;

function facts(over: Partial<Facts> = {}, services: ServiceFacts[] = []): Facts {
  const daemon = (name: "controller" | "proxy") => ({ name, pidFile: `/h/run/${name}.pid`, pidFileExists: false, pidAlive: false, socket: `/h/run/${name}.sock`, socketExists: false, socketAnswers: false });
  return {
    now: NOW, home: "/h", keep: 5, state: { kind: "ok", file: "/h/state.db", integrity: ["ok"], schema: { version: 3, latest: 3 } },
    leases: [], controller: daemon("controller"), proxy: daemon("proxy"), services, routes: { source: "none", file: "/h/run/routes.json", targets: [] }, rootfs: [],
    ...over,
  };
}

const rec = (id: string, state: InstanceRecord["state"] = "running"): InstanceRecord => ({ id, service: "svc", release: "r1", digest: "sha256:x", state, routing: "active", launchedAt: 0, address: "127.0.0.1:1" });
const obs = (id: string, state: ObservedInstance["state"] = "running", address = "127.0.0.1:1"): ObservedInstance => ({ id, service: "svc", release: "r1", digest: "sha256:x", address, state, startedAt: 0 });
const svc = (recorded: InstanceRecord[], observed: ObservedInstance[] | undefined): ServiceFacts => ({ service: "svc", recorded, observed, releases: [], rollouts: [] });

const cases: Array<{ name: string; f: Facts; want: Array<[string, "repair" | "blocked" | "none"]> }> = [
  { name: "healthy fleet", f: facts({}, [svc([rec("a")], [obs("a")])]), want: [] },
  { name: "vanished, no controller → mark-gone", f: facts({}, [svc([rec("a")], [])]), want: [["instance.vanished", "repair"]] },
  { name: "launching row, controller alive (pid file) → withheld: it may be mid-launch", f: facts({ controller: { ...facts().controller, pidFileExists: true, pid: 9, pidAlive: true, socketExists: true, socketAnswers: true } }, [svc([rec("a", "launching")], [])]), want: [["instance.vanished", "blocked"]] },
  { name: "orphan, controller alive by lease → withheld", f: facts({ leases: [{ service: "svc", owner: "9@h", until: NOW + 5000, ownerAlive: true }] }, [svc([], [obs("o")])]), want: [["instance.orphan", "blocked"]] },
  { name: "orphan, live pid but expired lease, no pid file → terminate", f: facts({ leases: [{ service: "svc", owner: "9@h", until: NOW - 1, ownerAlive: true }] }, [svc([], [obs("o")])]), want: [["instance.orphan", "repair"]] },
  { name: "exited orphan is no orphan", f: facts({}, [svc([], [obs("o", "exited")])]), want: [] },
  { name: "lease on another host is not judged", f: facts({ leases: [{ service: "svc", owner: "9@elsewhere", until: NOW + 5000 }] }), want: [] },
  { name: "provider could not list → warning, no instance verdicts", f: facts({}, [{ ...svc([rec("a")], undefined), providerError: "docker down" }]), want: [["provider.unavailable", "none"]] },
  { name: "local sandbox: bwrap 0.8 with every option → nothing", f: facts({ sandbox: { bwrap: { path: "/usr/bin/bwrap", missing: [] } } }), want: [] },
  { name: "local sandbox: no bwrap → error", f: facts({ sandbox: { bwrap: null } }), want: [["sandbox.unavailable", "none"]] },
  { name: "local network: no pasta → warning (instances share the host's network)", f: facts({ sandbox: { bwrap: { path: "/usr/bin/bwrap", missing: [] }, pasta: null } }), want: [["network.shared", "none"]] },
  { name: "local network: pasta found → nothing", f: facts({ sandbox: { bwrap: { path: "/usr/bin/bwrap", missing: [] }, pasta: "/usr/bin/pasta" } }), want: [] },
  { name: "local sandbox: bwrap without --disable-userns → error", f: facts({ sandbox: { bwrap: { path: "/usr/bin/bwrap", missing: ["--disable-userns"] } } }), want: [["sandbox.unavailable", "none"]] },
  {
    name: "proxy's live table with a target at a moved address → reported, not rewritten",
    f: facts({ routes: { source: "proxy", file: "/h/run/routes.json", targets: [{ id: "a", release: "r1", address: "127.0.0.1:2", weight: 1, state: "active" }] } }, [svc([rec("a")], [obs("a")])]),
    want: [["routes.dead-target", "none"]],
  },
  {
    name: "rootfs of a vanished image still used by a running instance → withheld",
    f: facts({ rootfs: [{ digest: "sha256:x", path: "/h/rootfs/x", inStore: false, usedBy: ["a"] }] }, [svc([rec("a")], [obs("a")])]),
    want: [["rootfs.orphan", "blocked"]],
  },
  {
    name: "a pid alive but its socket silent → unresponsive, nothing removed",
    f: facts({ proxy: { ...facts().proxy, pidFileExists: true, pid: 9, pidAlive: true, socketExists: true, socketAnswers: false } }),
    want: [["daemon.unresponsive", "none"]],
  },
];

for (const c of cases) {
  test(`diagnose: ${c.name}`, () => {
    const got = diagnose(c.f).map((f) => [f.check, f.repair ? "repair" : f.blockedBy ? "blocked" : "none"]);
    assert.deepEqual(got, c.want);
  });
}

test("an unreadable state: the fix fits the backend (a file to restore, or a PostgreSQL to reach)", () => {
  const file = diagnose(facts({ state: { kind: "unreadable", file: "/h/state.db", error: "file is not a database" } }))[0]!;
  assert.equal(file.check, "state.unreadable");
  assert.match(file.fix, /restore it from a backup/);
  const pg = diagnose(facts({ state: { kind: "unreadable", backend: "postgres", file: "postgres://kiln:***@db/kiln", error: "connect ECONNREFUSED" } }))[0]!;
  assert.equal(pg.where, "postgres://kiln:***@db/kiln");
  assert.match(pg.fix, /PostgreSQL runs and answers/);
  assert.doesNotMatch(pg.fix, /backup/);
});

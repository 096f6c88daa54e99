// Facts → findings. Pure: no I/O, no clock (facts.now is the time). Each finding says
// what is wrong, where, how to fix it and, when --repair may do it safely now, the
// repair as data.
//
// Worked examples:
// - lease "4242@thishost" and pid 4242 is gone → lease.dead, repair drop-lease;
// - instance web-r3-1a2b in state as running, provider sees it exited, no controller
//   running → instance.vanished, repair mark-gone; with a controller running the repair
//   is withheld (it may be mid-launch, and it reconciles its own fleet);
// - provider runs web-r4-9f9f, state has no row → instance.orphan, repair
//   terminate-orphan only when no controller runs (a live one adopts or stops it);
// - routes.json (proxy down) names web-r2-0000, which state has terminated →
//   routes.dead-target, repair prune-routes;
// - release r6 is the rollback target and its manifest is not in the store →
//   release.image-missing (error, no repair: only a re-bake brings it back).

import type { DaemonFacts, Facts, Finding, ServiceFacts } from "./types.js";

const STUCK_SLACK_MS = 30_000;

export function diagnose(f: Facts): Finding[] {
  const out: Finding[] = [];
  const controllerRunning = isControllerRunning(f);
  const reconcile = "controller running: it will reconcile";

  // ---- state
  if (f.state.kind === "unreadable") {
    out.push({
      check: "state.unreadable",
      severity: "error",
      what: `the state database cannot be opened: ${f.state.error}`,
      where: f.state.file,
      fix:
        f.state.backend === "postgres"
          ? "check that PostgreSQL runs and answers at the `state:` URL (kiln.yaml or KILN_STATE), and the user and password (URL, PGUSER/PGPASSWORD, ~/.pgpass)"
          : "stop kiln (`kiln down`), move the file aside and restore it from a backup; kiln never deletes it for you",
    });
  } else if (f.state.kind === "ok") {
    const bad = f.state.integrity.filter((l) => l !== "ok");
    if (bad.length > 0) {
      out.push({
        check: "state.integrity",
        severity: "error",
        what: `the state database fails PRAGMA integrity_check: ${bad.slice(0, 3).join("; ")}${bad.length > 3 ? ` (+${bad.length - 3} more)` : ""}`,
        where: f.state.file,
        fix: "stop kiln, then `sqlite3 state.db .recover > dump.sql` and rebuild it, or restore a backup",
      });
    }
    if (f.state.schema.version > f.state.schema.latest) {
      out.push({
        check: "state.schema",
        severity: "error",
        what: `the state database has schema v${f.state.schema.version}, newer than this kiln knows (v${f.state.schema.latest})`,
        where: f.state.file,
        fix: "use the kiln version that wrote it (upgrade kiln)",
      });
    }
  }

  // ---- the local provider's sandbox: without one that holds, no instance launches
  //   bwrap null → "not installed"; missing ["--disable-userns"] → "too old"; missing [] → nothing
  if (f.sandbox && (f.sandbox.bwrap === null || f.sandbox.bwrap.missing.length > 0)) {
    out.push({
      check: "sandbox.unavailable",
      severity: "error",
      what: f.sandbox.bwrap === null ? "bubblewrap (bwrap) is not installed: local instances cannot be sandboxed, so they will not launch" : `${f.sandbox.bwrap.path} is too old: it lacks ${f.sandbox.bwrap.missing.join(", ")}, so local instances will not launch`,
      where: f.sandbox.bwrap?.path ?? "PATH",
      fix: "install bubblewrap 0.8 or later (Debian 12: apt-get install bubblewrap); `kiln up --unsafe-no-sandbox` runs instances unisolated instead",
    });
  }

  // ---- the local provider's network isolation (issue 12): without pasta, instances share the host's network
  //   pasta null → warning; a path, or not asked (older facts) → nothing
  if (f.sandbox && f.sandbox.pasta === null) {
    out.push({
      check: "network.shared",
      severity: "warning",
      what: "pasta (Debian package passt) is not installed: local instances share the host's network and can connect to every host listener (the proxy's admin port, other instances)",
      where: "PATH",
      fix: "install it (Debian: apt-get install passt); instances launched from then on get their own network namespace",
    });
  }

  // ---- leases
  for (const l of f.leases) {
    if (l.ownerAlive !== false) continue;
    out.push({
      check: "lease.dead",
      severity: "warning",
      what: `the lease on ${l.service} is held by controller ${l.owner}, whose process is gone`,
      where: `lease:${l.service}`,
      fix: "drop the lease (a new controller also takes it over on start)",
      repair: { kind: "drop-lease", service: l.service, owner: l.owner },
    });
  }

  // ---- daemons
  for (const d of [f.controller, f.proxy]) out.push(...daemonFindings(d));

  // ---- instances
  for (const s of f.services) out.push(...instanceFindings(s, controllerRunning, reconcile));

  // ---- routing table
  if (f.routes.problems) {
    out.push({
      check: "routes.invalid",
      severity: "warning",
      what: `the proxy's routing table file is not a valid table: ${f.routes.problems.slice(0, 2).join("; ")}`,
      where: f.routes.file,
      fix: "start the controller (`kiln up`): it pushes a fresh table, which the proxy saves",
    });
  }
  const recorded = new Map(f.services.flatMap((s) => s.recorded.map((r) => [r.id, r] as const)));
  const observed = new Map(f.services.flatMap((s) => (s.observed ?? []).map((o) => [o.id, o] as const)));
  const providerKnown = f.services.every((s) => s.observed !== undefined);
  const dead = f.routes.targets.filter((t) => {
    const rec = recorded.get(t.id);
    if (!rec || rec.state === "terminated") return true;
    if (!providerKnown) return false;
    const o = observed.get(t.id);
    return !o || o.state !== "running" || o.address !== t.address;
  });
  if (dead.length > 0) {
    const fromFile = f.routes.source === "file";
    out.push({
      check: "routes.dead-target",
      severity: "warning",
      what: `the ${fromFile ? "saved" : "proxy's"} routing table sends traffic to ${dead.length} instance(s) that are not in state or not running: ${dead.map((t) => t.id).join(", ")}`,
      where: fromFile ? f.routes.file : `proxy ${f.proxy.socket}`,
      fix: fromFile
        ? "remove those targets from the saved table, so a restarted proxy does not route to them"
        : "the proxy's health checks keep them out of rotation; the controller replaces the table on its next change (`kiln up` if it is down)",
      ...(fromFile ? { repair: { kind: "prune-routes" as const, file: f.routes.file, targetIds: dead.map((t) => t.id) } } : {}),
    });
  }

  // ---- releases in the keep window
  for (const s of f.services) {
    for (const r of s.releases) {
      if (r.complete) continue;
      // The live release and its rollback target are what a deploy or `kiln rollback` needs
      // next: errors. Older releases in the window only narrow how far back one can go.
      const critical = r.live || r.why.includes("rollback target");
      out.push({
        check: "release.image-missing",
        severity: critical ? "error" : "warning",
        what: `release ${r.release.id} (${r.release.ref}, ${r.why}) cannot be ${r.live ? "healed or relaunched" : "rolled back to"}: its image is incomplete in the store (missing ${r.missing.slice(0, 3).join(", ")}${r.missing.length > 3 ? ", …" : ""})`,
        where: r.release.digest,
        fix: `re-bake ${r.release.ref} from its sources (same inputs, same digest) or import it again${r.live ? `; until then a deploy of ${s.service} is refused (it could not be rolled back)` : ""}`,
      });
    }
    for (const { rollout, deadlineMs } of s.rollouts) {
      if (rollout.paused) {
        out.push({
          check: "rollout.paused",
          severity: "info",
          what: `the ${rollout.kind} to ${rollout.target} is paused`,
          where: `rollout ${rollout.id}`,
          fix: "`kiln resume` to continue it, or `kiln abort`",
        });
        continue;
      }
      if (deadlineMs === undefined || f.now <= rollout.startedAt + deadlineMs + STUCK_SLACK_MS) continue;
      const mins = Math.round((f.now - rollout.startedAt) / 60_000);
      out.push({
        check: "rollout.stuck",
        severity: "warning",
        what: `the ${rollout.kind} to ${rollout.target} has run ${mins} min, past its ${Math.round(deadlineMs / 1000)} s deadline`,
        where: `rollout ${rollout.id}`,
        fix: controllerRunning
          ? "the controller should have ended it: read its log (logs/controller.log), then `kiln abort`"
          : "start the controller (`kiln up`): it resumes the rollout and ends it past its deadline",
      });
    }
  }

  // ---- rootfs caches
  for (const r of f.rootfs) {
    if (r.inStore) continue;
    out.push({
      check: "rootfs.orphan",
      severity: "warning",
      what: `an unpacked root filesystem is left for ${r.digest.slice(0, 19)}, which is not in the image store`,
      where: r.path,
      fix: "remove it (a cache: nothing can launch from it without the image)",
      ...(r.usedBy.length > 0
        ? { blockedBy: `running instance(s) ${r.usedBy.join(", ")} use it` }
        : { repair: { kind: "remove-rootfs" as const, digest: r.digest, path: r.path } }),
    });
  }
  return out;
}

export function isControllerRunning(f: Pick<Facts, "controller" | "leases" | "now">): boolean {
  return f.controller.pidAlive || f.leases.some((l) => l.ownerAlive === true && l.until > f.now);
}

function daemonFindings(d: DaemonFacts): Finding[] {
  const out: Finding[] = [];
  if (d.pidFileExists && !d.pidAlive) {
    out.push({
      check: "daemon.stale-pidfile",
      severity: "warning",
      what: d.pid === undefined ? `the ${d.name} pid file holds no valid pid and start time` : `the ${d.name} pid file names pid ${d.pid}, which is not running (or is another process now)`,
      where: d.pidFile,
      fix: "remove the stale pid file",
      repair: { kind: "remove-file", path: d.pidFile },
    });
  }
  if (d.socketExists && !d.socketAnswers && !d.pidAlive) {
    out.push({
      check: "daemon.stale-socket",
      severity: "warning",
      what: `the ${d.name} socket exists but nothing listens on it`,
      where: d.socket,
      fix: "remove the stale socket",
      repair: { kind: "remove-file", path: d.socket },
    });
  }
  if (d.pidAlive && !d.socketAnswers) {
    out.push({
      check: "daemon.unresponsive",
      severity: "warning",
      what: `the ${d.name} (pid ${d.pid}) is running but does not answer on its socket`,
      where: d.socket,
      fix: `read its log, then restart it (\`kiln down\` and \`kiln up\`)`,
    });
  }
  return out;
}

function instanceFindings(s: ServiceFacts, controllerRunning: boolean, reconcile: string): Finding[] {
  const out: Finding[] = [];
  if (!s.observed) {
    out.push({
      check: "provider.unavailable",
      severity: s.providerSkipped ? "info" : "warning",
      what: `cannot list ${s.service}'s instances from the provider: ${s.providerError ?? "unknown error"}`,
      where: s.service,
      fix: "check the provider (Docker daemon, permissions), then run doctor again",
    });
    return out;
  }
  const running = new Map(s.observed.filter((o) => o.state === "running").map((o) => [o.id, o]));
  const recordedIds = new Set(s.recorded.map((r) => r.id));
  for (const r of s.recorded) {
    if (running.has(r.id)) continue;
    out.push({
      check: "instance.vanished",
      severity: "warning",
      what: `instance ${r.id} is recorded as ${r.state} but ${s.observed.some((o) => o.id === r.id) ? "has exited" : "the provider does not know it"}`,
      where: r.id,
      fix: "mark it terminated in state (the controller launches a replacement when it runs)",
      ...(controllerRunning ? { blockedBy: reconcile } : { repair: { kind: "mark-gone" as const, instanceId: r.id } }),
    });
  }
  for (const o of running.values()) {
    if (recordedIds.has(o.id)) continue;
    out.push({
      check: "instance.orphan",
      severity: "warning",
      what: `instance ${o.id} (pid ${o.pid ?? "?"}, ${o.address}) runs but state does not record it (launched just before a crash?)`,
      where: o.id,
      fix: "terminate it: nothing routes to it and no controller will account for it",
      ...(controllerRunning ? { blockedBy: reconcile } : { repair: { kind: "terminate-orphan" as const, service: s.service, instanceId: o.id } }),
    });
  }
  return out;
}

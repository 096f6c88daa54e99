// What the API and the CLI show: releases, rollouts and the service's status, as plain data.

import { describeLimits } from "../config/resources.js";
import { phaseOf } from "../rollout/index.js";
import type { Provider } from "../providers/provider.js";
import type { Step } from "../rollout/types.js";
import type { Release, RolloutRecord } from "../state/db.js";
import type { FleetObserver } from "./observe.js";
import type { ServiceState } from "./service-state.js";
import type { InstanceView, ReleaseView, RolloutView, StatusView } from "./types.js";

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

export function releaseView(r: Release): ReleaseView {
  return {
    id: r.id, version: r.version, ref: r.ref, digest: r.digest, configHash: r.configHash, strategy: r.strategy, status: r.status,
    reason: r.reason, createdAt: iso(r.createdAt)!, liveAt: iso(r.liveAt), finishedAt: iso(r.finishedAt), previous: r.previous,
    ...(r.promotedFrom ? { promotedFrom: r.promotedFrom } : {}),
  };
}

/** `lastSteps`: what the loop decided on its last tick (shown while the rollout runs). */
export function rolloutView(r: RolloutRecord, lastSteps: readonly Step[]): RolloutView {
  const active = r.state === "running";
  return {
    id: r.id, kind: r.kind, strategy: r.strategy, target: r.target, previous: r.previous, state: r.state,
    phase: active ? (r.paused ? "paused" : phaseOf([...lastSteps])) : undefined, reason: r.reason, startedAt: iso(r.startedAt)!, finishedAt: iso(r.finishedAt),
    ...(Object.keys(r.progress ?? {}).length ? { progress: r.progress } : {}),
    steps: active ? lastSteps.map((s) => `${s.kind}: ${s.reason}`) : undefined,
  };
}

/** The service as `kiln status` shows it: desired and live, the running rollout, every live instance. */
export function statusView(d: { state: ServiceState; observer: FleetObserver; listen: string; rolloutView: (r: RolloutRecord) => RolloutView; provider?: ProviderFacts }): StatusView {
  const facts = providerFacts(d.provider);
  const { db, service } = d.state;
  const stats = d.observer.lastStats;
  const now = d.state.now();
  const live = d.state.liveRelease();
  const rollout = db.activeRollout(service);
  const versions = new Map(db.listReleases(service).map((r) => [r.id, r.version]));
  const instances: InstanceView[] = db.liveInstances(service).map((r) => {
    // Unknown while the router does not answer: nothing is shown as in rotation.
    const t = stats ? d.observer.target(r.id) : undefined;
    const network = facts.networkOf(r.id);
    return {
      id: r.id, pid: r.pid, address: r.address, release: r.release, version: versions.get(r.release), digest: r.digest,
      health: r.state === "terminating" ? "exited" : d.observer.phase(r, now),
      routing: r.routing, inRotation: t?.inRotation ?? false, inflight: t?.inflight ?? 0, launchedAt: r.launchedAt, state: r.state,
      ...(network ? { network } : {}),
    };
  });
  return {
    schemaVersion: 1,
    service,
    controller: { pid: process.pid },
    proxy: { pid: stats?.pid, address: stats?.listen ?? d.listen, reachable: stats !== undefined, tableVersion: stats?.tableVersion },
    desiredInstances: d.state.desiredInstances(),
    release: live ? releaseView(live) : undefined,
    rollout: rollout ? d.rolloutView(rollout) : undefined,
    instances,
    ...(facts.limitsEnforcement ? { limits: { enforcement: facts.limitsEnforcement, resources: describeLimits(live?.spec.resources) } } : {}),
    ...(facts.sandbox ? { sandbox: facts.sandbox } : {}),
  };
}

/** What status asks the provider about its isolation and limits. */
type ProviderFacts = Pick<Provider, "limitsEnforcement" | "sandboxKind" | "networkOf">;

/**
 * The provider's answers for status. Each is optional, and a question the provider cannot
 * answer now (no sandbox installed, a cgroup probe failing) is left out: status never fails on it.
 */
function providerFacts(p: ProviderFacts | undefined): { limitsEnforcement?: string; sandbox?: "bwrap" | "chroot"; networkOf: (id: string) => string | undefined } {
  const ask = <T>(f: () => T): T | undefined => {
    try {
      return f();
    } catch {
      return undefined;
    }
  };
  return {
    limitsEnforcement: ask(() => p?.limitsEnforcement?.()),
    sandbox: ask(() => p?.sandboxKind?.()),
    networkOf: (id) => ask(() => p?.networkOf?.(id)),
  };
}

// The controller's reads and small writes of one service's state: release specs (read once),
// the live release, the desired fleet size, events, rollout progress. Shared by the loop,
// the commands and the views.

import { canonicalJson } from "../config/config-hash.js";
import type { NotifyEvent, NotifyEventName, NotifyRelease } from "../notify/event.js";
import type { RolloutProgress } from "../rollout/types.js";
import type { EventRecord, Release, RolloutRecord, StateDb } from "../state/db.js";
import type { ReleaseSettings } from "../state/release-settings.js";

export interface ServiceStateDeps {
  service: string;
  db: StateDb;
  /** spec used for health and routing before the first release */
  defaultSpec: ReleaseSettings;
  now: () => number;
  log?: (line: string) => void;
  /** rollout and fleet events for webhooks; must return at once (the notifier only queues) */
  notify?: (e: NotifyEvent) => void;
}

export class ServiceState {
  private readonly specs = new Map<string, ReleaseSettings>();
  readonly service: string;
  readonly db: StateDb;

  constructor(private readonly d: ServiceStateDeps) {
    this.service = d.service;
    this.db = d.db;
  }

  now(): number {
    return this.d.now();
  }

  event(level: EventRecord["level"], message: string, extra: { release?: string; instance?: string; rollout?: number } = {}): void {
    this.db.addEvent({ at: this.d.now(), level, service: this.service, message, ...extra });
    this.d.log?.(`[${level}] ${message}`);
  }

  /**
   * An event from a callback nothing awaits (a probe's answer, a launch or stop finishing in
   * the background): a write that fails (a full disk) is logged with the event instead of
   * thrown, where it would be an unhandled rejection, which ends the process.
   */
  eventOrLog(level: EventRecord["level"], message: string, extra: { release?: string; instance?: string; rollout?: number } = {}): void {
    try {
      this.event(level, message, extra);
    } catch (e) {
      this.d.log?.(`[${level}] ${message} (not recorded: ${(e as Error).message})`);
    }
  }

  /** Many events in one write (one per instance of a fleet-wide step). */
  events(list: { level: EventRecord["level"]; message: string; release?: string; instance?: string; rollout?: number }[]): void {
    const at = this.d.now();
    // Written field by field (a fleet-wide step has one event per instance): the row is the same.
    const service = this.service;
    this.db.addEvents(list.map((e) => ({ at, level: e.level, service, message: e.message, release: e.release, instance: e.instance, rollout: e.rollout })));
    if (this.d.log) for (const e of list) this.d.log(`[${e.level}] ${e.message}`);
  }

  log(line: string): void {
    this.d.log?.(line);
  }

  /** Tell the webhooks (if any): the rollout's target and previous release are looked up here. */
  notice(type: NotifyEventName, message: string, o: { rollout?: RolloutRecord; release?: string; previous?: string; reason?: string; instances?: string[] } = {}): void {
    if (!this.d.notify) return;
    const rel = (id: string | undefined): NotifyRelease | undefined => {
      const r = id ? this.db.getRelease(id) : undefined;
      return r ? { id: r.id, version: r.version, ref: r.ref, digest: r.digest } : undefined;
    };
    const r = o.rollout;
    try {
      this.d.notify({
        type, at: this.d.now(), service: this.service, message,
        ...(r ? { rollout: { id: r.id, kind: r.kind, strategy: r.strategy, target: r.target, ...(r.previous ? { previous: r.previous } : {}) } } : {}),
        release: rel(o.release ?? r?.target), previous: rel(o.previous ?? r?.previous),
        ...(o.reason !== undefined ? { reason: o.reason } : {}), ...(o.instances ? { instances: o.instances } : {}),
      });
    } catch (e) {
      // A notifier's fault must never stop the loop.
      this.d.log?.(`[error] notify ${type}: ${(e as Error).message}`);
    }
  }

  liveRelease(): Release | undefined {
    const id = this.db.getFact(this.service, "live");
    return id ? this.db.getRelease(id) : undefined;
  }

  desiredInstances(): number {
    return this.db.getFact(this.service, "instances") ?? this.d.defaultSpec.instances;
  }

  /** A release's spec never changes once recorded, so it is read from state once. */
  specOf(releaseId: string | undefined): ReleaseSettings {
    if (releaseId === undefined) return this.d.defaultSpec;
    const cached = this.specs.get(releaseId);
    if (cached) return cached;
    const spec = this.db.getRelease(releaseId)?.spec;
    if (!spec) return this.d.defaultSpec;
    this.specs.set(releaseId, spec);
    return spec;
  }

  /** Running instances of `release` kept warm on standby (weight 0): what an instant rollback flips to. */
  warmStandby(release: string): number {
    let n = 0;
    for (const i of this.db.liveInstances(this.service)) if (i.release === release && i.routing === "standby" && i.state === "running") n++;
    return n;
  }

  /** Releases whose instances already run the target's digest and config (skipMatching). */
  equivalentReleases(rollout: RolloutRecord): string[] {
    if (rollout.strategy !== "rolling" || !this.specOf(rollout.target).strategy.rolling.skipMatching) return [];
    const target = this.db.getRelease(rollout.target);
    if (!target) return [];
    const out = new Set<string>();
    for (const r of this.db.liveInstances(this.service)) {
      if (r.release === target.id || out.has(r.release)) continue;
      const rel = this.db.getRelease(r.release);
      // The config hash is the part every environment shares; an environment's own env values
      // are the rest of what instances run with, so they must match too.
      if (rel && rel.digest === target.digest && rel.configHash === target.configHash && canonicalJson(rel.env) === canonicalJson(target.env) && rel.spec.secrets?.digest === target.spec.secrets?.digest) out.add(rel.id);
    }
    return [...out];
  }

  /** Merge into the rollout's stored progress (`set` may be computed from it); undefined deletes a key. */
  mergeProgress(rolloutId: number, set: RolloutProgress | ((cur: RolloutProgress) => RolloutProgress)): void {
    const cur = this.db.getRollout(rolloutId);
    if (!cur) return;
    const next: Record<string, unknown> = { ...cur.progress };
    for (const [k, v] of Object.entries(typeof set === "function" ? set(cur.progress) : set)) {
      if (v === undefined) delete next[k];
      else next[k] = v;
    }
    this.db.updateRollout(rolloutId, { progress: next });
  }
}

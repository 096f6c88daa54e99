// kiln's own controller as the rollout performer: requests go to the running controller
// (`kiln up`), which plans each step, acts, reads it back and records it; this side follows
// the rollout through the controller's events. The controller resumes a rollout itself after
// a crash (its state and journal), so there is nothing to reconcile from the CLI.

import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { ChangeNote, DeployRequest } from "../controller/types.js";
import { KilnError } from "../errors.js";
import type { ControllerClient, RecordRequest } from "../server/client.js";
import type { WatchResult } from "./deploy-flow.js";
import { eventLine, type FollowOptions, type RolloutOutcome, type RolloutPerformer } from "./performer.js";
import type { Workspace } from "./workspace.js";
import type { EventRecord } from "../state/db.js";

// The deploy flow (image store, policy, registry, secrets) loads when a rollout is started here,
// not with this module: `kiln status` and `kiln history` pick this performer too.
const deployFlow = () => import("./deploy-flow.js");

export class ControllerPerformer implements RolloutPerformer {
  readonly name = "controller" as const;
  // Every verb is supported.
  readonly instead = {};
  private readonly client: ControllerClient;

  constructor(private readonly ws: Workspace) {
    this.client = ws.client;
  }

  async deploy(req: DeployRequest, opts: FollowOptions = {}): Promise<RolloutOutcome> {
    await this.client.requireRunning();
    const { lastEventId, watch } = await deployFlow();
    const after = await lastEventId(this.client, { onConnection: opts.onProgress });
    const { release, rollout } = await this.client.deploy(req);
    opts.onProgress?.(`deploying ${req.ref} (${req.digest.slice(0, 19)}) as ${release.id} with ${rollout.strategy}`);
    return this.follow(await watch(this.client, rollout, { afterEvent: after, onEvent: this.printer(rollout.id, opts), onConnection: opts.onProgress }));
  }

  /**
   * Event lines for onProgress, less the rollout's first event: the controller's announcement
   * of the request just made, which the line above already said (it was printed twice).
   */
  private printer(rollout: number, opts: FollowOptions): ((e: EventRecord) => void) | undefined {
    if (!opts.onProgress) return undefined;
    let announced = false;
    return (e) => {
      if (!announced && e.rollout === rollout) {
        announced = true;
        return;
      }
      opts.onProgress!(eventLine(e));
    };
  }

  async rollback(opts: FollowOptions = {}): Promise<RolloutOutcome> {
    await this.client.requireRunning();
    const { lastEventId, watch } = await deployFlow();
    const after = await lastEventId(this.client, { onConnection: opts.onProgress });
    const { release, rollout } = await this.client.rollback(opts.note);
    opts.onProgress?.(`rolling back to ${release.id} (${release.ref}) with ${rollout.strategy === "blue-green" ? "an instant switch" : "a replacement"}`);
    return this.follow(await watch(this.client, rollout, { afterEvent: after, onEvent: this.printer(rollout.id, opts), onConnection: opts.onProgress }));
  }

  private follow(r: WatchResult): RolloutOutcome {
    return { outcome: r.outcome, release: r.release, reason: r.reason, rollouts: r.rollouts };
  }

  history() {
    return this.client.history();
  }

  async events(n: number) {
    return (await this.client.recentEvents(n)).events;
  }

  async record(r: RecordRequest): Promise<void> {
    await this.client.record(r);
  }

  async status() {
    return { performer: "controller" as const, view: await this.client.status() };
  }

  async recover() {
    return undefined;
  }

  /**
   * Instances' logs from the provider that runs them: local keeps a log file per instance in
   * the home; Docker keeps them in the engine (and terminate keeps a copy of removed ones).
   */
  async logs(instance: string | undefined, lines: number): Promise<{ id: string; text: string }[]> {
    const { paths, home, loaded } = this.ws;
    const service = loaded.service;
    // The providers (the Docker client among them) load only for logs: status and deploy never need them here.
    const [{ createProvider }, { chooseProvider }] = await Promise.all([import("../providers/registry.js"), import("./daemons.js")]);
    const provider = createProvider(chooseProvider({ paths, spec: loaded.spec.provider }), { home, swarm: loaded.spec.swarm, drainTimeout: loaded.spec.drainTimeout });
    const readLogs = provider.logPath ? undefined : provider.readLogs?.bind(provider);
    const dir = join(home, "instances");
    // Docker: the running containers, then the removed ones whose log was kept.
    const ids = readLogs
      ? [...new Set([...(provider.keptLogs?.(service) ?? []), ...(await provider.list(service)).map((i) => i.id)])]
      : existsSync(dir)
        ? readdirSync(dir).filter((d) => d.startsWith(`${service}-`))
        : [];
    const chosen = instance ? ids.filter((d) => d === instance || d.startsWith(instance)) : ids;
    if (instance && chosen.length === 0) throw new KilnError("KILN_E_NOT_FOUND", `no instance "${instance}"`, { hint: ids.length ? `known: ${ids.slice(-5).join(", ")}` : "nothing has been launched yet" });
    const out: { id: string; text: string }[] = [];
    for (const id of chosen) {
      let text: string | undefined;
      if (readLogs) text = await readLogs(id, { lines });
      else {
        const f = join(dir, id, "log");
        text = existsSync(f) ? readFileSync(f, "utf8") : undefined;
      }
      if (text !== undefined) out.push({ id, text });
    }
    return out;
  }

  scale(instances: number, note?: ChangeNote) {
    return this.client.scale(instances, note);
  }
  promote(note?: ChangeNote) {
    return this.client.promote(note);
  }
  pause(note?: ChangeNote) {
    return this.client.pause(note);
  }
  resume(opts: FollowOptions = {}) {
    return this.client.resume(opts.note);
  }
  abort(note?: ChangeNote) {
    return this.client.abort(note);
  }
}

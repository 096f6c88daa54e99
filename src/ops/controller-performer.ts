// kiln's own controller as the rollout performer: requests go to the running controller
// (`kiln up`), which plans each step, acts, reads it back and records it; this side follows
// the rollout through the controller's events. The controller resumes a rollout itself after
// a crash (its state and journal), so there is nothing to reconcile from the CLI.

import type { DeployRequest } from "../controller/types.js";
import type { ControllerClient } from "../server/client.js";
import { lastEventId, watch, type WatchResult } from "./deploy-flow.js";
import { eventLine, type FollowOptions, type RolloutOutcome, type RolloutPerformer } from "./performer.js";

export class ControllerPerformer implements RolloutPerformer {
  readonly name = "controller" as const;
  // Everything is supported; logs are read from the provider by the CLI.
  readonly instead = {};

  constructor(private readonly client: ControllerClient) {}

  async deploy(req: DeployRequest, opts: FollowOptions = {}): Promise<RolloutOutcome> {
    const after = await lastEventId(this.client);
    const { release, rollout } = await this.client.deploy(req);
    opts.onProgress?.(`deploying ${req.ref} (${req.digest.slice(0, 19)}) as ${release.id} with ${rollout.strategy}`);
    return this.follow(await watch(this.client, rollout, { afterEvent: after, onEvent: opts.onProgress && ((e) => opts.onProgress!(eventLine(e))) }));
  }

  async rollback(opts: FollowOptions = {}): Promise<RolloutOutcome> {
    const after = await lastEventId(this.client);
    const { release, rollout } = await this.client.rollback();
    opts.onProgress?.(`rolling back to ${release.id} (${release.ref}) with ${rollout.strategy === "blue-green" ? "an instant switch" : "a replacement"}`);
    return this.follow(await watch(this.client, rollout, { afterEvent: after, onEvent: opts.onProgress && ((e) => opts.onProgress!(eventLine(e))) }));
  }

  private follow(r: WatchResult): RolloutOutcome {
    return { outcome: r.outcome, release: r.release, reason: r.reason, rollouts: r.rollouts };
  }

  history() {
    return this.client.history();
  }

  async status() {
    return { performer: "controller" as const, view: await this.client.status() };
  }

  async recover() {
    return undefined;
  }

  scale(instances: number) {
    return this.client.scale(instances);
  }
  promote() {
    return this.client.promote();
  }
  pause() {
    return this.client.pause();
  }
  resume() {
    return this.client.resume();
  }
  abort() {
    return this.client.abort();
  }
}

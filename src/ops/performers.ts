// The composition root for rollout performers: the only file that picks a concrete one.
// kiln.yaml's `provider: swarm` hands rollouts to Swarm (its update_config); every other
// provider runs under kiln's own controller. (A Swarm provider under kiln's controller would
// select the controller here, beside the native path or in its place.)

import { ControllerPerformer } from "./controller-performer.js";
import type { RolloutPerformer } from "./performer.js";
import { SwarmPerformer } from "./swarm/performer.js";
import type { Workspace } from "./workspace.js";

export function performerFor(ws: Workspace): RolloutPerformer {
  if (ws.loaded.spec.provider === "swarm") return new SwarmPerformer({ spec: ws.loaded.environment === undefined ? ws.loaded.spec : { ...ws.loaded.spec, name: ws.loaded.service }, home: ws.home, stateDb: ws.paths.stateDb });
  return new ControllerPerformer(ws);
}

// The composition root for rollout performers: the only file that picks a concrete one.
// kiln.yaml's `provider: swarm` with `swarm: { rollouts: native }` hands rollouts to Swarm
// (its update_config); every other provider, `provider: swarm` included, runs under kiln's
// own controller.

import { ControllerPerformer } from "./controller-performer.js";
import type { RolloutPerformer } from "./performer.js";
import { SwarmPerformer } from "./swarm/performer.js";
import type { Workspace } from "./workspace.js";

export function performerFor(ws: Workspace): RolloutPerformer {
  if (ws.loaded.spec.provider === "swarm" && ws.loaded.spec.swarm.rollouts === "native") return new SwarmPerformer({ spec: ws.loaded.environment === undefined ? ws.loaded.spec : { ...ws.loaded.spec, name: ws.loaded.service }, home: ws.home, stateDb: ws.state?.location ?? ws.paths.stateDb });
  return new ControllerPerformer(ws);
}

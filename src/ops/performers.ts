// The composition root for rollout performers: the only file that picks a concrete one.
// kiln.yaml's `provider: swarm` with `swarm: { rollouts: native }` hands rollouts to Swarm
// (its update_config); every other provider, `provider: swarm` included, runs under kiln's
// own controller.
//
// Each performer's module is imported only when it is picked: the Swarm one brings the Docker
// client, the image store and the state database, which `kiln status` against a controller
// never needs (a short verb's time is mostly start-up).

import type { RolloutPerformer } from "./performer.js";
import type { Workspace } from "./workspace.js";

export async function performerFor(ws: Workspace): Promise<RolloutPerformer> {
  if (ws.loaded.spec.provider === "swarm" && ws.loaded.spec.swarm.rollouts === "native") {
    const { SwarmPerformer } = await import("./swarm/performer.js");
    return new SwarmPerformer({ spec: ws.loaded.environment === undefined ? ws.loaded.spec : { ...ws.loaded.spec, name: ws.loaded.service }, home: ws.home, stateDb: ws.state?.location ?? ws.paths.stateDb });
  }
  const { ControllerPerformer } = await import("./controller-performer.js");
  return new ControllerPerformer(ws);
}

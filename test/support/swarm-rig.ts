// The three-node Swarm of scripts/swarm-cluster.sh as tests find it: through the exports
// `scripts/swarm-cluster.sh env` prints. A test that needs it calls swarmRig(t): the rig's
// manager, registry and node addresses, or a skip with the reason printed — a failure
// instead when KILN_REQUIRE_ALL=1 (CI), so a missing rig never passes CI silently.
//
//   bash scripts/swarm-cluster.sh start; eval "$(bash scripts/swarm-cluster.sh env)"   # as root

import type { TestContext } from "node:test";

export interface SwarmRig {
  /** "unix:///run/kiln-swarm/n1.sock" */
  manager: string;
  /** "10.77.0.1:5001" (plain HTTP) */
  registry: string;
  /** the nodes' bridge addresses */
  nodeAddrs: string[];
  /** the rig script, for kill-node / cut-link / restart-node */
  script?: string;
}

export function swarmRig(t: TestContext): SwarmRig | undefined {
  const manager = process.env.KILN_SWARM_MANAGER;
  const registry = process.env.KILN_SWARM_REGISTRY;
  if (!manager || !registry) {
    const reason = 'KILN_SWARM_MANAGER / KILN_SWARM_REGISTRY are not set: the three-node rig is not up — run `bash scripts/swarm-cluster.sh start; eval "$(bash scripts/swarm-cluster.sh env)"` as root first';
    if (process.env.KILN_REQUIRE_ALL === "1") throw new Error(`KILN_REQUIRE_ALL=1 but ${reason}`);
    t.diagnostic(`skipped: ${reason}`);
    t.skip(reason);
    return undefined;
  }
  return { manager, registry, nodeAddrs: (process.env.KILN_SWARM_NODE_ADDRS ?? "").split(",").filter(Boolean), script: process.env.KILN_SWARM_SCRIPT };
}

/** The pattern of an instance address on the rig: a node's bridge address and a port. */
export const RIG_ADDRESS = /^10\.77\.0\.\d{1,3}:\d+$/;

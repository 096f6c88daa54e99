export { SwarmFleetProvider, connectManager, ensureManager } from "./swarm-fleet-provider.js";
export type { SwarmFleetOptions } from "./swarm-fleet-provider.js";
export * from "./plan.js";

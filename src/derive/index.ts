// Settings derived from kiln.yaml that more than one part of kiln needs: the rollout's
// capacity and limits, the container health-check command, the label vocabulary, volume
// names and the listen port. One source for each, used by rollout (through rollout/capacity),
// generate, the providers, the Swarm path and audit. Pure; imports only spec types and rollout.

export { batchOf, capacityOf, limitsOf, listenPort } from "./spec-settings.js";
export { healthCheckCommand } from "./health-check.js";
export { digestLabel, LABEL, LEGACY_LABEL } from "./labels.js";
export { engineVolumeName, sharedVolumeName } from "./volumes.js";
export type { Capacity, StrategyLimits } from "../rollout/capacity.js";

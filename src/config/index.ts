// The public API of spec/: everything other modules may import.
export { loadSpec, parseSpec, parseImageBase, isNodeBase } from "./load.js";
export { parseDuration, formatDuration } from "./duration.js";
export { computeConfigHash, canonicalJson } from "./config-hash.js";
export { chooseEnvironment, mergeOverrides, serviceKey } from "./environments.js";
export { jsonSchema, jsonSchemaText } from "./json-schema.js";
export { API_VERSION } from "./schema-constants.js";
export { specSchema } from "./spec-schema.js";
export type { RawSpec } from "./schema.js";
export type {
  Spec,
  ImageSpec,
  FileEntry,
  VolumeSpec,
  HealthSpec,
  StrategySpec,
  StrategyType,
  RollingSpec,
  BlueGreenSpec,
  LoadedSpec,
  PromotionSpec,
  SpecProblem,
  ImageBase,
  SecretSourceSpec,
} from "./types.js";

// Public API of the registry client: push and pull over the OCI distribution API.

export { pushImage } from "./push.js";
export type { BlobProgress, PushOptions, PushResult, TransferOptions, TransferStats } from "./push.js";
export { pullForDeploy, pullImage } from "./pull.js";
export type { PullOptions, PullResult } from "./pull.js";
export { RegistryClient } from "./client.js";
export type { Credentials } from "./client.js";
export { formatRegistryRef, isLoopbackRegistry, isRegistryRef, parseRegistryRef, registryBaseUrl } from "./reference.js";
export type { RegistryRef } from "./reference.js";
export { parseChallenges } from "./challenge.js";
export type { Challenge } from "./challenge.js";
export { pushReferrers } from "./push.js";
export type { ReferrersPushed } from "./push.js";
export { fetchManifest, pullReferrers } from "./pull.js";
export type { ReferrersPulled } from "./pull.js";

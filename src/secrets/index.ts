// The public API of secrets/: sources, the keyed digest state keeps, the controller's in-memory keeper.
export { planSecretSources, resolveSecret, resolveSecrets, describeSource, trimOneNewline, MAX_SECRET_BYTES, type SecretSource, type SecretSourceInput, type ResolveOptions } from "./sources.js";
export { computeSecretsDigest, homeSecretKey, SECRET_KEY_FILE } from "./digest.js";
export { SecretKeeper, type ReleaseSecrets, type SecretKeeperOptions } from "./keeper.js";

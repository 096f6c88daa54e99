export { LocalProvider, checkUidRange, missingBwrapOptions, probeBwrap, type LocalProviderOptions, type ImageRunConfig } from "./local-provider.js";
export { DEFAULT_UID_CLAIMS_DIR, DEFAULT_UID_RANGE, formatUidRange, parseUidRange, type UidRange } from "./uid-range.js";
export { findPasta } from "./netns.js";
export { parseStartupBoost } from "./startup-boost.js";
export { parseSpawnThreads } from "./spawner.js";

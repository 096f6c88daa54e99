export { findPasta } from "./netns.js";
export { LocalProvider, missingBwrapOptions, probeBwrap, type LocalProviderOptions, type ImageRunConfig } from "./local-provider.js";

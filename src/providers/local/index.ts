export { LocalProvider, missingBwrapOptions, probeBwrap, type LocalProviderOptions, type ImageRunConfig } from "./local-provider.js";

export { LocalProvider, type LocalProviderOptions, type ImageRunConfig } from "./local-provider.js";

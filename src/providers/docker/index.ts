export { DockerProvider, removeServiceVolumes, type DockerProviderOptions } from "./docker-provider.js";
export { containerName } from "./container-plan.js";

export { DockerProvider, removeServiceVolumes, type DockerProviderOptions } from "./docker-provider.js";
export { LABEL, containerName, volumeName } from "./container-plan.js";

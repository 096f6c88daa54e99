// What the engine volume holding kiln.yaml volume `volume` of `service` is called.

/**
 * A volume kiln creates and owns in the engine its Docker provider drives: prefixed, so it
 * never collides with a volume of the user's. "hello", "data" → "kiln-hello-data".
 */
export function engineVolumeName(service: string, volume: string): string {
  return `kiln-${service}-${volume}`;
}

/**
 * A volume a platform names: the external volumes of a generated Swarm stack or Nomad job,
 * which the user creates with a driver every node shares, and the volumes of kiln's own
 * Swarm path, which uses the same names so that switching between `kiln deploy` on Swarm and
 * `kiln generate swarm` keeps the data. "hello", "data" → "hello-data".
 */
export function sharedVolumeName(service: string, volume: string): string {
  return `${service}-${volume}`;
}

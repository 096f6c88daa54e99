// What a base is to a bake: the image a recipe starts from (kiln's node base or an imported
// one) and what resolving it needs. Types only, apart from base.ts so that the importers
// (import.ts, node-base.ts) and base.ts's resolver do not import each other.

import type { DebPackage } from "./dpkg.js";
import type { RuntimeInfo } from "./runtime.js";
import type { OsRelease } from "./sbom.js";
import type { Store } from "./store.js";
import type { LayerRecord, LayerWriteOptions, OciImageConfig, ProgressFn } from "./types.js";

export interface BaseImage {
  /** recorded as org.opencontainers.image.base.name */
  name: string;
  /** manifest digest (docker-archive: the config digest, Docker's image id) */
  digest: string;
  config: OciImageConfig;
  layers: LayerRecord[];
  /** true when nothing had to be built, compressed or copied */
  cached: boolean;
  /** the Node runtime a "node" base was built with */
  runtime?: RuntimeInfo;
  /** Debian packages the base's files come from, when known */
  packages?: DebPackage[];
  /** the distribution those packages belong to */
  os?: OsRelease;
}

export interface BaseContext {
  store: Store;
  contextDir: string;
  onProgress: ProgressFn;
  /** how layers kiln writes for the base are stored and compressed (default: gzip on 1 thread) */
  layerWrite?: LayerWriteOptions;
}

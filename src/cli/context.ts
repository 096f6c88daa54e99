// What every verb needs: the kiln.yaml it works on, $KILN_HOME, and output helpers.

import { workspaceOf, type Workspace } from "../ops/workspace-of.js";
import type { GlobalOptions } from "./output.js";
import { loadSpecCached } from "./spec-cache.js";
import { environmentOf, specFile } from "./spec-file.js";

export { ago, out, printJson, short, strategyName, type GlobalOptions } from "./output.js";

export { environmentOf, specFile } from "./spec-file.js";

export type Context = Workspace;

/** The workspace a verb acts on; kiln.yaml's loader is imported only when the spec cache misses (spec-cache.ts). */
export async function context(opts: GlobalOptions): Promise<Context> {
  const loaded = await loadSpecCached(specFile(opts), environmentOf(opts), async () => (await import("../config/index.js")).loadSpec);
  return workspaceOf(loaded);
}

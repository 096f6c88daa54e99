// What every verb needs: the kiln.yaml it works on, $KILN_HOME, and output helpers.

import { openWorkspace, type Workspace } from "../ops/workspace.js";
import type { GlobalOptions } from "./output.js";
import { environmentOf, specFile } from "./spec-file.js";

export { ago, out, printJson, short, strategyName, type GlobalOptions } from "./output.js";

export { environmentOf, specFile } from "./spec-file.js";

export type Context = Workspace;

export function context(opts: GlobalOptions): Context {
  return openWorkspace(specFile(opts), environmentOf(opts));
}


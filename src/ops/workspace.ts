// A workspace is what every operation on a service needs: its loaded kiln.yaml, its
// $KILN_HOME and the paths in it, and a client for the controller that serves it.

import { resolve } from "node:path";
import { loadSpec } from "../config/index.js";
import { workspaceOf, type Workspace } from "./workspace-of.js";

export { workspaceOf, type Workspace } from "./workspace-of.js";

/** The workspace of the kiln.yaml at `file`, for one of its environments (see chooseEnvironment). */
export function openWorkspace(file: string, environment?: string): Workspace {
  return workspaceOf(loadSpec(resolve(file), environment));
}

// A workspace is what every operation on a service needs: its loaded kiln.yaml, its
// $KILN_HOME and the paths in it, and a client for the controller that serves it.

import { resolve } from "node:path";
import { homeFor, homePaths, withSharedEdge, type HomePaths } from "../home.js";
import { ControllerClient } from "../server/client.js";
import { loadSpec, type LoadedSpec } from "../config/index.js";

export interface Workspace {
  loaded: LoadedSpec;
  home: string;
  paths: HomePaths;
  client: ControllerClient;
}

/** The workspace of the kiln.yaml at `file`. */
export function openWorkspace(file: string): Workspace {
  const loaded = loadSpec(resolve(file));
  const home = homeFor(loaded.file);
  const paths = withSharedEdge(homePaths(home), { hosts: loaded.spec.edge.hosts, listen: loaded.spec.listen });
  return { loaded, home, paths, client: new ControllerClient(paths.controllerSocket) };
}

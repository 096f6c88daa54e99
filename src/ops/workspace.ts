// A workspace is what every operation on a service needs: its loaded kiln.yaml, its
// $KILN_HOME and the paths in it, and a client for the controller that serves it.

import { resolve } from "node:path";
import { homeFor, homePaths, withSharedEdge, type HomePaths } from "../home.js";
import { ControllerClient } from "../server/client.js";
import { loadSpec, type LoadedSpec } from "../config/index.js";
import { resolveStateLocation, type StateLocation } from "../state/state-location.js";

export interface Workspace {
  loaded: LoadedSpec;
  home: string;
  paths: HomePaths;
  client: ControllerClient;
  /** where the state lives (kiln.yaml `state:`, KILN_STATE); absent: the SQLite file in the home (paths.stateDb) */
  state?: StateLocation;
}

/** The workspace of the kiln.yaml at `file`, for one of its environments (see chooseEnvironment). */
export function openWorkspace(file: string, environment?: string): Workspace {
  const loaded = loadSpec(resolve(file), environment);
  const home = homeFor(loaded.file);
  const paths = withSharedEdge(homePaths(home, loaded.environment), { hosts: loaded.spec.edge.hosts, listen: loaded.spec.listen });
  const up = `kiln up --detach${loaded.environment ? ` --env ${loaded.environment}` : ""}`;
  return { loaded, home, paths, client: new ControllerClient(paths.controllerSocket, up), state: resolveStateLocation({ stateDb: paths.stateDb, specState: loaded.spec.state, environment: loaded.environment }) };
}

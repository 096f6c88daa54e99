// A workspace built from an already loaded kiln.yaml. Apart from workspace.ts so that a caller
// holding a LoadedSpec (the CLI's spec cache, src/cli/spec-cache.ts) does not import the
// kiln.yaml loader, whose YAML parser and validator are most of a short verb's start-up.

import { homeFor, homePaths, withSharedEdge, type HomePaths } from "../home.js";
import { ControllerClient } from "../server/client.js";
import type { LoadedSpec } from "../config/types.js";
import { resolveStateLocation, type StateLocation } from "../state/state-location.js";

export interface Workspace {
  loaded: LoadedSpec;
  home: string;
  paths: HomePaths;
  client: ControllerClient;
  /** where the state lives (kiln.yaml `state:`, KILN_STATE); absent: the SQLite file in the home (paths.stateDb) */
  state?: StateLocation;
}

export function workspaceOf(loaded: LoadedSpec): Workspace {
  const home = homeFor(loaded.file);
  const paths = withSharedEdge(homePaths(home, loaded.environment), { hosts: loaded.spec.edge.hosts, listen: loaded.spec.listen });
  const up = `kiln up --detach${loaded.environment ? ` --env ${loaded.environment}` : ""}`;
  return { loaded, home, paths, client: new ControllerClient(paths.controllerSocket, up), state: resolveStateLocation({ stateDb: paths.stateDb, specState: loaded.spec.state, environment: loaded.environment }) };
}

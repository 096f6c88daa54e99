// The files in a home that say what the running daemons are, apart from daemons.ts (which
// starts them and so imports every provider and router): `kiln status` reads these alone.

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { RouterKind } from "../config/types.js";
import type { HomePaths } from "../home.js";

/** The supervisor's pid (`kiln up` starts it, `kiln down` stops it first, so it does not restart what down stops). */
export function supervisorFile(paths: HomePaths): string {
  return join(paths.run, "supervisor.pid");
}

/** Which router the running daemons use (`kiln up` writes it, `kiln down` removes it). */
export function routerFile(paths: HomePaths): string {
  return join(paths.run, "router");
}

export function daemonRouter(paths: HomePaths): RouterKind | undefined {
  if (!existsSync(routerFile(paths))) return undefined;
  const name = readFileSync(routerFile(paths), "utf8").trim();
  return name === "builtin" || name === "haproxy" ? name : undefined;
}

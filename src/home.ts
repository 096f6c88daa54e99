// Where kiln keeps things: $KILN_HOME, by default `.kiln/` beside kiln.yaml.

import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";

export interface HomePaths {
  home: string;
  stateDb: string;
  run: string;
  logs: string;
  controllerSocket: string;
  proxyAdminSocket: string;
  routesFile: string;
  controllerPid: string;
  proxyPid: string;
  controllerLog: string;
  proxyLog: string;
}

/** Unix socket paths are limited to 107 bytes; a deep $KILN_HOME gets its sockets in the temp dir. */
function socketDir(run: string): string {
  if (join(run, "controller.sock").length < 100) return run;
  const short = join(tmpdir(), `kiln-${createHash("sha256").update(run).digest("hex").slice(0, 12)}`);
  mkdirSync(short, { recursive: true, mode: 0o700 });
  return short;
}

export function homeFor(specFile: string, env: NodeJS.ProcessEnv = process.env): string {
  return env.KILN_HOME ? resolve(env.KILN_HOME) : join(dirname(resolve(specFile)), ".kiln");
}

export function homePaths(home: string): HomePaths {
  const run = join(home, "run");
  const logs = join(home, "logs");
  mkdirSync(run, { recursive: true });
  mkdirSync(logs, { recursive: true });
  const sockets = socketDir(run);
  return {
    home,
    stateDb: join(home, "state.db"),
    run,
    logs,
    controllerSocket: join(sockets, "controller.sock"),
    proxyAdminSocket: join(sockets, "proxy.sock"),
    routesFile: join(run, "routes.json"),
    controllerPid: join(run, "controller.pid"),
    proxyPid: join(run, "proxy.pid"),
    controllerLog: join(logs, "controller.log"),
    proxyLog: join(logs, "proxy.log"),
  };
}

/** Whether a process with this pid exists (EPERM: it exists but belongs to someone else). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

// What `kiln generate systemd` needs to know about this host: the daemons' command lines with
// absolute paths (the same argv `kiln up` starts), where they write, and the environment they
// read. Everything machine-specific is gathered here, so the emitter stays pure.

import { dirname } from "node:path";
import { userInfo } from "node:os";
import { checkProviderName } from "../providers/registry.js";
import { SYSTEM_PATH, type HostInfo } from "../generate/index.js";
import { PROXY_NODE_FLAGS } from "../traffic/proxy/node-flags.js";
import { controllerArgs, DAEMON_SCRIPTS, proxyArgs } from "./daemons.js";
import type { Workspace } from "./workspace.js";

/** Set at generation time, these are passed on as they are; anything secret goes in the EnvironmentFile. */
const PASSED_ON = ["DOCKER_HOST", "KILN_STATE", "KILN_GNUPGHOME", "KILN_SWARM_MANAGER", "KILN_SWARM_REGISTRY", "KILN_SWARM_REGISTRY_INSECURE"] as const;

export function hostInfo(ws: Workspace, o: { env?: NodeJS.ProcessEnv; node?: string; uid?: number; user?: string } = {}): HostInfo {
  const env = o.env ?? process.env;
  const node = o.node ?? process.execPath;
  const uid = o.uid ?? process.getuid?.() ?? 0;
  const { spec } = ws.loaded;
  const provider = checkProviderName(spec.provider);
  const router = spec.router;
  const unitPrefix = `kiln-${ws.loaded.service}`;
  // The sockets may live outside $KILN_HOME (a deep home): their directory's parent must be
  // writable too, since the controller creates that directory again after a reboot.
  const sockets = dirname(ws.paths.controllerSocket);
  const writablePaths = [ws.home, ...(sockets.startsWith(`${ws.home}/`) ? [] : [dirname(sockets)])];
  const nodeDir = dirname(node);
  const path = SYSTEM_PATH.split(":").includes(nodeDir) ? SYSTEM_PATH : `${nodeDir}:${SYSTEM_PATH}`;
  const secretNames = [
    ...spec.notify.webhooks.flatMap((w) => (w.secretEnv !== undefined ? [w.secretEnv] : [])),
    ...((env.KILN_STATE ?? spec.state)?.startsWith("postgres") ? ["PGPASSWORD"] : []),
  ];
  return {
    unitPrefix,
    workingDirectory: ws.loaded.dir,
    ...(uid !== 0 ? { user: o.user ?? userInfo().username } : {}),
    ...(router === "builtin"
      ? {
          proxy: {
            argv: [node, ...PROXY_NODE_FLAGS, DAEMON_SCRIPTS.proxy, ...proxyArgs({ paths: ws.paths, specFile: ws.loaded.file, listen: spec.listen, previewListen: spec.strategy.blueGreen.previewListen, edge: spec.edge, service: ws.loaded.service })],
            log: ws.paths.proxyLog,
          },
        }
      : {}),
    controller: {
      argv: [node, DAEMON_SCRIPTS.controller, ...controllerArgs({ specFile: ws.loaded.file, home: ws.home, provider, router, ...(ws.loaded.environment !== undefined ? { environment: ws.loaded.environment } : {}) })],
      log: ws.paths.controllerLog,
    },
    writablePaths,
    environment: [{ name: "PATH", value: path }, ...PASSED_ON.flatMap((name) => (env[name] ? [{ name, value: env[name]! }] : []))],
    secretNames: [...new Set(secretNames)].sort(),
    environmentFile: `/etc/kiln/${unitPrefix}.env`,
    wants: provider === "docker" || provider === "swarm" ? ["docker.service"] : [],
  };
}

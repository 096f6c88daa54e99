// HAProxy's runtime API over a unix socket: one connection per command. The
// stats socket answers and closes; the master CLI answers only once the client
// half-closes, so both write the command and end() at once.

import net from "node:net";
import { KilnError } from "../../errors.js";

export function runtimeCommand(socketPath: string, command: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(socketPath);
    let out = "";
    const timer = setTimeout(() => {
      s.destroy();
      reject(new KilnError("KILN_E_CONTROLLER", `HAProxy runtime API at ${socketPath} did not answer "${command}" within ${timeoutMs} ms`, { hint: "is HAProxy running? see haproxy.log in the router's run directory" }));
    }, timeoutMs);
    s.setEncoding("utf8");
    s.on("data", (d: string) => (out += d));
    s.on("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new KilnError("KILN_E_CONTROLLER", `HAProxy runtime API unreachable at ${socketPath} (${e.code ?? e.message})`, {
          hint: "is HAProxy running? see haproxy.log in the router's run directory",
          cause: e,
        }),
      );
    });
    s.on("close", () => {
      clearTimeout(timer);
      resolve(out);
    });
    s.end(`${command}\n`);
  });
}

/** true when the socket answers `show info`; never throws */
export async function runtimeAlive(socketPath: string): Promise<boolean> {
  try {
    return (await runtimeCommand(socketPath, "show info", 2000)).includes("Pid:");
  } catch {
    return false;
  }
}

/** The worker's pid from `show info`. */
export function workerPid(showInfo: string): number | undefined {
  const m = /^Pid:\s*(\d+)/m.exec(showInfo);
  return m ? Number(m[1]) : undefined;
}

/**
 * Seamless reload through the master CLI, returning once a new worker answers
 * on the stats socket: the master re-executes with the config file, the new
 * worker takes the listeners, old workers finish their connections.
 */
export async function masterReload(adminSocket: string, masterSocket: string): Promise<{ oldPid?: number; newPid: number }> {
  const oldPid = workerPid(await runtimeCommand(adminSocket, "show info"));
  const until = Date.now() + 15_000;
  let askedAt = 0;
  for (;;) {
    // Ask again when no new worker came after a while: a reload asked while the master is still
    // settling after its own start was seen to be lost (rare, on a loaded machine).
    if (Date.now() - askedAt > 3000) {
      askedAt = Date.now();
      await runtimeCommand(masterSocket, "reload").catch(() => undefined); // the master closes the connection as it re-executes
    }
    const pid = workerPid(await runtimeCommand(adminSocket, "show info").catch(() => ""));
    if (pid !== undefined && pid !== oldPid) return { ...(oldPid !== undefined ? { oldPid } : {}), newPid: pid };
    if (Date.now() > until) {
      const procs = (await runtimeCommand(masterSocket, "show proc").catch((e: Error) => e.message)).replace(/\s+/g, " ").trim();
      throw new KilnError("KILN_E_CONTROLLER", `HAProxy reload did not bring up a new worker within 15 s (worker ${oldPid}; master: ${procs.slice(0, 300)})`, {
        hint: "see haproxy.log; `show proc` on the master socket lists failed reloads (the old worker keeps serving)",
      });
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

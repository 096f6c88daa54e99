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

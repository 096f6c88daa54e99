// Loopback ports. kiln binds and dials 127.0.0.1 only.

import { createServer, type AddressInfo } from "node:net";

/**
 * A TCP port free on 127.0.0.1 right now: bind port 0, read it, close. Another process may
 * take it before the caller binds it; callers that launch something on it must cope (an
 * instance that cannot bind fails its health check and is replaced).
 */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

// The shared Router conformance suite against HaproxyRouter driving a real
// HAProxy 2.6 (master-worker, runtime API on a unix socket). Skips with its
// reason when HAProxy is absent, fails instead under KILN_REQUIRE_ALL=1.

import { existsSync } from "node:fs";
import { routerConformance } from "../router-conformance.js";
import { request, send, startBackend, tempDir, type Backend } from "../helpers.js";
import { HAPROXY_BIN, startHaproxyRouter } from "../../../src/traffic/haproxy/process.js";

const present = existsSync(HAPROXY_BIN);
if (!present && process.env.KILN_REQUIRE_ALL === "1") throw new Error(`${HAPROXY_BIN} is missing and KILN_REQUIRE_ALL=1`);
if (!present) console.log(`# skip: ${HAPROXY_BIN} not installed (apt-get install haproxy)`);

if (present) {
  routerConformance("HaproxyRouter (HAProxy 2.6 over the runtime API)", async () => {
    const { dir, cleanup } = await tempDir();
    const h = await startHaproxyRouter({ listen: "127.0.0.1:0", previewListen: "127.0.0.1:0", runDir: dir });
    const backends: Backend[] = [];
    return {
      router: h.router,
      backend: async (name) => {
        const b = await startBackend(name);
        backends.push(b);
        return b.address;
      },
      send: (n, opts = {}) => send(opts.preview ? h.previewListen! : h.listen, n),
      http: {
        request: (o) => request(h.listen, o),
        hits: (name) => backends.find((b) => b.name === name)?.hits ?? [],
      },
      teardown: async () => {
        await h.stop();
        for (const b of backends) await b.close();
        await cleanup();
      },
    };
  });
}

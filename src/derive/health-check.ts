// kiln's health check as a command a container engine runs inside the instance
// (Docker's HEALTHCHECK, a Swarm service's Healthcheck.Test, a stack file's healthcheck).

import { isNodeBase, type Spec } from "../config/index.js";

/**
 * A probe that needs nothing but what the image holds. On kiln's node base the image has
 * Node and no shell or curl, so the probe is `node -e` with http.get, in exec form (there is
 * no /bin/sh for CMD-SHELL); other bases get wget (busybox or Debian), which the base must
 * provide. The Node probe prints what it saw (`GET URL STATUS`, `timed out`, the error
 * code): Docker keeps that output in the container's health log, which is where kiln and
 * `docker inspect` find the reason a task was unhealthy.
 *
 * - node base, port 8080, path /healthz, timeout 2s → ["CMD", "/usr/local/bin/node", "-e", "const u=\"http://127.0.0.1:8080/healthz\";…{timeout:2000}…"]
 * - other base, timeout 2500 ms → ["CMD", "wget", "-q", "-O", "/dev/null", "--timeout=3", "http://127.0.0.1:8080/healthz"] (whole seconds, rounded up)
 */
export function healthCheckCommand(spec: Pick<Spec, "image" | "health">): string[] {
  const url = `http://127.0.0.1:${spec.image.port}${spec.health.path}`;
  if (isNodeBase(spec.image.base)) {
    const js =
      `const u=${JSON.stringify(url)};const r=require("http").get(u,{timeout:${spec.health.timeout}},s=>{console.log("GET "+u+" "+s.statusCode);process.exit(s.statusCode>=200&&s.statusCode<300?0:1)});` +
      `r.on("timeout",()=>{console.log("GET "+u+" timed out");process.exit(1)});r.on("error",e=>{console.log("GET "+u+" "+e.code);process.exit(1)})`;
    return ["CMD", "/usr/local/bin/node", "-e", js];
  }
  return ["CMD", "wget", "-q", "-O", "/dev/null", `--timeout=${Math.max(1, Math.ceil(spec.health.timeout / 1000))}`, url];
}

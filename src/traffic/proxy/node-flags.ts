// Node/V8 flags the proxy process is started with (whoever spawns
// dist/src/traffic/proxy/main.js puts these before the script path).
//
// Why: each proxied request allocates a few short-lived objects (request,
// response, header objects, closures); with V8's default young generation the
// proxy spends a large share of its CPU in scavenges. A 16 MiB semi-space
// (about 48 MiB more memory at most) made kiln's proxy use ~30 % less CPU per
// request in a side-by-side run (bench/proxy-ab.ts: 145 → 102 µs/request,
// the 25-line Node proxy 104 µs), on par with the naive proxy.
export const PROXY_NODE_FLAGS: readonly string[] = Object.freeze(["--max-semi-space-size=16"]);

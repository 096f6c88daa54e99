// Node/V8 flags the proxy process is started with (whoever spawns
// dist/src/traffic/proxy/main.js puts these before the script path).
//
// Why: each proxied request allocates a few short-lived objects (request,
// response, header objects, closures); with V8's default young generation the
// proxy spends a visible share of its CPU in scavenges. Evidence so far, on a
// heavily shared 2-core machine (load average ~20): two A/B runs of the same
// build with and without a larger semi-space (bench/proxy-ab.ts) both showed
// less CPU per request with it (216 → 178 µs at 32 MiB; 278 → 120 µs median,
// 145 → 102 µs in the quietest round, at 16 MiB, the naive proxy 104 there),
// but the full bench right after still measured the builtin proxy at 0.52×
// the naive one. 2026-12-03, same build with and without, load average ~13:
// 222 vs 265 µs CPU/request (2,121 vs 1,688 req/s; naive 170 µs, 3,025 req/s).
// Cost: at most ~48 MiB more memory. Re-measure on a quiet machine.
export const PROXY_NODE_FLAGS: readonly string[] = Object.freeze(["--max-semi-space-size=16"]);

// Node/V8 flags the proxy process is started with (whoever spawns
// dist/src/traffic/proxy/main.js puts these before the script path: src/ops/daemons.ts,
// the generated systemd unit, the benches).
//
// Why: each proxied request allocates ~22 KB of short-lived objects (most of them inside
// Node's HTTP client and server, the same amount as the 25-line naive proxy), so the young
// generation is scavenged every few hundred requests. A scavenge costs what is alive at that
// moment (the requests in flight, ~32 under the bench), not what is garbage, so its cost per
// request falls as the young generation grows. Node 20 starts the semi-spaces small and, with
// so little surviving, hardly grows them under load: measured under wrk -c32
// (--trace-gc-nvp, pause summed per request; 2 cores shared, load average 6–12, 2026-12-03,
// two and three 4 s rounds):
//
//   semi-space            scavenges / 4 s   GC pause µs / request   RSS after
//   default (naive)       92–146            5.2–15.6                62 MB
//   max 4 MiB (was here)  99–150            10.3–16.9               69 MB
//   min 16 MiB            17–34             3.4–7.0                 91–93 MB
//   min = max 32 MiB      7–12              2.1–2.2                 125 MB
//   min = max 64 MiB      2–8               1.2–3.1                 183 MB
//
// 16 MiB is Node 20's own maximum on 64-bit: the proxy's heap is never bigger than Node's
// defaults allow, it only starts at that size. The earlier cap at 4 MiB dated from when
// in-flight requests were kept in long-lived sets and promoted ~3.5 KB per request (see
// TargetPool.beginPooled); with that gone (~20 B promoted per request at every size above)
// the cap only multiplied scavenges.
export const PROXY_NODE_FLAGS: readonly string[] = Object.freeze(["--min-semi-space-size=16", "--max-semi-space-size=16"]);

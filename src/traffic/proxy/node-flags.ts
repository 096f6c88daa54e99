// Node/V8 flags the proxy process is started with (whoever spawns
// dist/src/traffic/proxy/main.js puts these before the script path).
//
// Why: each proxied request allocates a few tens of kilobytes of short-lived
// objects (most of them inside Node's HTTP client and server), so the proxy
// spends a visible share of its CPU in scavenges, and the young generation's
// size decides both how often they run and how much memory each request's
// allocations sweep through. The flag tried first, a 16 MiB semi-space, is
// Node 20's own maximum on 64-bit (checked: the new space grows to 32 MiB with
// and without it), so it changed nothing. At that size the young generation
// grew until ~11 MB were allocated between scavenges; requests in
// flight across two scavenges (70+ ms apart under load) were then promoted,
// ~2 MB a scavenge, and the old generation was marked and compacted about
// once a second (--trace-gc-nvp under wrk; the naive proxy promoted ~3 KB).
// Capped at 4 MiB, three A/B runs of the same build on 2026-12-03 (2 cores,
// load average 12–15; bench/proxy-ab.ts, OTHER_NODE_FLAGS) all gave less CPU
// per request than at 16 MiB: 142 → 119, 117 → 97, 151 → 122 µs median (the
// naive proxy 142, 118, 127 in the same runs). Costs no memory (it is smaller
// than the default). Re-measure on a quiet machine.
// Later the cause of that promotion was found and removed (per-request entries
// in long-lived sets, see TargetPool.beginPooled): ~12 B promoted per request
// now. Since then the flag measured neutral: 147.9 vs 146.6 µs CPU per request
// without it (bench/proxy-ab.ts, 6 rounds, load average 12–15, 2026-12-03).
export const PROXY_NODE_FLAGS: readonly string[] = Object.freeze(["--max-semi-space-size=4"]);

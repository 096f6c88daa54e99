// Data-plane throughput, side by side in one run over the same backends (two
// instances of examples/hello/server.js on loopback ports):
//   builtin  kiln's proxy (dist/src/traffic/proxy/main.js) with a 2-target table
//   naive    bench/naive-proxy.ts, a ~25-line keep-alive Node proxy (the yardstick)
//   haproxy  HAProxy 2.6 with a hand-written config (roundrobin, http-reuse)
//   direct   one instance, no proxy
// Load: wrk -t1 -c32 -d8s GET /version, --latency for p99. The subjects run
// one after another, `rounds` times (default 6), in alternating order, so slow
// drift of the (shared, noisy) machine hits all alike and builtin and naive
// run back to back both ways; the median of each is reported with every
// sample and the 1-minute load average when it was taken, so the noise is
// visible. Before the rounds, every subject gets the same warm-up (two passes of
// 2 s), so V8's optimizing compiles are behind it. Each proxy process serves every
// round, so anything that builds up in it shows as a trend over the rounds (`drift`).
//
// Figures, from the least to the most sensitive to other processes' load:
//   gc          builtin and naive run with --trace-gc-nvp (one line per GC, the same for
//               both): bytes allocated and promoted to the old generation per request, and
//               mark-compacts per round. Promotion is what made the builtin's CPU per
//               request grow under load (see TargetPool.beginPooled).
//   cpu         CPU time (user + system) of the proxy process per request
//   throughput  requests/s and p99 seen by wrk: wall clock, only comparable within one round
//
//   node dist/bench/proxy.js [--rounds 6] [--duration 8] [--only builtin,naive] [--cpu-prof DIR] [--no-gc]
// or `KILN_BENCH_ONLY=proxy npm run bench`, or from bench/run.ts: `await benchProxy({})`
// (writes bench/results/proxy.json). Nothing here asserts a timing.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { closeSync, mkdtempSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { freeLoopbackPort } from "../src/net.js";
import { ProxyClient } from "../src/traffic/proxy/client.js";
import { PROXY_NODE_FLAGS } from "../src/traffic/proxy/node-flags.js";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const proxyMain = fileURLToPath(new URL("../src/traffic/proxy/main.js", import.meta.url));
const naiveMain = fileURLToPath(new URL("./naive-proxy.js", import.meta.url));
const helloServer = join(repoRoot, "examples/hello/server.js");

export type Subject = "builtin" | "naive" | "haproxy" | "direct";
export const SUBJECTS: readonly Subject[] = ["builtin", "naive", "haproxy", "direct"];

export interface ProxyBenchOptions {
  rounds?: number;
  durationS?: number;
  connections?: number;
  only?: Subject[];
  /** run kiln's proxy and the naive one with --cpu-prof into this directory (builtin.cpuprofile, naive.cpuprofile) */
  cpuProfDir?: string;
  /** run builtin and naive with --trace-gc-nvp and report allocation and promotion per request; default true */
  gc?: boolean;
  /** where to write the JSON; default bench/results/proxy.json; "" = do not write */
  out?: string;
  /** extra subjects (e.g. the haproxy router): a URL already serving the same two backends */
  extra?: Record<string, (backends: string[]) => Promise<{ url: string; stop(): Promise<void>; /** for CPU per request */ pid?: number }>>;
}

export interface WrkRun {
  rps: number;
  p99Ms: number;
  errors: number;
  requests: number;
  /** CPU time the proxy process spent per request (user + system), when its pid is known */
  cpuUsPerRequest?: number;
  /** GC figures of the run, when the process was started with --trace-gc-nvp */
  gc?: GcRun;
  /** 1-minute load average when the run ended */
  load1?: number;
}

export interface GcRun {
  allocatedBytesPerRequest: number;
  promotedBytesPerRequest: number;
  scavenges: number;
  markCompacts: number;
}

interface GcTotals {
  allocated: number;
  promoted: number;
  scavenges: number;
  markCompacts: number;
}

/**
 * Sum V8's --trace-gc-nvp lines: `allocated=` (bytes allocated since the previous GC),
 * `promoted=` (bytes moved to the old generation), `gc=s` a scavenge, `gc=mc` a mark-compact.
 *
 *   "… gc=s … allocated=4000 promoted=100 …" twice → allocated 8000, promoted 200, 2 scavenges
 *   "… gc=mc … allocated=500 promoted=0 …"         → 1 mark-compact, allocated 500
 *   {"ready":true,…} (the proxy's own stdout line)   → nothing counted
 */
export function parseGcTrace(text: string): GcTotals {
  const t: GcTotals = { allocated: 0, promoted: 0, scavenges: 0, markCompacts: 0 };
  for (const line of text.split("\n")) {
    const kind = / gc=(\w+) /.exec(line)?.[1];
    if (kind === undefined) continue;
    if (kind === "s") t.scavenges++;
    if (kind === "mc") t.markCompacts++;
    t.allocated += Number(/ allocated=(\d+)/.exec(line)?.[1] ?? 0);
    t.promoted += Number(/ promoted=(\d+)/.exec(line)?.[1] ?? 0);
  }
  return t;
}

/** Parse wrk's summary: "Requests/sec: 1234.5", the --latency "99%  3.21ms" line and socket errors / non-2xx. */
export function parseWrk(text: string): WrkRun {
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1] ?? NaN);
  const p = /^\s+99%\s+([\d.]+)(us|ms|s)\s*$/m.exec(text);
  const unit = p?.[2] === "us" ? 0.001 : p?.[2] === "s" ? 1000 : 1;
  const p99Ms = p ? Number(p[1]) * unit : NaN;
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0);
  const errors = (sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0) + non2xx;
  const requests = Number(/(\d+) requests in/.exec(text)?.[1] ?? NaN);
  return { rps, p99Ms, errors, requests };
}

/** utime + stime of a process in ms (Linux /proc; clock ticks are 10 ms here). */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function wrk(url: string, seconds: number, connections: number, pid?: number, gcFile?: string): WrkRun {
  const cpu0 = pid !== undefined ? cpuMs(pid) : 0;
  const gc0 = gcFile !== undefined ? parseGcTrace(readFileSync(gcFile, "utf8")) : undefined;
  const r = spawnSync("wrk", ["-t1", `-c${connections}`, `-d${seconds}s`, "--latency", url], { encoding: "utf8", timeout: (seconds + 30) * 1000 });
  if (r.status !== 0) throw new Error(`wrk failed (${r.status}): ${r.stderr}`);
  const run = parseWrk(r.stdout);
  if (pid !== undefined) run.cpuUsPerRequest = ((cpuMs(pid) - cpu0) * 1000) / run.requests;
  if (gcFile !== undefined && gc0 !== undefined) {
    const gc1 = parseGcTrace(readFileSync(gcFile, "utf8"));
    run.gc = {
      allocatedBytesPerRequest: Math.round((gc1.allocated - gc0.allocated) / run.requests),
      promotedBytesPerRequest: Math.round((gc1.promoted - gc0.promoted) / run.requests),
      scavenges: gc1.scavenges - gc0.scavenges,
      markCompacts: gc1.markCompacts - gc0.markCompacts,
    };
  }
  run.load1 = round1(os.loadavg()[0]!);
  return run;
}

function get(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: 1000 }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(0));
  });
}

async function until200(url: string, what: string, ms = 15_000): Promise<void> {
  const by = Date.now() + ms;
  while (Date.now() < by) {
    if ((await get(url)) === 200) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not answer 200 at ${url} within ${ms} ms`);
}

/** Warm-up before the measured rounds: passes over every subject, seconds of wrk each (see benchProxy). */
const WARM_UP_PASSES = 2;
const WARM_UP_S = 2;

/** The median of `xs` (the mean of the middle two for an even count); bench/haproxy-router.ts uses it too. */
export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const round1 = (n: number) => Math.round(n * 10) / 10;
export const round3 = (n: number) => Math.round(n * 1000) / 1000;

export function haproxyConfig(listen: string, backends: string[]): string {
  return [
    "global",
    "  maxconn 4000",
    "defaults",
    "  mode http",
    "  timeout connect 2s",
    "  timeout client 30s",
    "  timeout server 30s",
    "  option http-keep-alive",
    "frontend fe",
    `  bind ${listen}`,
    "  default_backend be",
    "backend be",
    "  balance roundrobin",
    "  http-reuse always",
    ...backends.map((b, i) => `  server s${i + 1} ${b}`),
    "",
  ].join("\n");
}

export async function benchProxy(opts: ProxyBenchOptions = {}) {
  const rounds = opts.rounds ?? 6;
  const gcTrace = opts.gc ?? true;
  const seconds = opts.durationS ?? 8;
  const connections = opts.connections ?? 32;
  const subjects = opts.only ?? [...SUBJECTS];
  const dir = mkdtempSync(join(os.tmpdir(), "kiln-bench-proxy-"));
  const children: ChildProcess[] = [];
  const started = (c: ChildProcess) => {
    children.push(c);
    return c;
  };
  const extraStops: Array<() => Promise<void>> = [];
  const loadBefore = os.loadavg();
  const gcFiles: Record<string, string> = {};
  /** stdout of a proxy process: its --trace-gc-nvp lines go to a file read after each run */
  const gcOut = (name: string): { flags: string[]; stdout: "ignore" | number } => {
    if (!gcTrace) return { flags: [], stdout: "ignore" };
    gcFiles[name] = join(dir, `${name}.gc`);
    const fd = openSync(gcFiles[name]!, "w");
    return { flags: ["--trace-gc-nvp"], stdout: fd };
  };
  const cpuProf = (name: string) => {
    if (!opts.cpuProfDir) return [];
    mkdirSync(opts.cpuProfDir, { recursive: true });
    return ["--cpu-prof", `--cpu-prof-dir=${opts.cpuProfDir}`, `--cpu-prof-name=${name}.cpuprofile`];
  };
  try {
    // Two hello instances.
    const backends: string[] = [];
    for (const name of ["b1", "b2"]) {
      const port = await freeLoopbackPort();
      started(
        spawn(process.execPath, [helloServer], {
          env: { ...process.env, PORT: String(port), HOST: "127.0.0.1", KILN_INSTANCE_ID: name, DATA_DIR: join(dir, "data") },
          stdio: "ignore",
        }),
      );
      backends.push(`127.0.0.1:${port}`);
    }
    for (const b of backends) await until200(`http://${b}/version`, "hello instance");

    const urls: Record<string, string> = { direct: `http://${backends[0]}/version` };
    const pids: Record<string, number | undefined> = { direct: children[0]!.pid };
    if (subjects.includes("builtin")) {
      const port = await freeLoopbackPort();
      const sock = join(dir, "p.sock");
      const prof = cpuProf("builtin");
      const gc = gcOut("builtin");
      pids.builtin = started(
        // With PROXY_NODE_FLAGS, as src/ops/daemons.ts and the generated systemd unit start it.
        spawn(process.execPath, [...PROXY_NODE_FLAGS, ...prof, ...gc.flags, proxyMain, "--listen", `127.0.0.1:${port}`, "--admin", sock, "--state", join(dir, "routes.json"), "--log", join(dir, "proxy.log")], {
          stdio: ["ignore", gc.stdout, "ignore"],
        }),
      ).pid;
      if (typeof gc.stdout === "number") closeSync(gc.stdout);
      const client = new ProxyClient(sock);
      for (let i = 0; i < 200 && !(await client.ping()); i++) await new Promise((r) => setTimeout(r, 50));
      await client.setTable({
        version: 1,
        targets: backends.map((address, i) => ({ id: `b${i + 1}`, release: "r1", address, weight: 1, state: "active" as const })),
        health: { path: "/healthz", intervalMs: 1000, timeoutMs: 500, healthyThreshold: 1, unhealthyThreshold: 2 },
        drainTimeoutMs: 1000,
      });
      urls.builtin = `http://127.0.0.1:${port}/version`;
    }
    if (subjects.includes("naive")) {
      const port = await freeLoopbackPort();
      const gc = gcOut("naive");
      pids.naive = started(
        spawn(process.execPath, [...cpuProf("naive"), ...gc.flags, naiveMain, String(port), ...backends.map((b) => b.split(":")[1]!)], { stdio: ["ignore", gc.stdout, "ignore"] }),
      ).pid;
      if (typeof gc.stdout === "number") closeSync(gc.stdout);
      urls.naive = `http://127.0.0.1:${port}/version`;
    }
    if (subjects.includes("haproxy")) {
      const port = await freeLoopbackPort();
      const cfg = join(dir, "haproxy.cfg");
      writeFileSync(cfg, haproxyConfig(`127.0.0.1:${port}`, backends));
      pids.haproxy = started(spawn("haproxy", ["-db", "-f", cfg], { stdio: "ignore" })).pid;
      urls.haproxy = `http://127.0.0.1:${port}/version`;
    }
    for (const [name, make] of Object.entries(opts.extra ?? {})) {
      const e = await make(backends);
      extraStops.push(e.stop);
      urls[name] = e.url;
      pids[name] = e.pid;
    }
    const order = Object.keys(urls).filter((k) => subjects.includes(k as Subject) || k in (opts.extra ?? {}));
    for (const k of order) await until200(urls[k]!, k);
    // Warm-up, the same for every subject: two passes of WARM_UP_S each, every subject in turn.
    // V8 optimizes a Node process's hot functions on a background thread whose CPU time counts
    // in the process's: after the 1 s warm-up used before, that compile work (and the
    // recompiles after the first requests cut mid-flight when wrk stops, a path the first
    // pass runs once) still landed in the first measured rounds: at load average 7–10 (2–3 s
    // rounds, 2026-12-04) round 1 cost 1.4–6× the CPU per request of the later rounds, for
    // either proxy, and the drift figure read that as the process getting cheaper over time.
    // The CPU per request of each warm-up pass is reported (warmUpCpuUsPerRequest).
    const warmUp: Record<string, number[]> = Object.fromEntries(order.map((k) => [k, []]));
    for (let pass = 0; pass < WARM_UP_PASSES; pass++) {
      for (const k of order) {
        const w = wrk(urls[k]!, WARM_UP_S, connections, pids[k]);
        if (w.cpuUsPerRequest !== undefined) warmUp[k]!.push(round1(w.cpuUsPerRequest));
      }
    }

    const samples: Record<string, WrkRun[]> = Object.fromEntries(order.map((k) => [k, []]));
    for (let r = 0; r < rounds; r++) {
      for (const k of r % 2 === 0 ? order : [...order].reverse()) samples[k]!.push(wrk(urls[k]!, seconds, connections, pids[k], gcFiles[k]));
    }
    const loadAfter = os.loadavg();
    const summary = Object.fromEntries(
      order.map((k) => {
        const s = samples[k]!;
        const cpu = s.every((x) => x.cpuUsPerRequest !== undefined) ? round1(median(s.map((x) => x.cpuUsPerRequest!))) : null;
        const gcs = s.every((x) => x.gc !== undefined) ? s.map((x) => x.gc!) : null;
        // Later rounds against earlier ones (medians of each half): above 1 means the same process
        // got costlier as it served more rounds.
        const half = Math.floor(s.length / 2);
        const cpuDrift =
          cpu !== null && half > 0
            ? round3(median(s.slice(s.length - half).map((x) => x.cpuUsPerRequest!)) / median(s.slice(0, half).map((x) => x.cpuUsPerRequest!)))
            : null;
        return [
          k,
          {
            rps: Math.round(median(s.map((x) => x.rps))),
            p99Ms: round3(median(s.map((x) => x.p99Ms))),
            cpuUsPerRequest: cpu,
            ...(gcs
              ? {
                  gc: {
                    allocatedBytesPerRequest: Math.round(median(gcs.map((g) => g.allocatedBytesPerRequest))),
                    promotedBytesPerRequest: Math.round(median(gcs.map((g) => g.promotedBytesPerRequest))),
                    markCompactsPerRound: median(gcs.map((g) => g.markCompacts)),
                  },
                }
              : {}),
            drift: { cpuPerRequestLateToEarly: cpuDrift },
            ...(warmUp[k]!.length ? { warmUpCpuUsPerRequest: warmUp[k] } : {}),
            errors: s.reduce((a, x) => a + x.errors, 0),
            samples: s.map((x) => ({
              rps: Math.round(x.rps),
              p99Ms: round3(x.p99Ms),
              cpuUsPerRequest: x.cpuUsPerRequest === undefined ? null : round1(x.cpuUsPerRequest),
              ...(x.gc ? { promotedBytesPerRequest: x.gc.promotedBytesPerRequest, markCompacts: x.gc.markCompacts } : {}),
              load1: x.load1 ?? null,
            })),
          },
        ];
      }),
    );
    const ratio = (a: string, b: string) => (summary[a] && summary[b] ? round3(summary[a].rps / summary[b].rps) : null);
    // Per-round ratio of builtin to naive (they ran back to back): shows how much of the
    // difference is noise.
    const pairRatios =
      samples.builtin && samples.naive ? samples.builtin.map((x, i) => round3(x.rps / samples.naive![i]!.rps)) : null;
    const cpuPairRatios =
      samples.builtin && samples.naive && samples.builtin.every((x, i) => x.cpuUsPerRequest && samples.naive![i]!.cpuUsPerRequest)
        ? samples.builtin.map((x, i) => round3(samples.naive![i]!.cpuUsPerRequest! / x.cpuUsPerRequest!))
        : null;
    const result = {
      generatedAt: new Date().toISOString(),
      node: process.version,
      cpus: os.cpus().length,
      load: {
        what: "wrk -t1 -c" + connections + " -d" + seconds + "s GET /version over 2 hello instances (1 for direct)",
        rounds,
        order: `alternating per round: ${order.join(", ")}, then reversed`,
        warmUp: `${WARM_UP_PASSES} passes of ${WARM_UP_S} s per subject, in the same order, before the rounds`,
        gc: gcTrace ? "builtin and naive run with --trace-gc-nvp" : "off",
      },
      noise: { loadAverageBefore: loadBefore.map(round1), loadAverageAfter: loadAfter.map(round1), note: "other processes share the 2 cores; compare within one run only" },
      results: summary,
      ratios: {
        builtinToNaive: ratio("builtin", "naive"),
        builtinToHaproxy: ratio("builtin", "haproxy"),
        builtinToDirect: ratio("builtin", "direct"),
        naiveToDirect: ratio("naive", "direct"),
        haproxyToDirect: ratio("haproxy", "direct"),
        builtinToNaivePerRound: pairRatios,
        /** median of the per-round ratios (each round's pair ran back to back) */
        builtinToNaiveMedianOfRounds: pairRatios ? round3(median(pairRatios)) : null,
        /** CPU per request, naive ÷ builtin (above 1: the builtin is cheaper): the same comparison, far less sensitive to other processes' load */
        naiveToBuiltinCpuPerRequest:
          summary.builtin?.cpuUsPerRequest && summary.naive?.cpuUsPerRequest ? round3(summary.naive.cpuUsPerRequest / summary.builtin.cpuUsPerRequest) : null,
        naiveToBuiltinCpuPerRequestPerRound: cpuPairRatios,
        naiveToBuiltinCpuPerRequestMedianOfRounds: cpuPairRatios ? round3(median(cpuPairRatios)) : null,
      },
      // Judged on the median of the per-round ratios: each round's builtin and naive ran back to
      // back, so a burst of other work that starves one round hits both sides of its ratio,
      // where it would shift one subject's median alone.
      target: {
        builtinToNaive: ">= 1.0 (throughput: median of the per-round ratios)",
        met: pairRatios ? median(pairRatios) >= 1 : null,
        cpuPerRequestMet: cpuPairRatios ? median(cpuPairRatios) >= 1 : null,
      },
    };
    const out = opts.out ?? join(repoRoot, "bench/results/proxy.json");
    if (out !== "") {
      mkdirSync(join(out, ".."), { recursive: true });
      writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
    }
    return result;
  } finally {
    for (const s of extraStops) await s().catch(() => undefined);
    // SIGTERM first so a --cpu-prof proxy writes its profile on its graceful exit.
    for (const c of children) c.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 1500));
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      rounds: { type: "string" },
      duration: { type: "string" },
      connections: { type: "string" },
      only: { type: "string" },
      "cpu-prof": { type: "string" },
      "no-gc": { type: "boolean" },
      out: { type: "string" },
    },
  });
  const r = await benchProxy({
    ...(values.rounds ? { rounds: Number(values.rounds) } : {}),
    ...(values.duration ? { durationS: Number(values.duration) } : {}),
    ...(values.connections ? { connections: Number(values.connections) } : {}),
    ...(values.only ? { only: values.only.split(",") as Subject[] } : {}),
    ...(values["cpu-prof"] ? { cpuProfDir: values["cpu-prof"] } : {}),
    ...(values["no-gc"] ? { gc: false } : {}),
    ...(values.out !== undefined ? { out: values.out } : {}),
  });
  process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
}

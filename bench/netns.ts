// What a private network costs (issue 12): the same tiny HTTP app, launched by the local provider
// twice — two instances in their own network namespaces behind pasta, two on the host's network
// (`network.mode: host`) — each pair behind its own kiln proxy (the builtin data plane, started
// as the daemons start it). wrk -t1 -c32 GET /version, --latency, alternating private/host for
// `rounds` rounds so the (shared, noisy) machine's drift hits both alike; medians and every
// sample are written, with the load average and the CPU time the pasta processes spent per
// request (user+sys: the forwarding's own cost, less noisy than wall-clock ratios).
//
//   node dist/bench/netns.js [--rounds 3] [--duration 8]   (root, bubblewrap and passt needed)
// or KILN_BENCH_ONLY=netns npm run bench. Writes bench/results/netns.json. Asserts nothing.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { freeLoopbackPort } from "../src/net.js";
import { LocalProvider } from "../src/providers/local/index.js";
import { findPasta, readNetRecord } from "../src/providers/local/netns.js";
import { ProxyClient } from "../src/traffic/proxy/client.js";
import { PROXY_NODE_FLAGS } from "../src/traffic/proxy/node-flags.js";
import { APP_GID, APP_UID, buildTestRootfs } from "../test/providers/local-fixtures.js";
import { parseWrk, type WrkRun } from "./proxy.js";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const proxyMain = fileURLToPath(new URL("../src/traffic/proxy/main.js", import.meta.url));

const APP = `
import http from "node:http";
http.createServer((req, res) => { res.setHeader("content-type", "text/plain"); res.end(req.url === "/version" ? "1.0.0\\n" : "ok\\n"); })
  .listen(Number(process.env.PORT), "127.0.0.1");
`;

function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return 0;
  }
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

async function until200(url: string, ms = 20_000): Promise<void> {
  const by = Date.now() + ms;
  while (Date.now() < by) {
    if ((await get(url)) === 200) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${url} did not answer 200 within ${ms} ms`);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const r3 = (n: number) => Math.round(n * 1000) / 1000;

export async function benchNetns(opts: { rounds?: number; durationS?: number; connections?: number; out?: string } = {}) {
  const rounds = opts.rounds ?? 3;
  const seconds = opts.durationS ?? 8;
  const connections = opts.connections ?? 32;
  const pasta = findPasta();
  if (!pasta) return { skipped: "pasta is not installed (apt-get install passt)" };
  const dir = mkdtempSync(join(os.tmpdir(), "kiln-bench-netns-"));
  const children: ChildProcess[] = [];
  const provider = new LocalProvider({
    home: join(dir, "home"),
    sandbox: "bwrap",
    rootfs: async () => join(dir, "rootfs"),
    imageConfig: async () => ({ env: [], entrypoint: ["/usr/local/bin/node"], cmd: ["/app/app.mjs"], user: `${APP_UID}:${APP_GID}`, workdir: "/app" }),
    log: () => undefined,
  });
  const ids: string[] = [];
  const loadBefore = os.loadavg();
  try {
    mkdirSync(join(dir, "rootfs"), { mode: 0o700 });
    buildTestRootfs(join(dir, "rootfs"), { "app/app.mjs": APP });
    const digest = "sha256:" + "be".repeat(32);
    const modes = { private: { mode: "private" as const, allow: [] }, host: { mode: "host" as const, allow: [] } };
    const urls: Record<string, string> = {};
    const pastaPids: number[] = [];
    for (const [name, isolation] of Object.entries(modes)) {
      const backends: string[] = [];
      for (const n of [1, 2]) {
        const id = `${name}-${n}`;
        ids.push(id);
        const inst = await provider.launch({ instanceId: id, service: "bench", release: "r1", digest, env: {}, volumes: [], isolation });
        await until200(`http://${inst.address}/version`);
        backends.push(inst.address);
        const rec = readNetRecord(join(dir, "home", "instances", id));
        if (rec?.pid !== undefined) pastaPids.push(rec.pid);
      }
      const port = await freeLoopbackPort();
      const sock = join(dir, `${name}.sock`);
      children.push(
        spawn(process.execPath, [...PROXY_NODE_FLAGS, proxyMain, "--listen", `127.0.0.1:${port}`, "--admin", sock, "--state", join(dir, `${name}-routes.json`), "--log", join(dir, `${name}-proxy.log`)], { stdio: "ignore" }),
      );
      const client = new ProxyClient(sock);
      for (let i = 0; i < 200 && !(await client.ping()); i++) await new Promise((r) => setTimeout(r, 50));
      await client.setTable({
        version: 1,
        targets: backends.map((address, i) => ({ id: `${name}-${i + 1}`, release: "r1", address, weight: 1, state: "active" as const })),
        health: { path: "/healthz", intervalMs: 1000, timeoutMs: 500, healthyThreshold: 1, unhealthyThreshold: 2 },
        drainTimeoutMs: 1000,
      });
      urls[name] = `http://127.0.0.1:${port}/version`;
      await until200(urls[name]!);
    }
    const samples: Record<string, (WrkRun & { pastaCpuUsPerRequest?: number })[]> = { private: [], host: [] };
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? ["private", "host"] : ["host", "private"];
      for (const name of order) {
        const cpu0 = pastaPids.reduce((a, p) => a + cpuMs(p), 0);
        const r = spawnSync("wrk", ["-t1", `-c${connections}`, `-d${seconds}s`, "--latency", urls[name]!], { encoding: "utf8", timeout: (seconds + 30) * 1000 });
        if (r.status !== 0) throw new Error(`wrk failed (${r.status}): ${r.stderr}`);
        const run: WrkRun & { pastaCpuUsPerRequest?: number } = parseWrk(r.stdout);
        if (name === "private") run.pastaCpuUsPerRequest = r3(((pastaPids.reduce((a, p) => a + cpuMs(p), 0) - cpu0) * 1000) / run.requests);
        samples[name]!.push(run);
      }
    }
    const summary = (name: string) => ({
      rps: Math.round(median(samples[name]!.map((s) => s.rps))),
      p99Ms: r3(median(samples[name]!.map((s) => s.p99Ms))),
      errors: samples[name]!.reduce((a, s) => a + s.errors, 0),
    });
    const priv = summary("private");
    const host = summary("host");
    const out = {
      generatedAt: new Date().toISOString(),
      node: process.version,
      note: `two instances each, behind kiln's proxy; wrk -t1 -c${connections} -d${seconds}s GET /version, ${rounds} rounds alternating; private = own network namespace + pasta (host 127.0.0.1:PORT spliced to the namespace), host = network.mode: host. 2 shared cores: compare the ratio, not the absolute numbers.`,
      loadAverage: { before: loadBefore.map(r3), after: os.loadavg().map(r3) },
      private: { ...priv, pastaCpuUsPerRequest: r3(median(samples.private!.map((s) => s.pastaCpuUsPerRequest ?? NaN))) },
      host,
      ratio: { rps: r3(priv.rps / host.rps), p99: r3(priv.p99Ms / host.p99Ms) },
      samples,
    };
    const file = opts.out ?? join(repoRoot, "bench/results/netns.json");
    if (file) writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
    return out;
  } finally {
    for (const c of children) c.kill("SIGTERM");
    for (const id of ids) await provider.terminate(id, { graceMs: 1000 }).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { rounds: { type: "string" }, duration: { type: "string" } } });
  const r = await benchNetns({ rounds: values.rounds ? Number(values.rounds) : undefined, durationS: values.duration ? Number(values.duration) : undefined });
  console.log(JSON.stringify({ ...r, samples: undefined }, null, 2));
}

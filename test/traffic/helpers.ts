// Shared test helpers: tiny backends on 127.0.0.1, a request helper, bounded
// waiting, and an in-process proxy in a temp directory.

import { spawn, type ChildProcess } from "node:child_process";
import http from "node:http";
import { mkdtemp, rm } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { after } from "node:test";
import type { RoutingTable, Target } from "../../src/traffic/router.js";
import { ProxyClient } from "../../src/traffic/proxy/client.js";
import { startProxy, type ProxyOptions, type RunningProxy } from "../../src/traffic/proxy/server.js";

export const PROXY_MAIN = fileURLToPath(new URL("../../src/traffic/proxy/main.js", import.meta.url));
export const BACKEND_FIXTURE = fileURLToPath(new URL("./fixtures/backend.js", import.meta.url));

export interface Hit {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface Backend {
  name: string;
  address: string;
  hits: Hit[];
  /** /healthz answers 503 while sick */
  setSick(sick: boolean): void;
  close(): Promise<void>;
}

/**
 * A backend that understands:
 *   /healthz           200, or 503 while sick
 *   /slow?ms=N         answers after N ms
 *   /stream?ms=N       sends headers and a first chunk now, the end after N ms
 *   /fail              500
 *   anything else      200 with the backend's name; POST/PUT bodies are echoed back
 * With `drop`, every request but /healthz is read and then answered by
 * destroying the connection (an instance that crashes mid-request).
 * Every request except /healthz is recorded in `hits`.
 */
export async function startBackend(name: string, opts: { drop?: boolean } = {}): Promise<Backend> {
  let sick = false;
  const hits: Hit[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, f: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      f();
    }, ms);
    timers.add(t);
  };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (url.pathname === "/healthz") {
        res.writeHead(sick ? 503 : 200).end(sick ? "sick" : "ok");
        return;
      }
      const body = Buffer.concat(chunks);
      hits.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body: body.toString() });
      if (opts.drop) {
        req.socket.destroy();
        return;
      }
      const ms = Number(url.searchParams.get("ms") ?? "0");
      switch (url.pathname) {
        case "/slow":
          later(ms, () => res.writeHead(200, { "x-backend": name }).end(`${name} slow`));
          return;
        case "/stream":
          res.writeHead(200, { "x-backend": name });
          res.write(`${name} start;`);
          later(ms, () => res.end("end"));
          return;
        case "/fail":
          res.writeHead(500, { "x-backend": name }).end("boom");
          return;
        default:
          if (req.method === "POST" || req.method === "PUT") {
            res.writeHead(200, { "x-backend": name, "content-type": "application/octet-stream" }).end(body);
          } else {
            res.writeHead(200, { "x-backend": name }).end(name);
          }
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    name,
    address: `127.0.0.1:${port}`,
    hits,
    setSick: (s) => {
      sick = s;
    },
    close: async () => {
      for (const t of timers) clearTimeout(t);
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A backend in its own process (test/traffic/fixtures/backend.ts), so it can be SIGKILLed. */
export async function spawnBackend(name: string): Promise<{ name: string; address: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [BACKEND_FIXTURE, "serve", name], { stdio: ["ignore", "pipe", "inherit"] });
  const line = await firstLine(child, 10_000);
  const { port } = JSON.parse(line) as { port: number };
  return { name, address: `127.0.0.1:${port}`, child };
}

export function firstLine(child: ChildProcess, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => {
      rl.close();
      reject(new Error(`no output from pid ${child.pid} within ${timeoutMs}ms`));
    }, timeoutMs);
    rl.once("line", (l) => {
      clearTimeout(timer);
      rl.close();
      resolve(l);
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`pid ${child.pid} exited (${code}) before printing a line`));
    });
  });
}

export function waitExit(child: ChildProcess, timeoutMs: number): Promise<number | null> {
  return new Promise((resolve, reject) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
    const timer = setTimeout(() => reject(new Error(`pid ${child.pid} still running after ${timeoutMs}ms`)), timeoutMs);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export function request(
  address: string,
  opts: { method?: string; path?: string; body?: string | Buffer; agent?: http.Agent | false; headers?: http.OutgoingHttpHeaders; timeoutMs?: number } = {},
): Promise<Reply> {
  const [host, port] = address.split(":") as [string, string];
  return new Promise((resolve, reject) => {
    const req = http.request({
      host,
      port: Number(port),
      method: opts.method ?? "GET",
      path: opts.path ?? "/",
      agent: opts.agent ?? false,
      headers: opts.headers,
      timeout: opts.timeoutMs ?? 15_000,
    });
    req.on("timeout", () => req.destroy(new Error("client timeout")));
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(opts.body);
  });
}

/** Poll `cond` until true; throws after `timeoutMs` (a deadline, not a timing assertion). */
export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000, stepMs = 20): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  throw new Error(`timed out after ${timeoutMs}ms waiting for: ${what}`);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function target(id: string, address: string, over: Partial<Target> = {}): Target {
  return { id, release: "r1", address, weight: 1, state: "active", ...over };
}

export function table(version: number, targets: Target[], over: Partial<RoutingTable> = {}): RoutingTable {
  return {
    version,
    targets,
    // Slow active checks by default, so tests see only the behaviour they provoke.
    health: { path: "/healthz", intervalMs: 60_000, timeoutMs: 1000, healthyThreshold: 1, unhealthyThreshold: 1 },
    drainTimeoutMs: 30_000,
    ...over,
  };
}

export async function tempDir(): Promise<{ dir: string; cleanup(): Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "kiln-proxy-"));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export interface TestProxy {
  proxy: RunningProxy;
  client: ProxyClient;
  dir: string;
  logs: string[];
  close(): Promise<void>;
}

export async function withProxy(
  opts: { closeTimeoutMs?: number; upstreamTimeoutMs?: number; previewListen?: string; dir?: string } & Partial<ProxyOptions> = {},
): Promise<TestProxy> {
  const { dir, cleanup } = opts.dir ? { dir: opts.dir, cleanup: async () => undefined } : await tempDir();
  const logs: string[] = [];
  const proxy = await startProxy({
    // Tests tell instances apart by x-kiln-instance; production leaves it off.
    instanceHeaders: true,
    ...opts,
    listen: opts.listen ?? "127.0.0.1:0",
    ...(opts.previewListen !== undefined ? { previewListen: opts.previewListen } : {}),
    admin: path.join(dir, "proxy.sock"),
    stateFile: path.join(dir, "routes.json"),
    log: (l) => logs.push(l),
    closeTimeoutMs: opts.closeTimeoutMs ?? 2000,
    upstreamTimeoutMs: opts.upstreamTimeoutMs,
  });
  const client = new ProxyClient(path.join(dir, "proxy.sock"));
  return {
    proxy,
    client,
    dir,
    logs,
    close: async () => {
      await proxy.close();
      await cleanup();
    },
  };
}

/** Count responses by the instance that answered. */
export function countBy(replies: Reply[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of replies) {
    const k = String(r.headers["x-kiln-instance"] ?? `status-${r.status}`);
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

/**
 * Run `total` GETs with `concurrency` workers over one keep-alive agent, bounded by
 * `deadlineMs`. Failures are collected, not thrown.
 */
export async function load(
  address: string,
  opts: { total: number; concurrency: number; deadlineMs: number; path?: string; onProgress?: (done: number) => void },
): Promise<{ replies: Reply[]; errors: string[] }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.concurrency });
  const replies: Reply[] = [];
  const errors: string[] = [];
  let started = 0;
  const until = Date.now() + opts.deadlineMs;
  const worker = async () => {
    while (started < opts.total && Date.now() < until) {
      started++;
      try {
        const r = await request(address, { path: opts.path ?? "/", agent });
        if (r.status === 200) replies.push(r);
        else errors.push(`HTTP ${r.status}: ${r.body}`);
      } catch (e) {
        errors.push((e as Error).message);
      }
      opts.onProgress?.(replies.length + errors.length);
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  agent.destroy();
  return { replies, errors };
}

/**
 * Send `n` GETs with 8 workers over one keep-alive agent (bounded by 20 s) and
 * count who answered: the backend's name (x-backend), or the status when no instance did.
 */
export async function send(address: string, n: number, path = "/"): Promise<Record<string, number>> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const out: Record<string, number> = {};
  let started = 0;
  const until = Date.now() + 20_000;
  const worker = async () => {
    while (started < n && Date.now() < until) {
      started++;
      const r = await request(address, { path, agent });
      // x-backend: the test backend's own name, so any router can be counted (x-kiln-* is opt-in)
      const k = String(r.headers["x-backend"] ?? r.headers["x-kiln-instance"] ?? r.status);
      out[k] = (out[k] ?? 0) + 1;
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(8, n) }, worker));
  } finally {
    agent.destroy();
  }
  return out;
}

/**
 * Backends and proxies for one describe block, closed in reverse order after its last test.
 * Call it inside the describe callback (it registers the suite's `after` hook).
 */
export function suiteFixtures(): {
  backend(name: string, opts?: { drop?: boolean }): Promise<Backend>;
  proxy(opts?: Parameters<typeof withProxy>[0]): Promise<TestProxy>;
  /** anything else with a close() the suite must stop */
  keep<T extends { close(): Promise<void> }>(thing: T): T;
  /** any other clean-up, run with the rest after the last test */
  defer(fn: () => Promise<void>): void;
} {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });
  const keep = <T extends { close(): Promise<void> }>(thing: T): T => {
    cleanups.push(() => thing.close());
    return thing;
  };
  return {
    backend: async (name, opts) => keep(await startBackend(name, opts)),
    proxy: async (opts) => keep(await withProxy(opts)),
    keep,
    defer: (fn) => void cleanups.push(fn),
  };
}

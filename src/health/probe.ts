// Health probes and the threshold rule (nextHealth). The proxy folds its active checks
// with nextHealth directly; the controller's tracker (tracker.ts) builds on the same rule,
// so "thresholds below 1 count as 1" holds in both.
//
// A probe outcome is data, never an exception (STYLE habit 8): callers decide
// what a failure means. Probes use a fresh connection each time (agent: false)
// so a probe measures "can a new client connect and get an answer", not the
// health of some pooled socket.

import http from "node:http";
import net from "node:net";

export type ProbeResult =
  | { ok: true; status: number; latencyMs: number }
  /** `status` is set when the instance answered, with a status that is not 2xx/3xx */
  | { ok: false; reason: string; status?: number };

export interface HealthState {
  healthy: boolean;
  consecutiveOk: number;
  consecutiveFail: number;
}

export interface HealthThresholds {
  /** consecutive successes that turn an unhealthy target healthy */
  healthyThreshold: number;
  /** consecutive failures that turn a healthy target unhealthy */
  unhealthyThreshold: number;
}

/** Split "host:port" or "[v6]:port". Returns undefined when it is not one. */
export function parseHostPort(address: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(address);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) return undefined;
  return { host: (m[1] ?? m[2]) as string, port };
}

/**
 * GET `path` on `address` ("127.0.0.1:PORT") over a new connection.
 * 2xx and 3xx are healthy; anything else, a connection error or no response
 * headers within `timeoutMs` is `{ ok: false, reason }`.
 */
export function probeHttp(address: string, path: string, timeoutMs: number): Promise<ProbeResult> {
  const hp = parseHostPort(address);
  if (!hp) return Promise.resolve({ ok: false, reason: `bad address "${address}" (want host:port)` });
  const started = performance.now();
  return new Promise<ProbeResult>((resolve) => {
    let done = false;
    const settle = (r: ProbeResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.destroy();
      resolve(r);
    };
    const req = http.request({
      host: hp.host,
      port: hp.port,
      path,
      method: "GET",
      agent: false,
      headers: { "user-agent": "kiln-health/1", connection: "close" },
    });
    // One deadline for connect + response headers: a hung instance is unhealthy
    // whichever phase it hangs in.
    const timer = setTimeout(
      () => settle({ ok: false, reason: `timeout after ${timeoutMs}ms` }),
      Math.max(1, timeoutMs),
    );
    req.on("response", (res) => {
      const status = res.statusCode ?? 0;
      const latencyMs = Math.round((performance.now() - started) * 100) / 100;
      res.resume();
      if (status >= 200 && status < 400) settle({ ok: true, status, latencyMs });
      else settle({ ok: false, reason: `HTTP ${status}`, status });
    });
    req.on("error", (err: NodeJS.ErrnoException) => settle({ ok: false, reason: err.code ?? err.message }));
    req.end();
  });
}

/** Connect to `address` and close again; ok when the TCP handshake completes in time. */
export function probeTcp(address: string, timeoutMs: number): Promise<ProbeResult> {
  const hp = parseHostPort(address);
  if (!hp) return Promise.resolve({ ok: false, reason: `bad address "${address}" (want host:port)` });
  const started = performance.now();
  return new Promise<ProbeResult>((resolve) => {
    let done = false;
    const sock = net.connect({ host: hp.host, port: hp.port });
    const settle = (r: ProbeResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(
      () => settle({ ok: false, reason: `timeout after ${timeoutMs}ms` }),
      Math.max(1, timeoutMs),
    );
    sock.once("connect", () =>
      settle({ ok: true, status: 0, latencyMs: Math.round((performance.now() - started) * 100) / 100 }),
    );
    sock.once("error", (err: NodeJS.ErrnoException) => settle({ ok: false, reason: err.code ?? err.message }));
  });
}

/**
 * Fold one probe outcome into the health state. Thresholds below 1 count as 1.
 *
 *   healthy,  ok   → stays healthy, consecutiveOk+1, consecutiveFail 0
 *   healthy,  fail → unhealthy once consecutiveFail reaches unhealthyThreshold
 *                    (threshold 3: fail, fail → still healthy; third fail → unhealthy)
 *   unhealthy, ok  → healthy once consecutiveOk reaches healthyThreshold
 *                    (threshold 2: ok → still unhealthy; second ok → healthy)
 *   unhealthy, fail → stays unhealthy, consecutiveOk 0
 *   a failure between successes resets the success run (ok, fail, ok → consecutiveOk 1)
 */
export function nextHealth(prev: HealthState, ok: boolean, th: HealthThresholds): HealthState {
  if (ok) {
    const consecutiveOk = prev.consecutiveOk + 1;
    return {
      healthy: prev.healthy || consecutiveOk >= Math.max(1, th.healthyThreshold),
      consecutiveOk,
      consecutiveFail: 0,
    };
  }
  const consecutiveFail = prev.consecutiveFail + 1;
  return {
    healthy: prev.healthy && consecutiveFail < Math.max(1, th.unhealthyThreshold),
    consecutiveOk: 0,
    consecutiveFail,
  };
}

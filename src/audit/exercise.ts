// Exercising an instance: wait for its health check, then send the smoke requests.
// `parseSmoke` is pure; the rest talks HTTP to 127.0.0.1 only, every wait bounded.
//
// Smoke file format, one request a line ("#" comments and blank lines skipped):
//   GET /
//   POST /notes {"text":"hello"}      ← the rest of the line is the body, sent as-is
//   DELETE /notes/1

import http from "node:http";
import { KilnError } from "../errors.js";
import { parseHostPort, probeHttp } from "../health/probe.js";
import type { SmokeRequest, SmokeResult } from "./types.js";

const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

export function parseSmoke(text: string, file: string): SmokeRequest[] {
  const out: SmokeRequest[] = [];
  const problems: { where: string; message: string }[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/\r$/, "");
    if (line.trim() === "" || line.trimStart().startsWith("#")) return;
    const m = /^\s*(\S+)\s+(\S+)(?:\s(.*))?$/.exec(line);
    const where = `${file}:${i + 1}`;
    if (!m) return problems.push({ where, message: `expected "METHOD /path [body]", got ${JSON.stringify(line)}` });
    const method = m[1]!.toUpperCase();
    if (!METHODS.has(method)) return problems.push({ where, message: `unknown method ${JSON.stringify(m[1])}` });
    if (!m[2]!.startsWith("/")) return problems.push({ where, message: `the path must start with "/", got ${JSON.stringify(m[2])}` });
    const body = m[3]?.trim();
    out.push({ method, path: m[2]!, ...(body ? { body } : {}), where });
  });
  if (problems.length > 0)
    throw new KilnError("KILN_E_USAGE", `${file}: ${problems.length} bad smoke request line${problems.length === 1 ? "" : "s"}`, {
      details: problems,
      hint: 'one request per line: "GET /", "POST /notes {\\"text\\":\\"hi\\"}"',
    });
  return out;
}

export function describeRequest(r: Pick<SmokeRequest, "method" | "path">): string {
  return `${r.method} ${r.path}`;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls the health path until it answers 2xx/3xx or `deadlineMs` passes. */
export async function waitHealthy(
  address: string,
  path: string,
  opts: { deadlineMs: number; timeoutMs: number; isAlive: () => Promise<boolean> },
): Promise<{ ok: true; afterMs: number } | { ok: false; reason: string }> {
  const started = Date.now();
  let last = "no answer";
  for (let i = 0; i < 10_000 && Date.now() - started < opts.deadlineMs; i++) {
    const r = await probeHttp(address, path, opts.timeoutMs);
    if (r.ok) return { ok: true, afterMs: Date.now() - started };
    last = r.reason;
    if (!(await opts.isAlive())) return { ok: false, reason: `the app exited (last probe: ${last})` };
    await sleep(100);
  }
  return { ok: false, reason: `no healthy answer from GET ${path} within ${opts.deadlineMs} ms (last: ${last})` };
}

/** Sends one request and reads the whole answer; never throws. */
export function sendRequest(address: string, req: SmokeRequest, timeoutMs: number): Promise<SmokeResult> {
  const request = describeRequest(req);
  const hp = parseHostPort(address);
  if (!hp) return Promise.resolve({ request, ok: false, error: `bad address ${address}` });
  return new Promise((resolve) => {
    let done = false;
    const settle = (r: SmokeResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(r);
    };
    const body = req.body !== undefined ? Buffer.from(req.body) : undefined;
    const headers: Record<string, string> = { "user-agent": "kiln-audit/1", connection: "close" };
    if (body) {
      headers["content-length"] = String(body.length);
      headers["content-type"] = /^\s*[[{]/.test(req.body ?? "") ? "application/json" : "text/plain";
    }
    const r = http.request({ host: hp.host, port: hp.port, path: req.path, method: req.method, agent: false, headers });
    const timer = setTimeout(() => {
      r.destroy();
      settle({ request, ok: false, error: `timeout after ${timeoutMs} ms` });
    }, timeoutMs);
    r.on("response", (res) => {
      res.resume();
      res.on("end", () => {
        const status = res.statusCode ?? 0;
        settle({ request, ok: status >= 200 && status < 400, status });
      });
      res.on("error", (e) => settle({ request, ok: false, error: e.message }));
    });
    r.on("error", (e: NodeJS.ErrnoException) => settle({ request, ok: false, error: e.code ?? e.message }));
    r.end(body);
  });
}

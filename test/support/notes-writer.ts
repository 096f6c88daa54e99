// `node dist/test/support/notes-writer.js --url http://127.0.0.1:PORT --prefix RUN --out FILE
//   [--concurrency 4] [--duration-ms 180000] [--max-requests 100000] [--timeout-ms 10000] [--rate 0]`
//
// The writer for examples/notes, run as its own process (never inside the test
// process, whose event loop waits on the CLI). `concurrency` workers each send one
// `POST /notes {"id","body"}` at a time with a fresh unique id (`PREFIX-N`) over a
// keep-alive agent, until stopped or a bound (duration, request count) is reached.
// It keeps the outcome of every id it sent:
//   acked   the app answered 201: the note was committed, it must be in the database once;
//   failed  anything else (another status, a reset, a timeout): the write may or may not
//           have happened ("unknown outcome"), so it is kept apart from lost writes.
// Stopping never abandons a request: issuing stops and in-flight requests run to their
// own outcome (each bounded by --timeout-ms), so every id sent is either acked or failed.
//
// stdout, JSON lines: {"t","sent","acked","failed","inFlight"} every 250 ms and in answer
// to {"cmd":"snapshot"} on stdin; {"done":true,…counts,"reason"} last, after the full
// result {sent, acked: [ids], failed: [{id, reason}], reason} is written to --out.
// It stops on {"cmd":"stop"}, when stdin closes (a dead parent never leaves it running),
// on SIGTERM/SIGINT, or at a bound. Only loopback URLs are accepted.

import { writeFileSync } from "node:fs";
import { Agent, request, type IncomingMessage } from "node:http";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { checkLoopbackUrl } from "../../src/loadgen/options.js";

export interface WriterResult {
  sent: number;
  acked: string[];
  failed: { id: string; reason: string }[];
  reason: "duration" | "max-requests" | "stop";
  durationMs: number;
}

export interface WriterProgress {
  t: number;
  sent: number;
  acked: number;
  failed: number;
  inFlight: number;
}

interface Options {
  url: URL;
  prefix: string;
  out: string;
  concurrency: number;
  durationMs: number;
  maxRequests: number;
  timeoutMs: number;
  /** overall requests per second; 0 = as fast as the workers go */
  rate: number;
}

function fail(msg: string): never {
  process.stdout.write(JSON.stringify({ error: msg }) + "\n");
  process.stderr.write(`notes-writer: ${msg}\n`);
  process.exit(2);
}

function parse(argv: string[]): Options {
  const raw = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i]!;
    const v = argv[i + 1];
    if (!k.startsWith("--") || v === undefined) fail(`bad argument ${k}`);
    raw.set(k.slice(2), v);
  }
  const int = (k: string, def: number, min: number, max: number) => {
    const s = raw.get(k);
    if (s === undefined) return def;
    const n = Number(s);
    if (!Number.isInteger(n) || n < min || n > max) fail(`--${k} must be an integer ${min}–${max}, got ${s}`);
    return n;
  };
  const u = checkLoopbackUrl(raw.get("url") ?? "");
  if (!u.ok) fail(u.error);
  const prefix = raw.get("prefix");
  const out = raw.get("out");
  if (!prefix || !/^[A-Za-z0-9._-]{1,80}$/.test(prefix)) fail("--prefix [A-Za-z0-9._-]{1,80} is required");
  if (!out) fail("--out FILE is required");
  return {
    url: new URL("/notes", u.url),
    prefix,
    out,
    concurrency: int("concurrency", 4, 1, 64),
    durationMs: int("duration-ms", 180_000, 1, 600_000),
    maxRequests: int("max-requests", 100_000, 1, 1_000_000),
    timeoutMs: int("timeout-ms", 10_000, 1, 60_000),
    rate: int("rate", 0, 0, 10_000),
  };
}

const o = parse(process.argv.slice(2));
const agent = new Agent({ keepAlive: true, maxSockets: o.concurrency });
const started = performance.now();
const elapsed = () => Math.round(performance.now() - started);
const acked: string[] = [];
const failed: { id: string; reason: string }[] = [];
let sent = 0;
let inFlight = 0;
let stopping = false;
let reason: WriterResult["reason"] = "duration";

/** One POST; resolves with undefined on 201, else the failure reason. Never rejects. */
function post(id: string): Promise<string | undefined> {
  const payload = JSON.stringify({ id, body: `note ${id}` });
  return new Promise((resolve) => {
    let settled = false;
    const done = (r: string | undefined) => {
      if (!settled) {
        settled = true;
        resolve(r);
      }
    };
    const req = request(
      o.url,
      { method: "POST", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(payload) } },
      (res: IncomingMessage) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          if (body.length < 2000) body += c;
        });
        res.on("end", () => {
          if (res.statusCode !== 201) return done(`HTTP ${res.statusCode}: ${body.slice(0, 200).trim()}`);
          try {
            const j = JSON.parse(body) as { id?: unknown };
            done(j.id === id ? undefined : `201 for another id: ${body.slice(0, 200)}`);
          } catch {
            done(`201 with a body that is not JSON: ${body.slice(0, 200)}`);
          }
        });
        res.on("error", (e) => done(`response: ${e.message}`));
        res.on("close", () => {
          if (!res.complete) done("connection closed in the middle of the response");
        });
      },
    );
    req.setTimeout(o.timeoutMs, () => req.destroy(new Error(`timeout after ${o.timeoutMs} ms`)));
    req.on("error", (e) => done(`${(e as NodeJS.ErrnoException).code ?? "error"} ${e.message}`));
    req.end(payload);
  });
}

async function worker(): Promise<void> {
  while (!stopping) {
    if (sent >= o.maxRequests) return stop("max-requests");
    if (o.rate > 0) {
      // pace the whole run: request n is not sent before n / rate seconds
      const due = (sent / o.rate) * 1000 - (performance.now() - started);
      if (due > 0) {
        await new Promise((r) => setTimeout(r, due));
        if (stopping) return;
      }
    }
    const id = `${o.prefix}-${++sent}`;
    inFlight += 1;
    const r = await post(id);
    inFlight -= 1;
    if (r === undefined) acked.push(id);
    else failed.push({ id, reason: r });
  }
}

const progress = (): WriterProgress => ({ t: elapsed(), sent, acked: acked.length, failed: failed.length, inFlight });
const line = (x: unknown) => process.stdout.write(JSON.stringify(x) + "\n");

function stop(why: WriterResult["reason"]): void {
  if (stopping) return;
  stopping = true;
  reason = why;
}

const durationTimer = setTimeout(() => stop("duration"), o.durationMs);
const reportTimer = setInterval(() => line(progress()), 250);
process.on("SIGTERM", () => stop("stop"));
process.on("SIGINT", () => stop("stop"));
const stdin = createInterface({ input: process.stdin });
stdin.on("line", (text) => {
  let cmd: { cmd?: unknown };
  try {
    cmd = JSON.parse(text) as { cmd?: unknown };
  } catch {
    return;
  }
  if (cmd.cmd === "stop") stop("stop");
  else if (cmd.cmd === "snapshot") line({ snapshot: true, ...progress() });
});
stdin.on("close", () => stop("stop"));

void Promise.all(Array.from({ length: o.concurrency }, () => worker())).then(() => {
  clearTimeout(durationTimer);
  clearInterval(reportTimer);
  agent.destroy();
  const result: WriterResult = { sent, acked, failed, reason, durationMs: elapsed() };
  writeFileSync(o.out, JSON.stringify(result));
  process.stdout.write(JSON.stringify({ done: true, ...progress(), reason, firstFailures: failed.slice(0, 10) }) + "\n", () => process.exit(0));
});

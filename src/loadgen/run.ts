// The load loop: `concurrency` workers, each sending one request at a time
// over a keep-alive agent until the run is stopped or reaches its bound
// (duration, request count). Every run is bounded by construction: options
// are capped (options.ts) and the duration timer always runs.

import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { performance } from "node:perf_hooks";
import type { LoadgenOptions } from "./options.js";
import { LoadStats, readHelloBody, type FinalTotals, type Outcome, type Totals } from "./stats.js";

const MAX_BODY_BYTES = 64 * 1024;
/** on stop, in-flight requests get this long to finish before they are abandoned (and not counted) */
const STOP_GRACE_MS = 1000;

export interface LoadRun {
  stop(reason: FinalTotals["reason"]): void;
  totals(): Totals;
  finished: Promise<FinalTotals>;
}

export function runLoad(o: LoadgenOptions, report: (t: Totals) => void): LoadRun {
  const url = new URL(o.url);
  const isHttps = url.protocol === "https:";
  const agent = isHttps
    ? new HttpsAgent({ keepAlive: true, maxSockets: o.concurrency })
    : new HttpAgent({ keepAlive: true, maxSockets: o.concurrency });
  const send = isHttps ? httpsRequest : httpRequest;
  const stats = new LoadStats();
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const inFlight = new Set<ClientRequest>();
  let issued = 0;
  let stopping = false;
  let reason: FinalTotals["reason"] | undefined;
  let abandon = false;

  const once = (): Promise<Outcome | undefined> =>
    new Promise((resolve) => {
      let settled = false;
      let gotResponse = false;
      const done = (out: Outcome | undefined) => {
        if (settled) return;
        settled = true;
        inFlight.delete(req);
        resolve(abandon ? undefined : out);
      };
      const req = send(
        url,
        {
          method: o.method,
          agent,
          headers: o.method === "POST" ? { "content-type": "application/json", "content-length": Buffer.byteLength(o.body) } : {},
        },
        (res: IncomingMessage) => {
          gotResponse = true;
          const chunks: Buffer[] = [];
          let size = 0;
          res.on("data", (c: Buffer) => {
            if (size < MAX_BODY_BYTES) chunks.push(c);
            size += c.length;
          });
          res.on("end", () => {
            const body = size <= MAX_BODY_BYTES ? Buffer.concat(chunks).toString("utf8") : "";
            const status = res.statusCode ?? 0;
            const hello = readHelloBody(body);
            const ok = status >= 200 && status <= 299;
            done({ kind: "response", status, ...hello, detail: ok ? undefined : body.slice(0, 100).trim() });
          });
          res.on("error", (e) => done({ kind: "error", message: describe(e) }));
          res.on("close", () => {
            if (!res.complete) done({ kind: "error", message: "connection closed in the middle of the response" });
          });
        },
      );
      req.on("close", () => {
        if (!gotResponse) done({ kind: "error", message: "connection closed before a response" });
      });
      inFlight.add(req);
      req.setTimeout(o.timeoutMs, () => req.destroy(new Error(`timeout after ${o.timeoutMs}ms`)));
      req.on("error", (e) => done({ kind: "error", message: describe(e) }));
      req.end(o.method === "POST" ? o.body : undefined);
    });

  const worker = async (): Promise<void> => {
    while (!stopping) {
      if (issued >= o.maxRequests) {
        stop("max-requests");
        return;
      }
      issued += 1;
      const floor = stats.counterFloor();
      const t0 = performance.now();
      const out = await once();
      if (out === undefined) return; // abandoned by stop()
      stats.record(out, performance.now() - t0, floor, elapsed());
    }
  };

  let resolveFinished!: (f: FinalTotals) => void;
  const finished = new Promise<FinalTotals>((r) => (resolveFinished = r));
  const durationTimer = setTimeout(() => stop("duration"), o.durationMs);
  const reportTimer = setInterval(() => report(stats.totals(elapsed())), o.reportEveryMs);
  let graceTimer: NodeJS.Timeout | undefined;

  function stop(why: FinalTotals["reason"]): void {
    if (stopping) return;
    stopping = true;
    reason = why;
    clearTimeout(durationTimer);
    graceTimer = setTimeout(() => {
      abandon = true;
      for (const r of inFlight) r.destroy();
    }, STOP_GRACE_MS);
  }

  const workers = Array.from({ length: o.concurrency }, () => worker());
  void Promise.all(workers).then(() => {
    clearInterval(reportTimer);
    if (graceTimer) clearTimeout(graceTimer);
    agent.destroy();
    resolveFinished({ done: true, ...stats.totals(elapsed()), reason: reason ?? "duration", errors: stats.firstErrors() });
  });

  return { stop, totals: () => stats.totals(elapsed()), finished };
}

function describe(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as NodeJS.ErrnoException).code;
    return code && !e.message.includes(code) ? `${code} ${e.message}` : e.message;
  }
  return String(e);
}

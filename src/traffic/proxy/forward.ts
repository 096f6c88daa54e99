// Forwarding one client request to an instance, with retries.
//
// Retry rules (at most MAX_ATTEMPTS attempts, each on a target not tried yet):
//   - could not connect (refused, unreachable, connect timeout)    → retry, any method;
//                                                                     the target is marked unhealthy
//   - a reused keep-alive socket failed before any response byte   → retry, any method (the instance
//                                                                     closed an idle socket; it most
//                                                                     likely never saw the request)
//   - reached the instance, then no response (reset, crash)        → retry only idempotent methods
//   - the response has started                                     → never (the client sees the cut)
// Bodies up to MAX_BUFFERED_BODY are buffered so they can be replayed; larger
// ones are streamed through. A body over maxBodyBytes is refused with 413: at
// once when its content-length says so, else as soon as that many bytes came
// (when the instance has already answered, the exchange is cut instead). A streamed body is only sent once the connection
// is up, so a connect failure can still be retried; after the first byte of
// it has gone out, it never is.
//
// Counting: `requests` and `errors5xx` go to the target whose response (or whose
// failure, as a 502/504) the client received; `connectFailures` to every failed
// attempt; the request's latency (arrival → end of the response, or of the
// 502/504) to the histogram of the release `requests` went to. A 503 for want
// of any target and the maintenance page count nowhere. Preview requests count
// in the preview lane.

import http, { type IncomingMessage, type ServerResponse } from "node:http";
import { downstreamHeaderList, planDownstreamHeaders, upstreamHeaderList } from "./headers.js";
import { maintenanceResponse } from "./pages.js";
import { DrainDeadline, abortAgent, type Lane, type TargetPool, type Upstream } from "./targets.js";

export const MAX_ATTEMPTS = 3;
export const MAX_BUFFERED_BODY = 1024 * 1024;
/** Default request body limit: generous for forms and uploads, small enough to bound a flood. */
export const DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024;
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"]);
/** Methods Node's client sends without a body by default (others get a length or chunked). */
const BODYLESS_METHODS = new Set(["GET", "HEAD", "DELETE", "OPTIONS", "TRACE", "CONNECT"]);

export interface ForwardOptions {
  pool: TargetPool;
  log: (line: string) => void;
  connectTimeoutMs: number;
  /** no byte from the instance for this long → 504 (not retried: the instance may still be working) */
  upstreamTimeoutMs: number;
  isClosing: () => boolean;
  /** which listener this forwarder serves; default production */
  lane?: Lane;
  /** x-kiln-instance / x-kiln-release on responses (opt-in) */
  instanceHeaders: boolean;
  /** larger request bodies are refused with 413 */
  maxBodyBytes: number;
  /** the scheme clients used on this listener: X-Forwarded-Proto */
  proto: "http" | "https";
  /** requests being forwarded right now (shared by the proxy's listeners, for a graceful close) */
  active: { count: number };
}

type Body =
  | { kind: "none" }
  | { kind: "buffered"; data: Buffer }
  /** too big to buffer: `prefix` was read already, the rest is still in the request stream */
  | { kind: "stream"; prefix: Buffer[] }
  /** over maxBodyBytes: answered 413 without an instance */
  | { kind: "too-large" };

type Why = "drain-timeout" | "connect-timeout" | "upstream-timeout" | "too-large";

/** Marks an attempt the proxy itself aborted, so the failure is classified by cause, not by errno. */
class AttemptAbort extends Error {
  constructor(readonly why: Why) {
    super(why);
  }
}

type Failure = "connect" | "stale-socket" | "reached" | "timeout" | "too-large";

function classify(err: Error, connected: boolean, reusedSocket: boolean): Failure {
  if (err instanceof DrainDeadline) return "reached"; // the instance had the request
  if (err instanceof AttemptAbort) {
    if (err.why === "connect-timeout") return "connect";
    if (err.why === "upstream-timeout") return "timeout";
    if (err.why === "too-large") return "too-large";
    return "reached"; // drain deadline: the instance had the request
  }
  if (!connected) return "connect";
  if (reusedSocket) return "stale-socket";
  return "reached";
}

function h2EndedWithHeaders(req: IncomingMessage): boolean {
  return (req as unknown as { stream?: { endAfterHeaders?: boolean } }).stream?.endAfterHeaders === true;
}

const NO_BODY: Body = { kind: "none" };
const NO_BODY_HEADERS = { kind: "none" } as const;
const STREAM_BODY = { kind: "stream" } as const;
const TOO_LARGE: Body = { kind: "too-large" };

function readBody(req: IncomingMessage, maxBodyBytes: number): Promise<Body> | Body {
  const cl = req.headers["content-length"];
  // An HTTP/2 body may come without either header: the stream says whether one follows.
  const chunked =
    req.headers["transfer-encoding"] !== undefined || (req.httpVersionMajor === 2 && cl === undefined && !h2EndedWithHeaders(req));
  if (!chunked && (cl === undefined || cl === "0")) return NO_BODY;
  if (!chunked && cl !== undefined && Number(cl) > maxBodyBytes) return TOO_LARGE;
  if (!chunked && Number(cl) > MAX_BUFFERED_BODY) return { kind: "stream", prefix: [] };
  const bufferLimit = Math.min(MAX_BUFFERED_BODY, maxBodyBytes);
  return new Promise<Body>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
    };
    const onData = (c: Buffer) => {
      chunks.push(c);
      size += c.length;
      if (size > bufferLimit) {
        cleanup();
        req.pause();
        resolve(size > maxBodyBytes ? TOO_LARGE : { kind: "stream", prefix: chunks });
      }
    };
    const onEnd = () => {
      cleanup();
      resolve({ kind: "buffered", data: Buffer.concat(chunks, size) });
    };
    const onError = (e: Error) => {
      cleanup();
      reject(e);
    };
    const onClose = () => {
      cleanup();
      reject(new Error("client closed the request before sending its body"));
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  });
}

/** What the instance-labelling headers of the proxy's own 502/504 say (only with instanceHeaders). */
function labels(on: boolean, u: Upstream): Record<string, string> {
  return on ? { "x-kiln-instance": u.id, "x-kiln-release": u.release } : {};
}

/**
 * Date.now() when the instance last sent a byte (or took one of a streamed body, or we resumed
 * reading it), as the upstream-timeout sweep reads it. Kept on what the attempt occupies: the
 * pooled socket (or the request, while it waits for one), so no per-request entry sits in a
 * long-lived collection (see TargetPool.beginPooled).
 */
const LAST_ACTIVE = Symbol("kiln.lastActive");
interface Tracked {
  [LAST_ACTIVE]?: number;
}

/** An attempt on a fresh connection (outside the target's agent): the sweep finds it in a set. */
interface Flight extends Tracked {
  readonly up: http.ClientRequest;
}

/**
 * Per-request state lives in two small objects, one per client request (Exchange) and one per
 * attempt (Attempt), reached from the emitters they listen on through these symbols; the
 * listeners are module-level functions (`this` is the emitter). Measured with V8's sampling
 * heap profiler under wrk: the closures and their contexts made per request and per attempt
 * (about a dozen) were ~2 KB of the ~22 KB a request allocated.
 */
const EXCHANGE = Symbol("kiln.exchange");
const ATTEMPT = Symbol("kiln.attempt");

/** What one forwarder shares with every request it handles (made once per forwarder). */
interface Forwarder {
  readonly o: ForwardOptions;
  readonly pool: TargetPool;
  readonly lane: Lane;
  readonly preview: boolean;
  /** attempts on fresh connections, for the upstream-timeout sweep */
  readonly fresh: Set<Flight>;
  reply(req: IncomingMessage, res: ServerResponse, status: number, text: string, extra?: Record<string, string>, close?: boolean): void;
  /** start the upstream-timeout sweep if it is not running */
  sweeping(): void;
  attempt(x: Exchange, n: number, tried: Set<Upstream> | undefined, body: Body, last?: { u: Upstream; failure: Failure }): void;
}

/** One client request, over all its attempts. */
class Exchange {
  clientGone = false;
  /** the attempt's request to the instance, while there is one */
  current: http.ClientRequest | undefined = undefined;
  /** the target whose `requests` counted this request, once one did */
  counted: Upstream | undefined = undefined;
  readonly started = performance.now();
  constructor(
    readonly f: Forwarder,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly method: string,
    readonly h2: boolean,
  ) {}

  countResponse(u: Upstream, status: number): void {
    this.f.pool.countResponse(u, status, this.f.lane);
    this.counted = u;
  }

  tooLarge(): void {
    this.f.reply(this.req, this.res, 413, `kiln: request body larger than ${this.f.o.maxBodyBytes} bytes\n`, {}, true);
  }
}

/** The client's response closed: finished, or the client went away (then the attempt is cut). */
function onClientClose(this: ServerResponse): void {
  const x = (this as ServerResponse & { [EXCHANGE]: Exchange })[EXCHANGE];
  x.f.o.active.count--;
  if (x.counted !== undefined) x.f.pool.observeLatency(x.counted, performance.now() - x.started, x.f.lane);
  // Written on every request, false when the response finished: V8 then treats the field as
  // mutable from the first request on. Written only on a cut, its first `true` (in the bench,
  // when wrk stops mid-request) made V8 discard the optimized code of everything that reads
  // it (attempt, onUpResponse, Exchange's constructor) and compile it again.
  x.clientGone = !this.writableFinished;
  if (x.clientGone) x.current?.destroy();
}

/** One attempt: a request to one target. */
class Attempt {
  /**
   * Where the sweep reads this attempt's last sign of life: the request until it has a
   * pooled socket, then that socket; a fresh-connection attempt is its own entry in `fresh`.
   */
  live: Tracked;
  flight: Flight | undefined = undefined;
  connected = false;
  responded = false;
  failed = false;
  bodyStarted = false;
  /** the pool no longer counts it in flight */
  done = false;
  connectTimer: NodeJS.Timeout | undefined = undefined;
  /** a fresh connection's completion (pool.begin); pooled attempts end through pool.endPooled */
  endFresh: (() => void) | undefined = undefined;
  constructor(
    readonly x: Exchange,
    readonly up: http.ClientRequest,
    readonly target: Upstream,
    readonly n: number,
    readonly tried: Set<Upstream> | undefined,
    readonly body: Body,
  ) {
    this.live = up as Tracked;
    // Stored once more, so V8 treats these as fields that change (a field written only where
    // it is initialized counts as constant): the first attempt that fails (in the bench, when
    // wrk stops mid-request) or streams a body then does not make V8 discard and recompile
    // the optimized code of everything that reads them (seen with --trace-deopt: attempt,
    // onUpResponse, Attempt's constructor).
    this.failed = false;
    this.bodyStarted = false;
  }

  /** No longer in flight (idempotent). */
  end(): void {
    if (this.flight !== undefined) this.x.f.fresh.delete(this.flight);
    if (this.endFresh !== undefined) return this.endFresh();
    if (this.done) return;
    this.done = true;
    this.x.f.pool.endPooled(this.target);
  }

  startStreaming(): void {
    const body = this.body;
    if (body.kind !== "stream" || this.bodyStarted || this.failed) return;
    this.bodyStarted = true;
    const { up, x } = this;
    const req = x.req;
    const max = x.f.o.maxBodyBytes;
    let sent = 0;
    for (const c of body.prefix) {
      sent += c.length;
      up.write(c);
    }
    req.on("data", (c: Buffer) => {
      sent += c.length;
      this.live[LAST_ACTIVE] = Date.now();
      if (sent > max) {
        req.unpipe(up);
        up.destroy(new AttemptAbort("too-large"));
      }
    });
    req.pipe(up);
  }

  fail(err: Error): void {
    if (this.failed) return;
    this.failed = true;
    clearTimeout(this.connectTimer);
    const { x, target, up } = this;
    const { f, req, res, method } = x;
    if (this.responded) {
      res.destroy();
      this.end();
      return;
    }
    this.end();
    if (x.clientGone) return; // we hung up on the instance ourselves; not its fault
    const failure = classify(err, this.connected, up.reusedSocket);
    if (failure === "too-large") {
      x.countResponse(target, 413);
      return x.tooLarge();
    }
    const { o, pool } = f;
    const reason = (err as NodeJS.ErrnoException).code ?? err.message;
    pool.countFailure(target, f.lane);
    if (failure === "connect") pool.markDown(target, reason);
    if (failure === "timeout") {
      x.countResponse(target, 504);
      o.log(`${method} ${req.url} → ${target.id}: no response in ${o.upstreamTimeoutMs}ms; 504`);
      f.reply(req, res, 504, "kiln: gateway timeout\n", labels(o.instanceHeaders, target));
      return;
    }
    const retriable =
      !this.bodyStarted &&
      this.n + 1 < MAX_ATTEMPTS &&
      (failure === "connect" || failure === "stale-socket" || IDEMPOTENT.has(method));
    o.log(`${method} ${req.url} → ${target.id}: ${failure} (${reason})${retriable ? "; retrying" : "; 502"}`);
    if (retriable) {
      const next = this.tried ?? new Set<Upstream>();
      next.add(target);
      f.attempt(x, this.n + 1, next, this.body, { u: target, failure });
    } else {
      x.countResponse(target, 502);
      f.reply(req, res, 502, "kiln: bad gateway (instance failed)\n", labels(o.instanceHeaders, target));
    }
  }
}

type WithAttempt<T> = T & { [ATTEMPT]: Attempt };

function onUpSocket(this: http.ClientRequest, s: import("node:net").Socket): void {
  const a = (this as WithAttempt<http.ClientRequest>)[ATTEMPT];
  if (a.flight === undefined) a.live = s as Tracked;
  a.live[LAST_ACTIVE] = Date.now();
  if (!s.connecting) {
    a.connected = true;
    a.startStreaming();
    return;
  }
  a.connectTimer = setTimeout(() => this.destroy(new AttemptAbort("connect-timeout")), a.x.f.o.connectTimeoutMs);
  s.once("connect", () => {
    a.connected = true;
    a.live[LAST_ACTIVE] = Date.now(); // the connect timeout covered the wait so far
    clearTimeout(a.connectTimer);
    a.startStreaming();
  });
}

function onUpResponse(this: http.ClientRequest, upRes: IncomingMessage): void {
  const a = (this as WithAttempt<http.ClientRequest>)[ATTEMPT];
  const { x, target } = a;
  const { f, res } = x;
  a.responded = true;
  a.live[LAST_ACTIVE] = Date.now();
  clearTimeout(a.connectTimer);
  const status = upRes.statusCode ?? 502;
  x.countResponse(target, status);
  (upRes as WithAttempt<IncomingMessage>)[ATTEMPT] = a;
  upRes.on("error", ignore); // surfaced through 'close' below
  upRes.on("close", onUpResponseClose);
  if (x.clientGone) {
    this.destroy();
    return;
  }
  const o = f.o;
  try {
    // HTTP/1 clients get the instance's raw lines (no header object is built for them).
    res.writeHead(
      status,
      x.h2
        ? planDownstreamHeaders(upRes.headers, target, { closing: o.isClosing(), instanceHeaders: o.instanceHeaders, http2: true })
        : downstreamHeaderList(upRes.rawHeaders, target, { closing: o.isClosing(), instanceHeaders: o.instanceHeaders }),
    );
  } catch (e) {
    o.log(`bad response headers from ${target.id}: ${(e as Error).message}`);
    this.destroy();
    res.destroy();
    return;
  }
  // The body to the client, with backpressure: what `pipe()` does for this one pair, without
  // the half-dozen listeners pipe() adds and removes again on every response. Cuts are handled
  // apart: a closed client destroys the instance request, a cut instance response destroys
  // the client's. A slow client pausing the instance's response does not count against the
  // instance's upstream timeout.
  upRes.on("data", onUpResponseData);
  upRes.on("end", onUpResponseEnd);
}

function ignore(): void {}

function onUpResponseClose(this: IncomingMessage): void {
  const a = (this as WithAttempt<IncomingMessage>)[ATTEMPT];
  if (!this.complete) a.x.res.destroy(); // cut mid-body: the client must see a cut, not a short 200
  a.end();
}

function onUpResponseData(this: IncomingMessage, chunk: Buffer): void {
  const a = (this as WithAttempt<IncomingMessage>)[ATTEMPT];
  a.live[LAST_ACTIVE] = Date.now();
  const to = a.x.res;
  if (to.destroyed) return;
  // The whole rest of the body is in hand (the usual small response comes in one read): the
  // client's response ends with it, one call where write() then end() would cork, schedule
  // an uncork and write again.
  if (this.complete && this.readableLength === 0) {
    to.end(chunk);
    return;
  }
  if (!to.write(chunk)) {
    this.pause();
    to.once("drain", () => {
      a.live[LAST_ACTIVE] = Date.now();
      this.resume();
    });
  }
}

function onUpResponseEnd(this: IncomingMessage): void {
  const to = (this as WithAttempt<IncomingMessage>)[ATTEMPT].x.res;
  if (!to.destroyed && !to.writableEnded) to.end();
}

function onUpError(this: http.ClientRequest, err: Error): void {
  (this as WithAttempt<http.ClientRequest>)[ATTEMPT].fail(err);
}

function onUpClose(this: http.ClientRequest): void {
  const a = (this as WithAttempt<http.ClientRequest>)[ATTEMPT];
  clearTimeout(a.connectTimer);
  if (!a.responded) a.fail(new Error("instance closed the connection without a response"));
}

export function clientIp(req: IncomingMessage): string {
  const a = req.socket.remoteAddress ?? "";
  return a.startsWith("::ffff:") ? a.slice(7) : a;
}

export function createForwarder(o: ForwardOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const { pool } = o;
  const lane: Lane = o.lane ?? "production";
  const preview = lane === "preview";

  const reply = (req: IncomingMessage, res: ServerResponse, status: number, text: string, extra: Record<string, string> = {}, close = false) => {
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    const headers: Record<string, string> = {
      "content-type": "text/plain; charset=utf-8",
      "content-length": String(Buffer.byteLength(text)),
      ...extra,
    };
    if ((close || o.isClosing()) && req.httpVersionMajor !== 2) headers["connection"] = "close";
    res.writeHead(status, headers);
    res.end(text);
  };

  // Upstream timeout ("no byte from the instance for upstreamTimeoutMs"): one sweep over the
  // targets' busy sockets and queued requests (and the rare fresh-connection attempts),
  // running only while something is in flight, instead of a socket timer on every pooled
  // socket (Node clears and re-arms an agent's socket timeout on every request, and
  // refreshes it on every read and write). Late by at most sweepEveryMs.
  const fresh = new Set<Flight>();
  const sweepEveryMs = Math.max(10, Math.min(1000, Math.floor(o.upstreamTimeoutMs / 4)));
  let sweeper: NodeJS.Timeout | undefined;
  const timeout = () => new AttemptAbort("upstream-timeout");
  const sweep = () => {
    const now = Date.now();
    const stale = (t: Tracked) => now - (t[LAST_ACTIVE] ?? now) >= o.upstreamTimeoutMs;
    let busy = fresh.size;
    for (const u of pool.allUpstreams()) {
      busy += u.inflight;
      if (u.inflight === 0) continue;
      const { sockets, requests } = u.agent;
      for (const name in sockets) for (const s of [...(sockets[name] ?? [])]) if (stale(s as Tracked)) s.destroy(timeout());
      for (const name in requests) for (const r of [...(requests[name] ?? [])]) if (stale(r as Tracked)) r.destroy(timeout());
    }
    for (const f of fresh) {
      if (!stale(f)) continue;
      fresh.delete(f);
      f.up.destroy(timeout());
    }
    if (busy === 0) {
      clearInterval(sweeper);
      sweeper = undefined;
    }
  };
  const sweeping = () => {
    if (sweeper !== undefined || o.upstreamTimeoutMs <= 0) return; // 0: no upstream timeout (as a socket timeout of 0 was)
    sweeper = setInterval(sweep, sweepEveryMs);
    sweeper.unref();
  };

  const attempt = (x: Exchange, n: number, tried: Set<Upstream> | undefined, body: Body, last?: { u: Upstream; failure: Failure }) => {
    if (x.clientGone) return;
    const { req, res, method } = x;
    if (body.kind === "too-large") return x.tooLarge();
    let u = preview ? pool.pickPreview(tried) : pool.pick(tried);
    // An instance that just closed an idle socket is fine: if it is the only
    // choice, try it once more on a fresh connection.
    const freshConnection = u === undefined && last?.failure === "stale-socket" && pool.isUsable(last.u, lane);
    if (freshConnection) u = last?.u;
    if (u === undefined) {
      if (last === undefined) {
        const release = pool.previewRelease;
        const why = !preview
          ? "no healthy instance available"
          : release === undefined
            ? "no preview release is set"
            : `no healthy active instance of preview release ${release}`;
        reply(req, res, 503, `kiln: ${why}\n`, { "retry-after": "1" });
      } else {
        x.countResponse(last.u, 502);
        reply(req, res, 502, "kiln: bad gateway (no instance answered)\n", labels(o.instanceHeaders, last.u));
      }
      return;
    }
    const target = u;

    const options: http.RequestOptions & { servername: string } = {
      host: target.host,
      port: target.port,
      method,
      path: req.url,
      headers: upstreamHeaderList(
        req.headers,
        {
          clientIp: clientIp(req),
          proto: o.proto,
          body: body.kind === "buffered" ? { kind: "buffered", length: body.data.length } : body.kind === "stream" ? STREAM_BODY : NO_BODY_HEADERS,
        },
        target.address,
        body.kind === "none" && !BODYLESS_METHODS.has(method),
      ),
      agent: freshConnection ? false : target.agent,
      // No TLS to instances: an empty server name spares the agent working one out (and testing
      // whether the host is an IP address) on every request.
      servername: "",
    };
    const up = http.request(options);
    x.current = up;
    const a = new Attempt(x, up, target, n, tried, body);
    (up as WithAttempt<http.ClientRequest>)[ATTEMPT] = a;
    if (freshConnection) {
      a.flight = { up };
      fresh.add(a.flight);
      a.live = a.flight;
      // A fresh connection is not on the target's agent, which is what the drain deadline cuts.
      a.endFresh = pool.begin(target, () => up.destroy(new AttemptAbort("drain-timeout")));
    } else pool.beginPooled(target);
    a.live[LAST_ACTIVE] = Date.now();
    sweeping();
    up.on("socket", onUpSocket);
    up.on("response", onUpResponse);
    up.on("error", onUpError);
    up.on("close", onUpClose);

    // A streamed body waits for the connection (startStreaming); the others go now.
    if (body.kind !== "stream") up.end(body.kind === "buffered" ? body.data : undefined);
  };

  const f: Forwarder = { o, pool, lane, preview, fresh, reply, sweeping, attempt };

  return (req, res) => {
    if (!preview) {
      const m = pool.maintenance;
      if (m !== undefined) {
        const page = maintenanceResponse(m);
        if (o.isClosing() && req.httpVersionMajor !== 2) page.headers["connection"] = "close";
        res.writeHead(page.status, page.headers);
        res.end(req.method === "HEAD" ? undefined : page.body);
        return;
      }
    }
    const x = new Exchange(f, req, res, req.method ?? "GET", req.httpVersionMajor === 2);
    o.active.count++;
    (res as ServerResponse & { [EXCHANGE]: Exchange })[EXCHANGE] = x;
    res.on("close", onClientClose);

    const body = readBody(req, o.maxBodyBytes);
    if (body instanceof Promise) {
      body.then(
        (b) => attempt(x, 0, undefined, b),
        () => res.destroy(),
      );
    } else attempt(x, 0, undefined, body);
  };
}

// Header rewriting for the reverse proxy. Pure functions over header objects.
//
// The proxy is the edge: whatever a client claims about where it came from
// (X-Forwarded-For/Proto/Host, Forwarded) is dropped and replaced by what the
// proxy itself saw, so an app can trust these headers for logging, rate
// limits and redirects. A proxy in front of kiln would have to be trusted
// explicitly; that is not supported (kiln is the edge).

import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";

/** RFC 9110 §7.6.1 connection-specific headers, plus the non-standard ones seen in the wild. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "http2-settings",
]);

/** Set by the edge only: a client's own values are dropped. */
const EDGE_SET = new Set(["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded", "expect"]);

/** Headers named in `Connection: a, b` are hop-by-hop too; undefined when none is (the common case). */
function connectionListed(headers: IncomingHttpHeaders): Set<string> | undefined {
  const v = headers.connection;
  if (typeof v !== "string") return undefined;
  const lower = v.toLowerCase();
  if (lower === "keep-alive" || lower === "close" || lower === "upgrade") return undefined;
  const out = new Set<string>();
  for (const name of lower.split(",")) {
    const n = name.trim();
    if (n) out.add(n);
  }
  return out;
}

export interface UpstreamHeaderInput {
  /** the client's address as seen by the proxy */
  clientIp: string;
  /** "https" when the client's connection was TLS-terminated by the proxy */
  proto: "http" | "https";
  /** how the body will be sent: a buffered body gets an exact content-length */
  body: { kind: "none" } | { kind: "buffered"; length: number } | { kind: "stream" };
  /** an Upgrade request (e.g. "websocket"): Connection/Upgrade are kept for the instance */
  upgrade?: string;
}

/**
 * Headers for the request to an instance.
 *
 *   {host: "app", connection: "keep-alive, x-a", "x-a": "1", te: "trailers"} from 1.2.3.4 over http
 *     → {host: "app", x-forwarded-for: "1.2.3.4", x-forwarded-proto: "http", x-forwarded-host: "app"}
 *   a client-sent RFC 7239 Forwarded header → dropped (the edge speaks X-Forwarded-* only)
 *   {"x-forwarded-for": "9.9.9.9", "x-forwarded-proto": "https"} from 1.2.3.4 over http
 *     → x-forwarded-for "1.2.3.4", x-forwarded-proto "http" (client claims are overwritten)
 *   HTTP/2 {":authority": "app", ":path": "/x", ":method": "GET"} → host "app", no pseudo-headers
 *   buffered body of 12 bytes sent chunked by the client → content-length: 12, no transfer-encoding
 *   upgrade "websocket" → connection: "upgrade", upgrade: "websocket" kept
 *
 * `expect` is dropped: the proxy has already answered 100-continue itself and
 * sends the body right away.
 */
export function planUpstreamHeaders(headers: IncomingHttpHeaders, input: UpstreamHeaderInput): OutgoingHttpHeaders {
  // The client's header object is rewritten in place (Node parsed it for this request
  // only), saving a copy per request on the hot path. Idempotent, so a retry may call it again.
  const host = headers.host ?? (headers[":authority"] as string | undefined);
  const listed = connectionListed(headers);
  const out = headers as OutgoingHttpHeaders;
  for (const k in out) {
    if (HOP_BY_HOP.has(k) || EDGE_SET.has(k) || k.charCodeAt(0) === 58 /* ":" */ || (listed !== undefined && listed.has(k))) delete out[k];
  }
  if (host !== undefined) out["host"] = host;
  out["x-forwarded-for"] = input.clientIp;
  out["x-forwarded-proto"] = input.proto;
  if (host !== undefined) out["x-forwarded-host"] = host;
  if (input.upgrade !== undefined) {
    out["connection"] = "upgrade";
    out["upgrade"] = input.upgrade;
  }
  if (input.body.kind === "buffered") out["content-length"] = String(input.body.length);
  // stream: a client's content-length is kept; a chunked client body is re-chunked by Node.
  return out;
}

/**
 * Planned request headers as the flat [name, value, name, value, …] list `http.request` takes
 * as it is: an object costs a checked setHeader, a lower-casing and a small array per header,
 * then a second pass to write them. Node writes a list as given, so what it would have added
 * to an object is added here: Host (the instance's address, `fallbackHost`) when the client
 * sent none (HTTP/1.0), and `content-length: 0` when `zeroLength` (no body, and a method Node
 * would otherwise send chunked: POST, PUT, PATCH…) and the client sent no length.
 *
 *   {host: "app", accept: "text/html"}, "10.0.0.2:8080"      → ["host", "app", "accept", "text/html"]
 *   {accept: "text/html"}, "10.0.0.2:8080"                   → ["accept", "text/html", "host", "10.0.0.2:8080"]
 *   {host: "a", "x-a": ["1", "2"], "content-length": 5}, …  → ["host", "a", "x-a", "1", "x-a", "2", "content-length", "5"]
 *   {host: "a", "x-b": undefined}, …                        → ["host", "a"]
 *   {host: "a"}, …, zeroLength                              → ["host", "a", "content-length", "0"]
 *   {host: "a", "content-length": "0"}, …, zeroLength       → ["host", "a", "content-length", "0"]
 */
export function headerList(headers: OutgoingHttpHeaders, fallbackHost: string, zeroLength = false): string[] {
  const out: string[] = [];
  for (const k in headers) {
    const v = headers[k];
    if (v === undefined) continue;
    if (typeof v === "string") out.push(k, v);
    else if (typeof v === "number") out.push(k, String(v));
    else for (const x of v) out.push(k, x);
  }
  if (headers["host"] === undefined) out.push("host", fallbackHost);
  if (zeroLength && headers["content-length"] === undefined) out.push("content-length", "0");
  return out;
}

/**
 * The request headers for an instance, as the flat list `http.request` takes: what
 * headerList(planUpstreamHeaders(headers, input), fallbackHost, zeroLength) gives, in the same
 * order, made in one pass that leaves the client's header object as it is (deleting keys from
 * it, as planUpstreamHeaders does, turns it into a slower dictionary-mode object, and the list
 * was a second pass). This is the forwarder's per-request path; the examples are those of the
 * two functions it stands for:
 *
 *   {host: "app", connection: "keep-alive, x-a", "x-a": "1", accept: "text/html"} from 1.2.3.4 over http
 *     → ["host", "app", "accept", "text/html", "x-forwarded-for", "1.2.3.4", "x-forwarded-proto", "http", "x-forwarded-host", "app"]
 *   {host: "a", "x-forwarded-for": "9.9.9.9", forwarded: "for=9"} → the client's claims dropped, the edge's appended
 *   HTTP/2 {":authority": "app", ":path": "/x", accept: "text/html"} → ["accept", "text/html", "host", "app", "x-forwarded-for", …]
 *   {host: "a", "transfer-encoding": "chunked"}, buffered body of 12 → […, "content-length", "12"], no transfer-encoding
 *   {host: "a", "x-a": ["1", "2"]} → ["host", "a", "x-a", "1", "x-a", "2", …]
 *   {accept: "text/html"} (HTTP/1.0, no Host), "10.0.0.2:8080" → […, "host", "10.0.0.2:8080"]
 *   {host: "a"}, zeroLength → […, "content-length", "0"]
 */
export function upstreamHeaderList(headers: IncomingHttpHeaders, input: UpstreamHeaderInput, fallbackHost: string, zeroLength = false): string[] {
  const hostHeader = headers.host;
  const host = hostHeader ?? (headers[":authority"] as string | undefined);
  const listed = connectionListed(headers);
  const buffered = input.body.kind === "buffered" ? String(input.body.length) : undefined;
  let lengthSent = false;
  const out: string[] = [];
  for (const k in headers) {
    if (HOP_BY_HOP.has(k) || EDGE_SET.has(k) || k.charCodeAt(0) === 58 /* ":" */ || (listed !== undefined && listed.has(k))) continue;
    const v = headers[k];
    if (v === undefined) continue;
    if (k === "content-length") {
      lengthSent = true;
      if (buffered !== undefined) {
        out.push(k, buffered);
        continue;
      }
    }
    if (typeof v === "string") out.push(k, v);
    else for (const x of v) out.push(k, x);
  }
  if (hostHeader === undefined && host !== undefined) out.push("host", host);
  out.push("x-forwarded-for", input.clientIp, "x-forwarded-proto", input.proto);
  if (host !== undefined) out.push("x-forwarded-host", host);
  if (input.upgrade !== undefined) out.push("connection", "upgrade", "upgrade", input.upgrade);
  if (buffered !== undefined && !lengthSent) {
    out.push("content-length", buffered);
    lengthSent = true;
  }
  if (host === undefined) out.push("host", fallbackHost);
  if (zeroLength && !lengthSent) out.push("content-length", "0");
  return out;
}

export interface DownstreamOptions {
  /** the proxy is closing: tell an HTTP/1 client not to reuse the connection */
  closing: boolean;
  /** add x-kiln-instance / x-kiln-release (opt-in: they reveal instance ids) */
  instanceHeaders: boolean;
  /** HTTP/2 responses carry no connection-specific header at all */
  http2?: boolean;
}

/**
 * Headers for the response to the client: the instance's (modified in place), minus hop-by-hop;
 * with `instanceHeaders`, plus which instance and release answered.
 *
 *   {content-type, connection: "keep-alive", transfer-encoding}       → {content-type}
 *   instanceHeaders, target i-1 of r7                                  → + x-kiln-instance: i-1, x-kiln-release: r7
 *   closing over HTTP/1                                                → + connection: close
 *   closing over HTTP/2                                                → no connection header (forbidden in h2)
 */
export function planDownstreamHeaders(
  headers: IncomingHttpHeaders,
  target: { id: string; release: string },
  opts: DownstreamOptions,
): OutgoingHttpHeaders {
  // The instance's header object is used in place (it is ours: Node parsed it for this
  // response only), saving a copy per response on the hot path.
  const listed = connectionListed(headers);
  const out = headers as OutgoingHttpHeaders;
  for (const k in out) {
    if (HOP_BY_HOP.has(k) || (listed !== undefined && listed.has(k))) delete out[k];
  }
  if (opts.instanceHeaders) {
    out["x-kiln-instance"] = target.id;
    out["x-kiln-release"] = target.release;
  }
  if (opts.closing && !opts.http2) out["connection"] = "close";
  return out;
}

/** Lengths of the HOP_BY_HOP names: a raw header name of another length needs no lower-casing to be kept. */
const HOP_BY_HOP_LENGTHS = new Set([...HOP_BY_HOP].map((h) => h.length));

/**
 * Response headers for an HTTP/1 client as the flat list `writeHead` takes, straight from the
 * instance's raw header lines (so Node never builds the response's header object): what
 * planDownstreamHeaders keeps, but each line as the instance sent it: its case and order,
 * and a repeated field stays repeated (Node's header object joins some repeats and drops
 * others, e.g. a second Location). Not for HTTP/2 clients (lower-case names only there).
 *
 *   ["Content-Type", "text/plain", "Connection", "keep-alive", "Keep-Alive", "timeout=5"] → ["Content-Type", "text/plain"]
 *   ["Connection", "x-a", "X-A", "1", "Date", "d"]                                         → ["Date", "d"]
 *   ["Set-Cookie", "a=1", "Set-Cookie", "b=2", "Transfer-Encoding", "chunked"]             → ["Set-Cookie", "a=1", "Set-Cookie", "b=2"]
 *   instanceHeaders, target i-1 of r7                                                       → + "x-kiln-instance", "i-1", "x-kiln-release", "r7"
 *   closing                                                                                  → + "connection", "close"
 */
export function downstreamHeaderList(raw: readonly string[], target: { id: string; release: string }, opts: { closing: boolean; instanceHeaders: boolean }): string[] {
  let listed: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!;
    if (k.length === 10 && k.toLowerCase() === "connection") {
      const named = connectionListed({ connection: raw[i + 1]! });
      if (named !== undefined) for (const n of named) (listed ??= new Set()).add(n);
    }
  }
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!;
    if (HOP_BY_HOP_LENGTHS.has(k.length) || listed !== undefined) {
      const lower = k.toLowerCase();
      if (HOP_BY_HOP.has(lower) || (listed !== undefined && listed.has(lower))) continue;
    }
    out.push(k, raw[i + 1]!);
  }
  if (opts.instanceHeaders) out.push("x-kiln-instance", target.id, "x-kiln-release", target.release);
  if (opts.closing) out.push("connection", "close");
  return out;
}

/** Headers of a 101 Switching Protocols answer relayed to the client: the instance's, upgrade kept. */
export function planUpgradeResponseHeaders(headers: IncomingHttpHeaders, target: { id: string; release: string }, instanceHeaders: boolean): OutgoingHttpHeaders {
  const upgrade = headers.upgrade; // read first: planDownstreamHeaders drops it in place
  const out = planDownstreamHeaders(headers, target, { closing: false, instanceHeaders });
  out["connection"] = "upgrade";
  if (upgrade !== undefined) out["upgrade"] = upgrade;
  return out;
}

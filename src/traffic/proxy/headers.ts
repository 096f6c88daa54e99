// Header rewriting for the reverse proxy. Pure functions over header objects.

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
]);

/** Headers named in `Connection: a, b` are hop-by-hop too. */
function connectionListed(headers: IncomingHttpHeaders): Set<string> {
  const v = headers.connection;
  const out = new Set<string>();
  if (typeof v !== "string") return out;
  for (const name of v.split(",")) {
    const n = name.trim().toLowerCase();
    if (n) out.add(n);
  }
  return out;
}

function withoutHopByHop(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const listed = connectionListed(headers);
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined || HOP_BY_HOP.has(k) || listed.has(k)) continue;
    out[k] = v;
  }
  return out;
}

export interface UpstreamHeaderInput {
  /** the client's address as seen by the proxy */
  clientIp: string;
  /** how the body will be sent: a buffered body gets an exact content-length */
  body: { kind: "none" } | { kind: "buffered"; length: number } | { kind: "stream" };
}

/**
 * Headers for the request to an instance.
 *
 *   {host: "app", connection: "keep-alive, x-a", "x-a": "1", te: "trailers"}
 *     → {host: "app", x-forwarded-for: "1.2.3.4", x-forwarded-proto: "http", x-forwarded-host: "app"}
 *   {"x-forwarded-for": "9.9.9.9"} from client 1.2.3.4 → "9.9.9.9, 1.2.3.4"
 *   buffered body of 12 bytes sent chunked by the client → content-length: 12, no transfer-encoding
 *
 * `expect` is dropped: the proxy has already answered 100-continue itself and
 * sends the body right away.
 */
export function planUpstreamHeaders(headers: IncomingHttpHeaders, input: UpstreamHeaderInput): OutgoingHttpHeaders {
  const out = withoutHopByHop(headers);
  delete out["expect"];
  const prior = headers["x-forwarded-for"];
  out["x-forwarded-for"] = prior ? `${prior}, ${input.clientIp}` : input.clientIp;
  // kiln's proxy is the edge and speaks plain HTTP; a TLS terminator in front
  // of it sets these itself, and the first value is the one apps read.
  out["x-forwarded-proto"] = headers["x-forwarded-proto"] ?? "http";
  if (headers.host !== undefined) out["x-forwarded-host"] = headers["x-forwarded-host"] ?? headers.host;
  switch (input.body.kind) {
    case "buffered":
      out["content-length"] = String(input.body.length);
      break;
    case "stream":
      // Keep a client's content-length; a chunked client body is re-chunked by Node.
      break;
    case "none":
      break;
  }
  return out;
}

/**
 * Headers for the response to the client: the instance's, minus hop-by-hop,
 * plus which instance and release answered (handy for demos and tests).
 */
export function planDownstreamHeaders(
  headers: IncomingHttpHeaders,
  target: { id: string; release: string },
  opts: { closing: boolean },
): OutgoingHttpHeaders {
  const out = withoutHopByHop(headers);
  out["x-kiln-instance"] = target.id;
  out["x-kiln-release"] = target.release;
  if (opts.closing) out["connection"] = "close";
  return out;
}

// Upgrade passthrough (WebSocket, and any other `Upgrade:` protocol): the
// proxy picks a target like for any request, relays the handshake, and once
// the instance answers 101 it relays bytes both ways until either side
// closes.
//
// A tunnel counts as one request in flight on its target for its whole life,
// so draining works as for slow requests: a draining or removed target keeps
// its tunnels (no new ones go there) until the table's drain deadline; then
// they are closed cleanly:
//   - WebSocket: the proxy follows frame boundaries in both directions and,
//     at the first boundary, sends a Close frame 1001 "going away" to the
//     client and one to the instance, then ends both TCP connections (FIN).
//     A client sees a normal close with code 1001 and reconnects (to another
//     instance); no message is cut in half.
//   - other protocols: both connections are ended (FIN), not reset.
// Either way a connection that does not finish within CLOSE_GRACE_MS after
// that is destroyed.
//
// Retries: only a failed connect is retried (on another target); once the
// handshake reached an instance it is not replayed. Counting: the handshake
// counts as one request (status 101, or what the instance answered instead),
// its latency is the time to that answer, not the tunnel's lifetime.

import http, { type IncomingMessage, type OutgoingHttpHeaders } from "node:http";
import type net from "node:net";
import type { Duplex } from "node:stream";
import { clientIp, MAX_ATTEMPTS } from "./forward.js";
import { planDownstreamHeaders, planUpgradeResponseHeaders, planUpstreamHeaders } from "./headers.js";
import { maintenanceResponse } from "./pages.js";
import type { Lane, TargetPool, Upstream } from "./targets.js";
import { closeFrame, FrameTracker } from "./ws-frames.js";

/** After a clean close was started, how long the two connections get to finish. */
export const CLOSE_GRACE_MS = 2000;

export interface Tunnel {
  /** Close cleanly (Close frames at frame boundaries for WebSocket, FIN otherwise). Idempotent. */
  close(why: string): void;
}

export interface UpgradeOptions {
  pool: TargetPool;
  log: (line: string) => void;
  lane: Lane;
  instanceHeaders: boolean;
  proto: "http" | "https";
  connectTimeoutMs: number;
  /** no byte either way for this long → the tunnel is closed; 0 = never */
  tunnelIdleTimeoutMs: number;
  isClosing: () => boolean;
  /** every live tunnel, so the proxy can close them when it shuts down */
  tunnels: Set<Tunnel>;
}

const NO_BODY = { kind: "none" } as const;

function head(status: number, message: string, headers: OutgoingHttpHeaders): string {
  let s = `HTTP/1.1 ${status} ${message}\r\n`;
  for (const k in headers) {
    const v = headers[k];
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) s += `${k}: ${x}\r\n`;
    else s += `${k}: ${v}\r\n`;
  }
  return `${s}\r\n`;
}

function answer(socket: Duplex, status: number, message: string, headers: Record<string, string>, body: string): void {
  if (!socket.writable) return void socket.destroy();
  socket.end(head(status, message, { ...headers, connection: "close" }) + body);
}

function plain(socket: Duplex, status: number, message: string, text: string, extra: Record<string, string> = {}): void {
  answer(socket, status, message, { "content-type": "text/plain; charset=utf-8", "content-length": String(Buffer.byteLength(text)), ...extra }, text);
}

export function createUpgrader(o: UpgradeOptions): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  const { pool, log, lane } = o;
  const preview = lane === "preview";

  return (req, client, early) => {
    client.on("error", () => undefined); // a client reset surfaces as 'close'
    if (!preview && pool.maintenance !== undefined) {
      const page = maintenanceResponse(pool.maintenance);
      return answer(client, page.status, "Service Unavailable", page.headers, page.body);
    }
    if (o.isClosing()) return plain(client, 503, "Service Unavailable", "kiln: proxy shutting down\n", { "retry-after": "1" });
    const started = performance.now();
    const protocol = String(req.headers.upgrade ?? "");
    const websocket = protocol.toLowerCase() === "websocket";

    const attempt = (n: number, tried: Set<Upstream>) => {
      const u = preview ? pool.pickPreview(tried) : pool.pick(tried);
      if (u === undefined) {
        if (tried.size === 0) return plain(client, 503, "Service Unavailable", "kiln: no healthy instance available\n", { "retry-after": "1" });
        return plain(client, 502, "Bad Gateway", "kiln: bad gateway (no instance answered)\n");
      }
      const up = http.request({
        host: u.host,
        port: u.port,
        method: req.method,
        path: req.url,
        headers: planUpstreamHeaders(req.headers, { clientIp: clientIp(req), proto: o.proto, body: NO_BODY, upgrade: protocol }),
        // a tunnel's socket never goes back to a pool
        agent: false,
      });
      let connected = false;
      let settled = false;
      const connectTimer = setTimeout(() => up.destroy(new Error("connect timeout")), o.connectTimeoutMs);
      up.on("socket", (s) => s.once("connect", () => {
        connected = true;
        clearTimeout(connectTimer);
      }));
      const clientGone = () => up.destroy();
      client.once("close", clientGone);
      const settle = () => {
        settled = true;
        clearTimeout(connectTimer);
        client.off("close", clientGone);
      };

      up.on("upgrade", (upRes, upSocket, upEarly) => {
        settle();
        if (client.destroyed) return void upSocket.destroy();
        pool.countResponse(u, 101, lane);
        pool.observeLatency(u, performance.now() - started, lane);
        client.write(head(101, upRes.statusMessage || "Switching Protocols", planUpgradeResponseHeaders(upRes.headers, u, o.instanceHeaders)));
        relay(u, client as net.Socket, upSocket as net.Socket, websocket, upEarly, early);
      });

      up.on("response", (upRes) => {
        // The instance declined the upgrade: relay its answer and close.
        settle();
        const status = upRes.statusCode ?? 502;
        pool.countResponse(u, status, lane);
        upRes.on("end", () => pool.observeLatency(u, performance.now() - started, lane));
        if (!client.writable) return void up.destroy();
        client.write(head(status, upRes.statusMessage || "", planDownstreamHeaders(upRes.headers, u, { closing: true, instanceHeaders: o.instanceHeaders })));
        upRes.pipe(client);
      });

      up.on("error", (err) => {
        if (settled) return;
        settle();
        if (client.destroyed) return;
        const reason = (err as NodeJS.ErrnoException).code ?? err.message;
        pool.countFailure(u, lane);
        if (!connected) {
          pool.markDown(u, reason);
          if (n + 1 < MAX_ATTEMPTS) {
            log(`upgrade ${req.url} → ${u.id}: connect failed (${reason}); retrying`);
            tried.add(u);
            return attempt(n + 1, tried);
          }
        }
        log(`upgrade ${req.url} → ${u.id}: ${reason}; 502`);
        pool.countResponse(u, 502, lane);
        plain(client, 502, "Bad Gateway", "kiln: bad gateway (instance failed)\n");
      });
      up.end();
    };

    const relay = (u: Upstream, c: net.Socket, s: net.Socket, ws: boolean, upEarly: Buffer, clientEarly: Buffer) => {
      // Frame trackers, one per direction (WebSocket only): the first boundary
      // after a close was asked for is where the Close frame goes.
      const down = ws ? new FrameTracker() : undefined; // instance → client
      const upward = ws ? new FrameTracker() : undefined; // client → instance
      let closing = false;
      let done = false;
      const stopped = { down: false, up: false };
      let graceTimer: NodeJS.Timeout | undefined;

      const finish = () => {
        if (done) return;
        done = true;
        clearTimeout(graceTimer);
        c.destroy();
        s.destroy();
        o.tunnels.delete(tunnel);
        u.tunnels--;
        end();
      };
      const sendClose = (dir: "down" | "up") => {
        if (stopped[dir]) return;
        stopped[dir] = true;
        const to = dir === "down" ? c : s;
        if (ws) to.write(closeFrame(1001, "going away", dir === "up"));
        to.end();
      };

      const tunnel: Tunnel = {
        close: (why) => {
          if (closing || done) return;
          closing = true;
          log(`tunnel to ${u.id} (${u.address}): closing (${why})`);
          // A direction already at a frame boundary is closed at once; the
          // other when its current frame ends (see pipe below).
          if (!down || down.atBoundary || down.broken) sendClose("down");
          if (!upward || upward.atBoundary || upward.broken) sendClose("up");
          graceTimer = setTimeout(finish, CLOSE_GRACE_MS);
        },
      };
      o.tunnels.add(tunnel);
      u.tunnels++;
      const end = pool.begin(u, () => tunnel.close("drain deadline"));

      const pipe = (from: net.Socket, to: net.Socket, tracker: FrameTracker | undefined, dir: "down" | "up") => {
        from.on("data", (chunk: Buffer) => {
          if (stopped[dir]) return; // after our Close frame nothing more may follow
          if (tracker === undefined) {
            if (!to.write(chunk)) from.pause();
            return;
          }
          const at = tracker.consume(chunk);
          if (closing && at >= 0) {
            if (at > 0) to.write(chunk.subarray(0, at));
            return sendClose(dir);
          }
          if (closing && tracker.broken) return sendClose(dir);
          if (!to.write(chunk)) from.pause();
        });
        to.on("drain", () => from.resume());
        // Half-close passes through; a full close (or error) of either side ends the tunnel.
        from.on("end", () => {
          if (!stopped[dir]) to.end();
        });
        from.on("close", () => {
          if (done) return;
          if (closing) {
            if (c.destroyed && s.destroyed) finish();
            return;
          }
          to.end();
          clearTimeout(graceTimer);
          graceTimer = setTimeout(finish, CLOSE_GRACE_MS);
          if (c.destroyed && s.destroyed) finish();
        });
        from.on("error", () => undefined);
      };

      if (o.tunnelIdleTimeoutMs > 0) c.setTimeout(o.tunnelIdleTimeoutMs, () => tunnel.close("idle"));
      c.setNoDelay(true);
      s.setNoDelay(true);
      if (upEarly.length > 0) {
        down?.consume(upEarly);
        c.write(upEarly);
      }
      if (clientEarly.length > 0) {
        upward?.consume(clientEarly);
        s.write(clientEarly);
      }
      pipe(s, c, down, "down");
      pipe(c, s, upward, "up");
      if (o.isClosing()) tunnel.close("proxy shutting down");
    };

    attempt(0, new Set());
  };
}

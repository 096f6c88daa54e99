// kiln's built-in data plane: an HTTP/1.1 reverse proxy driven by routing
// tables pushed over a unix-socket admin API and persisted to disk, so it keeps
// routing when the controller is down and after its own restart.

import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { chmod, lstat, mkdir, readdir, rename, unlink } from "node:fs/promises";
import path from "node:path";
import { KilnError } from "../../errors.js";
import { parseHostPort } from "../../health/probe.js";
import type { RouterStats, RoutingTable, ServiceRoute } from "../router.js";
import { pickService, type NamedRoute } from "./routes.js";
import { createAdminHandler, type AcceptResult } from "./admin.js";
import { DEFAULT_MAX_BODY_BYTES, createForwarder } from "./forward.js";
import { httpsRedirect } from "./pages.js";
import { loadTableFile, saveTableFile } from "./state-file.js";
import { loadCertificates, pickCertificate, type CertificateFiles } from "./tls.js";
import { TargetPool, type Lane } from "./targets.js";
import { CLOSE_GRACE_MS, createUpgrader, type Tunnel } from "./tunnel.js";

export interface ProxyOptions {
  /** "127.0.0.1:PORT" clients connect to; port 0 picks a free one */
  listen: string;
  /**
   * "127.0.0.1:PORT" of the preview listener (blue-green preview): requests
   * there go only to RoutingTable.preview's healthy active targets, whatever
   * their weight. Default: no preview listener.
   */
  previewListen?: string;
  /** unix socket path of the admin API */
  admin: string;
  /** where the last accepted routing table is kept */
  stateFile: string;
  log?: (line: string) => void;
  /** default 2000 */
  connectTimeoutMs?: number;
  /** no byte from an instance for this long → 504; default 60000 */
  upstreamTimeoutMs?: number;
  /** close(): how long in-flight client requests may take to finish; default 10000 */
  closeTimeoutMs?: number;
  /** keep-alive connections per target; default 64 */
  maxSocketsPerTarget?: number;
  /** add x-kiln-instance / x-kiln-release to responses; default false (they reveal instance ids) */
  instanceHeaders?: boolean;
  /** larger request bodies get 413; default 10 MiB (DEFAULT_MAX_BODY_BYTES) */
  maxBodyBytes?: number;
  /** a client must send its request headers within this; default 10000 (slow-header clients) */
  headerTimeoutMs?: number;
  /** a client must send its whole request (headers and body) within this; default 300000 */
  requestTimeoutMs?: number;
  /** an idle keep-alive client connection is closed after this; default 5000 */
  keepAliveTimeoutMs?: number;
  /** an upgraded connection (WebSocket) with no byte either way for this long is closed; default 3600000, 0 = never */
  tunnelIdleTimeoutMs?: number;
  /**
   * TLS termination: a second production listener speaking HTTPS, HTTP/2 to
   * clients that offer it (ALPN h2) and HTTP/1.1 otherwise; instances are
   * always spoken to in HTTP/1.1. The certificate is chosen by SNI among
   * `certificates` (the first is the default).
   */
  /** "host:port" serving Prometheus metrics (GET /metrics); default: none (opt-in) */
  metricsListen?: string;
  /** the `service` label of every metric; default "kiln" */
  service?: string;
  tls?: {
    listen: string;
    certificates: CertificateFiles[];
    /** the plain `listen` address then only redirects (308) to https:// on the TLS listener */
    redirectHttp?: boolean;
  };
}

/** Defaults of the client-facing limits; see ProxyOptions. */
export const EDGE_DEFAULTS = Object.freeze({
  maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
  headerTimeoutMs: 10_000,
  requestTimeoutMs: 300_000,
  keepAliveTimeoutMs: 5_000,
  connectTimeoutMs: 2_000,
  upstreamTimeoutMs: 60_000,
  tunnelIdleTimeoutMs: 3_600_000,
});

export interface RunningProxy {
  /** the actual "host:port" (with the real port when 0 was asked for) */
  readonly address: string;
  /** the TLS listener's actual "host:port", when one was asked for */
  readonly tlsAddress?: string;
  /** the metrics listener's actual "host:port", when one was asked for */
  readonly metricsAddress?: string;
  /** the preview listener's actual "host:port", when one was asked for */
  readonly previewAddress?: string;
  readonly adminSocket: string;
  /** Stop accepting, let in-flight requests finish (bounded), close keep-alive pools. Idempotent. */
  close(): Promise<void>;
}

interface Service {
  name: string;
  pool: TargetPool;
  stateFile: string;
  route?: ServiceRoute;
  /** forwarders and upgraders by lane and protocol */
  handlers: Map<string, unknown>;
}

/** Unix socket paths are limited to 108 bytes including the terminator on Linux (104 on macOS). */
const MAX_SOCKET_PATH = 103;

/**
 * `at` (the address and the kiln.yaml key that sets it) goes into the error's details, so
 * whoever started the proxy can name the port's holder and the key to change without
 * reading the message.
 */
function listenErrorToKiln(err: NodeJS.ErrnoException, what: string, fix: string, at?: { address: string; key: string }): KilnError {
  const details = at ? [{ where: at.address, path: at.key, message: err.code ?? err.message }] : [];
  if (err.code === "EADDRINUSE") {
    return new KilnError("KILN_E_USAGE", `proxy cannot listen on ${what}: address already in use`, {
      hint: `another process (perhaps another kiln proxy) is listening there; stop it or ${fix}`,
      cause: err,
      details,
    });
  }
  if (err.code === "EACCES") {
    return new KilnError("KILN_E_USAGE", `proxy cannot listen on ${what}: permission denied`, {
      hint: `ports below 1024 need privileges; ${fix}`,
      cause: err,
    });
  }
  if (err.code === "EADDRNOTAVAIL") {
    return new KilnError("KILN_E_USAGE", `proxy cannot listen on ${what}: no such local address`, { hint: fix, cause: err });
  }
  return new KilnError("KILN_E_INTERNAL", `proxy cannot listen on ${what}: ${err.message}`, { cause: err });
}

function listen(server: net.Server, where: net.ListenOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => reject(e);
    server.once("error", onError);
    server.listen(where, () => {
      server.off("error", onError);
      resolve();
    });
  });
}

/**
 * Make `socketPath` available: a leftover socket from a killed proxy is
 * removed, but a live one (another proxy answering) or a non-socket file is
 * never touched.
 */
async function claimAdminSocket(socketPath: string): Promise<void> {
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) {
    throw new KilnError("KILN_E_USAGE", `admin socket path is too long (${Buffer.byteLength(socketPath)} bytes): ${socketPath}`, {
      hint: `unix socket paths must be under ${MAX_SOCKET_PATH + 1} bytes; use a shorter state directory`,
    });
  }
  await mkdir(path.dirname(socketPath), { recursive: true });
  let st;
  try {
    st = await lstat(socketPath);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
    throw e;
  }
  if (!st.isSocket()) {
    throw new KilnError("KILN_E_USAGE", `admin socket path ${socketPath} exists and is not a socket`, {
      hint: "remove it or choose another admin socket path",
    });
  }
  const live = await new Promise<boolean>((resolve) => {
    const s = net.connect({ path: socketPath });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
  if (live) {
    throw new KilnError("KILN_E_USAGE", `another proxy is already serving the admin socket ${socketPath}`, {
      hint: "stop that proxy first, or give this one a different admin socket",
    });
  }
  await unlink(socketPath).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== "ENOENT") throw e;
  });
}

export async function startProxy(opts: ProxyOptions): Promise<RunningProxy> {
  const log = opts.log ?? (() => undefined);
  const hp = parseHostPort(opts.listen);
  if (!hp) {
    throw new KilnError("KILN_E_USAGE", `proxy listen address "${opts.listen}" is not host:port`, {
      hint: 'use e.g. "127.0.0.1:8080"',
    });
  }
  const previewHp = opts.previewListen === undefined ? undefined : parseHostPort(opts.previewListen);
  if (opts.previewListen !== undefined && !previewHp) {
    throw new KilnError("KILN_E_USAGE", `proxy preview listen address "${opts.previewListen}" is not host:port`, {
      hint: 'use e.g. "127.0.0.1:8081"',
    });
  }

  const headerTimeoutMs = opts.headerTimeoutMs ?? EDGE_DEFAULTS.headerTimeoutMs;
  const requestTimeoutMs = opts.requestTimeoutMs ?? EDGE_DEFAULTS.requestTimeoutMs;
  if (requestTimeoutMs !== 0 && headerTimeoutMs > requestTimeoutMs) {
    throw new KilnError("KILN_E_USAGE", `proxy header timeout (${headerTimeoutMs} ms) is longer than its request timeout (${requestTimeoutMs} ms)`, {
      hint: "the headers are part of the request: make the header timeout the shorter one",
    });
  }

  const tlsHp = opts.tls === undefined ? undefined : parseHostPort(opts.tls.listen);
  if (opts.tls !== undefined && !tlsHp) {
    throw new KilnError("KILN_E_USAGE", `proxy TLS listen address "${opts.tls.listen}" is not host:port`, { hint: 'use e.g. "127.0.0.1:8443"' });
  }
  const certificates = opts.tls === undefined ? [] : loadCertificates(opts.tls.certificates);
  const metricsHp = opts.metricsListen === undefined ? undefined : parseHostPort(opts.metricsListen);
  if (opts.metricsListen !== undefined && !metricsHp) {
    throw new KilnError("KILN_E_USAGE", `proxy metrics listen address "${opts.metricsListen}" is not host:port`, { hint: 'use e.g. "127.0.0.1:9100"' });
  }
  let tlsPort = 0; // known once the TLS listener is bound; the redirect reads it per request

  const checkEveryMs = Math.max(50, Math.min(1000, Math.floor(headerTimeoutMs / 4)));

  const newPool = () =>
    new TargetPool({
      log,
      now: Date.now,
      maxSocketsPerTarget: opts.maxSocketsPerTarget ?? 64,
      idleSocketMs: 4000,
    });
  // Several services may share the listener (issue 10): each has its own pool (fleet, health
  // checks, counters) and state file, and requests pick one by Host and path (routes.ts).
  // "" is the listener's own service: with no other service, every request goes to it directly.
  const services = new Map<string, Service>([["", { name: "", pool: newPool(), stateFile: opts.stateFile, handlers: new Map() }]]);
  const pool = services.get("")!.pool;
  const unregistered = newPool();
  const stateDir = path.dirname(path.resolve(opts.stateFile));
  const stateBase = path.basename(opts.stateFile, ".json");
  const stateFileOf = (name: string) => (name === "" ? opts.stateFile : path.join(stateDir, `${stateBase}.${name}.json`));
  let routes: NamedRoute[] = [];
  const refreshRoutes = () => {
    routes = [...services.values()].filter((s) => s.name !== "" || s.pool.version > 0).map((s) => ({ service: s.name, hosts: s.route?.hosts ?? [], ...(s.route?.pathPrefix ? { pathPrefix: s.route.pathPrefix } : {}) }));
  };
  const serviceOf = (name: string): Service => {
    let svc = services.get(name);
    if (!svc) {
      svc = { name, pool: newPool(), stateFile: stateFileOf(name), handlers: new Map() };
      services.set(name, svc);
    }
    return svc;
  };

  await mkdir(stateDir, { recursive: true });
  const sharedFiles = (await readdir(stateDir).catch(() => [] as string[]))
    .map((f) => new RegExp(`^${stateBase.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\.([a-z][a-z0-9-]{0,62})\\.json$`).exec(f)?.[1])
    .filter((n): n is string => n !== undefined);
  for (const name of ["", ...sharedFiles]) {
    const file = stateFileOf(name);
    const loaded = await loadTableFile(file);
    if (loaded.kind === "invalid") {
      // Atomic writes make this unlikely (a disk fault, a hand edit). Refusing to
      // start would keep the data plane down until someone intervenes; starting
      // empty lets the controller heal it (it re-sends its table when the proxy
      // reports an older version). The bad file is kept for inspection.
      const aside = `${file}.invalid-${Date.now()}`;
      await rename(file, aside).catch(() => undefined);
      log(`routing table file ${file} is invalid (${loaded.problems.join("; ")}); moved to ${aside}, starting with no routes`);
    }
    if (loaded.kind === "ok") {
      const svc = serviceOf(name);
      svc.pool.apply(loaded.table);
      if (loaded.table.route) svc.route = loaded.table.route;
      log(`loaded routing table v${loaded.table.version}${name ? ` of ${name}` : ""} (${loaded.table.targets.length} targets) from ${file}`);
    }
  }
  refreshRoutes();

  // Tables are accepted one at a time: check version, persist, then apply.
  // The table is on disk before the controller hears "ok", so an acknowledged
  // table survives a proxy crash.
  let queue: Promise<unknown> = Promise.resolve();
  const acceptTable = (table: RoutingTable, service: string): Promise<AcceptResult> => {
    const run = queue.then(async (): Promise<AcceptResult> => {
      const svc = serviceOf(service);
      if (table.version < svc.pool.version) return { ok: false, currentVersion: svc.pool.version };
      await saveTableFile(svc.stateFile, table);
      svc.pool.apply(table);
      if (table.route) svc.route = table.route;
      else delete svc.route;
      refreshRoutes();
      log(`routing table v${table.version}${service ? ` of ${service}` : ""} accepted (${table.targets.length} targets)`);
      return { ok: true, version: table.version };
    });
    queue = run.catch(() => undefined);
    return run;
  };
  const removeService = (service: string): Promise<{ removed: boolean; remaining: number }> => {
    const run = queue.then(async () => {
      const svc = services.get(service);
      if (svc && service !== "") {
        services.delete(service);
        svc.pool.close();
        await unlink(svc.stateFile).catch(() => undefined);
        refreshRoutes();
        log(`service ${service} removed from the listener`);
      }
      return { removed: svc !== undefined, remaining: routes.length };
    });
    queue = run.catch(() => undefined);
    return run;
  };
  /** The service a request goes to; undefined → 404. One service: no lookup at all. */
  const select = (req: http.IncomingMessage): Service | undefined => {
    if (services.size === 1) return services.get("");
    const name = pickService(routes, req.headers.host ?? (req.headers[":authority"] as string | undefined), req.url ?? "/");
    return name === undefined ? undefined : services.get(name);
  };

  let closing = false;
  const active = { count: 0 };
  const tunnels = new Set<Tunnel>();
  const forwarder = (lane: Lane, proto: "http" | "https", pool: TargetPool) =>
    createForwarder({
      pool,
      log,
      connectTimeoutMs: opts.connectTimeoutMs ?? EDGE_DEFAULTS.connectTimeoutMs,
      upstreamTimeoutMs: opts.upstreamTimeoutMs ?? EDGE_DEFAULTS.upstreamTimeoutMs,
      isClosing: () => closing,
      lane,
      instanceHeaders: opts.instanceHeaders ?? false,
      maxBodyBytes: opts.maxBodyBytes ?? EDGE_DEFAULTS.maxBodyBytes,
      proto,
      active,
    });
  const upgrader = (lane: Lane, proto: "http" | "https", pool: TargetPool) =>
    createUpgrader({
      pool,
      log,
      lane,
      instanceHeaders: opts.instanceHeaders ?? false,
      proto,
      connectTimeoutMs: opts.connectTimeoutMs ?? EDGE_DEFAULTS.connectTimeoutMs,
      tunnelIdleTimeoutMs: opts.tunnelIdleTimeoutMs ?? EDGE_DEFAULTS.tunnelIdleTimeoutMs,
      isClosing: () => closing,
      tunnels,
    });
  // Per service and listener kind, made on first use; the preview listener serves the listener's own service.
  const noService = (res: http.ServerResponse) => {
    const body = "kiln: no service answers this host\n";
    res.writeHead(404, { "content-type": "text/plain; charset=utf-8", "content-length": String(body.length) });
    res.end(body);
  };
  const forwardTo = (lane: Lane, proto: "http" | "https") => {
    type Handler = (q: http.IncomingMessage, r: http.ServerResponse) => void;
    const key = `f ${lane} ${proto}`; // built once per listener, not per request
    const handlerOf = (svc: Service): Handler => {
      let h = svc.handlers.get(key) as Handler | undefined;
      if (!h) svc.handlers.set(key, (h = forwarder(lane, proto, svc.pool)));
      return h;
    };
    // The listener's own service is never removed: alone on the listener, its handler is one
    // variable away, with no lookup per request.
    const own = services.get("")!;
    let ownHandler: Handler | undefined;
    return (req: http.IncomingMessage, res: http.ServerResponse) => {
      const svc = lane === "preview" || services.size === 1 ? own : select(req);
      if (svc === own) return (ownHandler ??= handlerOf(own))(req, res);
      if (!svc) return noService(res);
      handlerOf(svc)(req, res);
    };
  };
  const upgradeTo = (lane: Lane, proto: "http" | "https") => (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    const svc = lane === "preview" ? services.get("") : select(req);
    if (!svc) return socket.end("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    const key = `u ${lane} ${proto}`;
    let h = svc.handlers.get(key) as ((q: http.IncomingMessage, s: net.Socket, b: Buffer) => void) | undefined;
    if (!h) svc.handlers.set(key, (h = upgrader(lane, proto, svc.pool)));
    h(req, socket, head);
  };
  const redirect = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const r = httpsRedirect(req.headers.host, req.url ?? "/", tlsPort);
    res.writeHead(r.status, r.headers);
    res.end(r.body);
  };
  const clientServer = (lane: Lane, redirecting: boolean): http.Server => {
    const server = http.createServer({
      keepAlive: true,
      headersTimeout: headerTimeoutMs,
      requestTimeout: requestTimeoutMs,
      keepAliveTimeout: opts.keepAliveTimeoutMs ?? EDGE_DEFAULTS.keepAliveTimeoutMs,
      // Node checks the two deadlines above on this timer (default 30 s, which would let a
      // slow-header client hold a connection three times longer than asked).
      connectionsCheckingInterval: checkEveryMs,
    }, redirecting ? redirect : forwardTo(lane, "http"));
    if (redirecting) {
      server.on("upgrade", (req: http.IncomingMessage, socket: net.Socket) => {
        const r = httpsRedirect(req.headers.host, req.url ?? "/", tlsPort);
        let head = `HTTP/1.1 ${r.status} ${r.status === 308 ? "Permanent Redirect" : "Bad Request"}\r\n`;
        for (const [k, v] of Object.entries(r.headers)) head += `${k}: ${v}\r\n`;
        socket.end(`${head}connection: close\r\n\r\n${r.body}`);
      });
    } else server.on("upgrade", upgradeTo(lane, "http"));
    // A forward proxy's CONNECT is not what an edge serves: say so instead of hanging up silently.
    server.on("connect", (_req: http.IncomingMessage, socket: net.Socket) => {
      socket.end("HTTP/1.1 501 Not Implemented\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    });
    server.on("clientError", (err: NodeJS.ErrnoException, socket) => {
      if (!socket.writable) return socket.destroy();
      // Too slow (header/request timeout) and too big headers have their own statuses.
      const status =
        err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? "408 Request Timeout" : err.code === "HPE_HEADER_OVERFLOW" ? "431 Request Header Fields Too Large" : "400 Bad Request";
      socket.end(`HTTP/1.1 ${status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
    });
    return server;
  };
  const addressOf = (s: http.Server): string => {
    const bound = s.address() as net.AddressInfo;
    return `${bound.family === "IPv6" ? `[${bound.address}]` : bound.address}:${bound.port}`;
  };

  const server = clientServer("production", opts.tls?.redirectHttp === true);
  try {
    await listen(server, { host: hp.host, port: hp.port });
  } catch (e) {
    pool.close();
    throw listenErrorToKiln(e as NodeJS.ErrnoException, opts.listen, "change `listen` in kiln.yaml", { address: opts.listen, key: "listen" });
  }
  const address = addressOf(server);

  let previewServer: http.Server | undefined;
  let previewAddress: string | undefined;
  if (previewHp !== undefined) {
    previewServer = clientServer("preview", false);
    try {
      await listen(previewServer, { host: previewHp.host, port: previewHp.port });
    } catch (e) {
      server.close();
      pool.close();
      throw listenErrorToKiln(e as NodeJS.ErrnoException, `preview address ${opts.previewListen}`, "choose another preview listen address", { address: opts.previewListen!, key: "strategy.blueGreen.previewListen" });
    }
    previewAddress = addressOf(previewServer);
  }
  let tlsServer: http2.Http2SecureServer | undefined;
  let tlsAddress: string | undefined;
  const tlsSockets = new Set<net.Socket>();
  const h2Sessions = new Set<http2.ServerHttp2Session>();
  if (tlsHp !== undefined) {
    const first = certificates[0]!;
    tlsServer = http2.createSecureServer(
      {
        cert: first.certPem,
        key: first.keyPem,
        // HTTP/1.1 clients (and WebSocket upgrades) on the same port; ALPN offers h2 first.
        allowHTTP1: true,
        SNICallback: (servername, cb) => cb(null, certificates[pickCertificate(certificates, servername)]!.context),
      },
      // The compatibility API's request/response mirror http's closely enough for the forwarder.
      forwardTo("production", "https") as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
    );
    tlsServer.on("upgrade", upgradeTo("production", "https"));
    tlsServer.on("secureConnection", (sock: net.Socket) => {
      tlsSockets.add(sock);
      sock.once("close", () => tlsSockets.delete(sock));
    });
    tlsServer.on("session", (session: http2.ServerHttp2Session) => {
      h2Sessions.add(session);
      session.once("close", () => h2Sessions.delete(session));
    });
    tlsServer.on("tlsClientError", () => undefined); // a failed handshake is the client's problem
    try {
      await listen(tlsServer as unknown as net.Server, { host: tlsHp.host, port: tlsHp.port });
    } catch (e) {
      server.close();
      previewServer?.close();
      pool.close();
      throw listenErrorToKiln(e as NodeJS.ErrnoException, `TLS address ${opts.tls!.listen}`, "choose another TLS listen address", { address: opts.tls!.listen, key: "edge.tls.listen" });
    }
    tlsAddress = addressOf(tlsServer as unknown as http.Server);
    tlsPort = (tlsServer.address() as net.AddressInfo).port;
    log(`TLS on ${tlsAddress}: ${certificates.map((c) => `${c.files.cert} [${c.names.join(", ")}]`).join("; ")}`);
  }
  const servers = previewServer ? [server, previewServer] : [server];
  let metricsAddress: string | undefined;
  if (metricsHp !== undefined) {
    // Loaded only when asked for: prom-client (and what it pulls in) costs start-up time and memory.
    const { createMetricsRegistry, createMetricsServer } = await import("./metrics.js");
    const metricsServer = createMetricsServer(
      createMetricsRegistry(() => [...services.values()].map((s) => ({ service: s.name === "" ? (opts.service ?? "kiln") : s.name, pool: s.pool }))),
      log,
    );
    try {
      await listen(metricsServer, { host: metricsHp.host, port: metricsHp.port });
    } catch (e) {
      for (const s of servers) s.close();
      tlsServer?.close();
      pool.close();
      throw listenErrorToKiln(e as NodeJS.ErrnoException, `metrics address ${opts.metricsListen}`, "choose another metrics listen address", { address: opts.metricsListen!, key: "edge.metricsListen" });
    }
    metricsAddress = addressOf(metricsServer);
    // Closed with the client listeners (below): it joins `servers` for close().
    servers.push(metricsServer);
  }

  const stats = (service: string): RouterStats | undefined => {
    // A service not registered yet reads as an empty table (version 0): its controller then sends one.
    const pool = services.get(service)?.pool ?? unregistered;
    const s: RouterStats = {
      tableVersion: pool.version,
      targets: pool.targetStatuses(),
      releases: pool.releaseStats("production"),
      pid: process.pid,
      listen: address,
      previewCounters: pool.releaseStats("preview"),
    };
    if (pool.maintenance !== undefined) s.maintenance = { ...pool.maintenance };
    if (previewAddress !== undefined) {
      s.preview = { listen: previewAddress };
      const release = pool.previewRelease;
      if (release !== undefined) s.preview.release = release;
    }
    return s;
  };
  const admin = http.createServer(createAdminHandler({ acceptTable, stats, removeService, log }));
  try {
    await claimAdminSocket(opts.admin);
    await listen(admin, { path: opts.admin });
    await chmod(opts.admin, 0o600);
  } catch (e) {
    for (const s of servers) s.close();
    pool.close();
    if (e instanceof KilnError) throw e;
    throw listenErrorToKiln(e as NodeJS.ErrnoException, `admin socket ${opts.admin}`, "choose another admin socket path");
  }
  log(`proxy listening on ${address}${previewAddress ? `, preview on ${previewAddress}` : ""}, admin ${opts.admin}`);

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      closing = true;
      const stopped = Promise.all([
        ...servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))),
        ...(tlsServer ? [new Promise<void>((resolve) => tlsServer!.close(() => resolve()))] : []),
      ]);
      // HTTP/2 clients get a GOAWAY: streams in flight finish, no new ones start.
      for (const session of h2Sessions) session.close();
      admin.close();
      admin.closeIdleConnections();
      const deadline = Date.now() + (opts.closeTimeoutMs ?? 10_000);
      // Idle keep-alive clients are disconnected; busy ones get "connection:
      // close" on their response and are disconnected once it is sent.
      while (active.count > 0 && Date.now() < deadline) {
        for (const s of servers) s.closeIdleConnections();
        await new Promise((r) => setTimeout(r, 20));
      }
      if (active.count > 0) log(`close: ${active.count} request(s) still in flight at the deadline; cutting them`);
      // Upgraded connections (WebSockets) are no longer the servers': close them cleanly, bounded.
      for (const t of tunnels) t.close("proxy shutting down");
      const tunnelsBy = Date.now() + CLOSE_GRACE_MS + 500;
      while (tunnels.size > 0 && Date.now() < tunnelsBy) await new Promise((r) => setTimeout(r, 20));
      for (const s of servers) s.closeAllConnections();
      for (const session of h2Sessions) session.destroy();
      for (const sock of tlsSockets) sock.destroy();
      admin.closeAllConnections();
      await stopped;
      for (const svc of services.values()) svc.pool.close();
      unregistered.close();
      await unlink(opts.admin).catch(() => undefined);
      log("proxy closed");
    })();
    return closed;
  };

  return {
    address,
    ...(previewAddress !== undefined ? { previewAddress } : {}),
    ...(tlsAddress !== undefined ? { tlsAddress } : {}),
    ...(metricsAddress !== undefined ? { metricsAddress } : {}),
    adminSocket: opts.admin,
    close,
  };
}

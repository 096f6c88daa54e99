// The keep-alive pool of one target: Node's http.Agent with a constant pool key and two of
// its per-request steps done without the work a one-destination pool does not need.
//
// Measured in a CPU profile of the proxy under wrk -c32 (GET /version over two instances):
// Node's Agent.addRequest was ~5 % of the process's busy samples, the largest JavaScript
// function after the two socket writes, most of it its own: per request it copies the
// request's options and the agent's into a fresh prototype-less object, works out the server
// name and the pool key, then takes a free socket. Agent.keepSocketAlive, on every response
// that returns its socket to the pool, read the response's `headers`, which makes Node build
// the whole header object (the forwarder writes the client's response from the raw lines and
// never builds it) only to look at Keep-Alive: ~1 %.
//
// TargetAgent keeps Node's behaviour and changes only how:
//   addRequest       a free socket is reused as Node does it (the last in the free list
//                    under "lifo", the first under "fifo"; the async id reset, the request's
//                    socket set, the socket counted busy), without the copy; anything else
//                    (no free socket: connect, or queue at maxSockets; a destroyed socket at
//                    the head of the free list, which Node drops first) goes to Node's
//                    addRequest unchanged
//   keepSocketAlive  what Node's does (TCP keep-alive, unref, the socket timeout from the
//                    instance's `Keep-Alive: timeout=N` hint minus 1 s, not reused if that
//                    leaves nothing), with the hint read from the response's raw header lines;
//                    and a socket going to the free list is stamped with the time (IDLE_SINCE,
//                    for the pool's idle sweep) here, where a second 'free' listener on the
//                    agent made Node copy its listener array on every response

import http from "node:http";
import net from "node:net";

/** When a pooled socket went idle: Date.now() as it joined the free list (see TargetPool's idle sweep). */
export const IDLE_SINCE = Symbol("kiln.idleSince");

/** Node's margin under an instance's announced keep-alive timeout (HTTP_AGENT_KEEP_ALIVE_TIMEOUT_BUFFER). */
const KEEP_ALIVE_HINT_MARGIN_MS = 1000;

/**
 * The symbol under which a net.Socket keeps its async id (Node sets it when a pooled socket
 * is handed to a new request). Found by its description; undefined if a Node version names
 * it otherwise, and then every request takes Node's own addRequest.
 */
const ASYNC_ID: symbol | undefined = Object.getOwnPropertySymbols(new net.Socket()).find((s) => s.description === "async_id_symbol");

/** Whether free sockets are reused by TargetAgent's own path (else Node's addRequest does it all). */
export const OWN_REUSE: boolean = ASYNC_ID !== undefined;

interface AsyncHandle {
  asyncReset?: (resource: object) => void;
  getProviderType(): number;
  getAsyncId(): number;
}
type PoolSocket = net.Socket & { _handle?: AsyncHandle | null } & Record<symbol, unknown>;
type PoolRequest = http.ClientRequest & { onSocket(socket: net.Socket): void; timeout?: number };

/** The resource async hooks see for a reused socket, shaped as Node's own (type, handle). */
class ReusedHandle {
  constructor(
    readonly type: number,
    readonly handle: AsyncHandle,
  ) {}
}

/**
 * The value of `timeout=N` at the start of the first Keep-Alive line, as Node reads it from the
 * header object (where repeated Keep-Alive lines are joined, the first coming first).
 *
 *   ["Keep-Alive", "timeout=5"]                        → 5
 *   ["keep-alive", "timeout=5, max=100"]               → 5
 *   ["Keep-Alive", "max=100, timeout=5"]               → undefined (Node's /^timeout=(\d+)/)
 *   ["Content-Type", "text/plain"]                     → undefined
 *   ["Keep-Alive", "", "Keep-Alive", "timeout=3"]      → undefined (joined: ", timeout=3")
 */
export function keepAliveHintS(raw: readonly string[]): number | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!;
    if (k.length !== 10 || k.toLowerCase() !== "keep-alive") continue;
    const m = /^timeout=(\d+)/.exec(raw[i + 1]!);
    return m ? Number.parseInt(m[1]!, 10) : undefined;
  }
  return undefined;
}

export class TargetAgent extends http.Agent {
  /** `key`: the pool key of the one destination every request on this agent goes to. */
  constructor(
    private readonly poolKey: string,
    options: http.AgentOptions,
  ) {
    super(options);
  }

  // Every request goes to the same host and port: the key is a constant instead of a string
  // Node builds from the request's options (and looks up) several times per request.
  override getName(): string {
    return this.poolKey;
  }

  addRequest(req: PoolRequest, options: http.RequestOptions): void {
    const key = this.poolKey;
    const free = this.freeSockets[key] as PoolSocket[] | undefined;
    if (ASYNC_ID === undefined || free === undefined || free.length === 0 || free[0]!.destroyed) {
      (http.Agent.prototype as unknown as { addRequest(r: PoolRequest, o: http.RequestOptions): void }).addRequest.call(this, req, options);
      return;
    }
    const scheduling = (this as unknown as { scheduling?: string }).scheduling;
    const socket = (scheduling === "fifo" ? free.shift() : free.pop())!;
    if (free.length === 0) delete (this.freeSockets as Record<string, unknown>)[key];
    const handle = socket._handle;
    if (handle && typeof handle.asyncReset === "function") {
      handle.asyncReset(new ReusedHandle(handle.getProviderType(), handle));
      socket[ASYNC_ID] = handle.getAsyncId();
    }
    this.reuseSocket(socket, req);
    req.onSocket(socket);
    const agentTimeout = (this as unknown as { options: { timeout?: number } }).options.timeout || 0;
    if (req.timeout !== undefined && req.timeout !== agentTimeout) socket.setTimeout(req.timeout);
    const busy = this.sockets as Record<string, net.Socket[] | undefined>;
    (busy[key] ??= []).push(socket);
  }

  override keepSocketAlive(socket: net.Socket): boolean {
    socket.setKeepAlive(true, (this as unknown as { keepAliveMsecs: number }).keepAliveMsecs);
    socket.unref();
    let timeout = (this as unknown as { options: { timeout?: number } }).options.timeout || 0;
    let reusable = true;
    const res = (socket as net.Socket & { _httpMessage?: { res?: http.IncomingMessage | null } | null })._httpMessage?.res;
    if (res) {
      const hint = keepAliveHintS(res.rawHeaders);
      if (hint !== undefined) {
        const ms = Math.max(0, hint * 1000 - KEEP_ALIVE_HINT_MARGIN_MS);
        if (ms === 0) reusable = false;
        else if (ms < timeout) timeout = ms;
      }
    }
    if (socket.timeout !== timeout) socket.setTimeout(timeout);
    // Node puts the socket in the free list when this returns true (its other checks came first).
    if (reusable) (socket as net.Socket & { [IDLE_SINCE]?: number })[IDLE_SINCE] = Date.now();
    return reusable;
  }
}

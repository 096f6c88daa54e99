// The controller's side of the proxy's admin socket: the built-in data plane
// as a Router. Native errors become KilnErrors here, at the boundary.

import http from "node:http";
import { KilnError } from "../../errors.js";
import type { Router, RouterStats, RoutingTable, ServiceRoute } from "../router.js";

export interface ProxyClientOptions {
  /** per admin call; default 5000 */
  timeoutMs?: number;
  /**
   * A service sharing the proxy's listener with others (issue 10): tables and stats go to
   * `?service=NAME`, and every table carries `route` (its hosts and path prefix).
   */
  shared?: { service: string; route: ServiceRoute };
}

interface AdminResponse {
  status: number;
  body: unknown;
}

export class ProxyClient implements Router {
  private readonly timeoutMs: number;
  private readonly shared: ProxyClientOptions["shared"];
  private readonly query: string;

  constructor(
    readonly socketPath: string,
    opts: ProxyClientOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.shared = opts.shared;
    this.query = opts.shared ? `?service=${encodeURIComponent(opts.shared.service)}` : "";
  }

  async setTable(table: RoutingTable): Promise<void> {
    const r = await this.call("PUT", `/table${this.query}`, this.shared ? { ...table, route: this.shared.route } : table);
    if (r.status === 200) return;
    const msg = errorMessage(r.body);
    if (r.status === 409) {
      throw new KilnError("KILN_E_CONTROLLER", `proxy refused routing table v${table.version}: ${msg}`, {
        hint: "the proxy holds a newer table; the controller's table version must only grow (was state restored from an old backup?)",
      });
    }
    throw new KilnError("KILN_E_CONTROLLER", `proxy rejected routing table v${table.version} (HTTP ${r.status}): ${msg}`, {
      hint: r.status === 400 ? "this is a kiln bug: the controller produced an invalid table" : "see the proxy log",
    });
  }

  async stats(): Promise<RouterStats> {
    const r = await this.call("GET", `/stats${this.query}`);
    if (r.status !== 200) {
      throw new KilnError("KILN_E_CONTROLLER", `proxy stats failed (HTTP ${r.status}): ${errorMessage(r.body)}`, {
        hint: "see the proxy log",
      });
    }
    return r.body as RouterStats;
  }

  /** Forget this shared service on the proxy; how many services it still serves. */
  async leave(): Promise<number> {
    if (!this.shared) throw new KilnError("KILN_E_INTERNAL", "leave() is for a service sharing the listener");
    const r = await this.call("DELETE", `/table${this.query}`);
    if (r.status !== 200) throw new KilnError("KILN_E_CONTROLLER", `proxy could not remove service ${this.shared.service} (HTTP ${r.status}): ${errorMessage(r.body)}`, { hint: "see the proxy log" });
    return (r.body as { remaining: number }).remaining;
  }

  /** true when the proxy answers on its admin socket; never throws */
  async ping(): Promise<boolean> {
    try {
      return (await this.call("GET", "/healthz")).status === 200;
    } catch {
      return false;
    }
  }

  private call(method: string, path: string, body?: unknown): Promise<AdminResponse> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise<AdminResponse>((resolve, reject) => {
      const req = http.request({
        socketPath: this.socketPath,
        method,
        path,
        // No pooling: admin calls are rare, and a pooled socket would keep the caller's event loop alive.
        agent: false,
        headers: payload
          ? { "content-type": "application/json", "content-length": String(payload.length) }
          : undefined,
      });
      const timer = setTimeout(() => req.destroy(Object.assign(new Error("timed out"), { code: "ETIMEDOUT" })), this.timeoutMs);
      req.on("response", (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          clearTimeout(timer);
          const text = Buffer.concat(chunks).toString("utf8");
          let parsed: unknown = text;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            /* keep the text; errorMessage shows it */
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
        res.on("error", (e) => {
          clearTimeout(timer);
          reject(this.unreachable(e));
        });
      });
      req.on("error", (e) => {
        clearTimeout(timer);
        reject(this.unreachable(e));
      });
      req.end(payload);
    });
  }

  private unreachable(e: Error): KilnError {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT"
        ? "no socket file"
        : code === "ECONNREFUSED"
          ? "nothing listening"
          : code === "ETIMEDOUT"
            ? `no answer in ${this.timeoutMs}ms`
            : (code ?? e.message);
    return new KilnError("KILN_E_CONTROLLER", `proxy unreachable at ${this.socketPath} (${why})`, {
      hint: "is the kiln proxy running? check its log, or restart it: it resumes from its saved routing table",
      cause: e,
    });
  }
}

function errorMessage(body: unknown): string {
  if (typeof body === "object" && body !== null && typeof (body as { error?: unknown }).error === "string") {
    return (body as { error: string }).error;
  }
  return typeof body === "string" ? body.slice(0, 200) : "no details";
}

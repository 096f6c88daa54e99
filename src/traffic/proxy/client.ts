// The controller's side of the proxy's admin socket: the built-in data plane
// as a Router. Native errors become KilnErrors here, at the boundary.

import http from "node:http";
import { KilnError } from "../../errors.js";
import type { Router, RouterStats, RoutingTable } from "../router.js";

export interface ProxyClientOptions {
  /** per admin call; default 5000 */
  timeoutMs?: number;
}

interface AdminResponse {
  status: number;
  body: unknown;
}

export class ProxyClient implements Router {
  private readonly timeoutMs: number;

  constructor(
    readonly socketPath: string,
    opts: ProxyClientOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? 5000;
  }

  async setTable(table: RoutingTable): Promise<void> {
    const r = await this.call("PUT", "/table", table);
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
    const r = await this.call("GET", "/stats");
    if (r.status !== 200) {
      throw new KilnError("KILN_E_CONTROLLER", `proxy stats failed (HTTP ${r.status}): ${errorMessage(r.body)}`, {
        hint: "see the proxy log",
      });
    }
    return r.body as RouterStats;
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

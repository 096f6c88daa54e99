// The proxy's admin API, served on a unix socket (file permissions are the
// access control: only the owner can change routing).
//
//   PUT /table   body RoutingTable (with releaseWeights / preview when set) → 200 {version};
//                400 {error, problems} bad table; 409 {error, currentVersion} older version
//   GET /stats   → 200 RouterStats (releases[*].latency histograms;
//                previewCounters; preview when the proxy has a preview listener)
//   GET /healthz → 200 {ok: true}
//   ?service=NAME on PUT /table and GET /stats: a service sharing the listener (routed by
//   the table's `route`); DELETE /table?service=NAME forgets one → {removed, remaining}

import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import type { RouterStats, RoutingTable } from "../router.js";
import { checkTable } from "./table.js";

/** Generous: 10,000 targets serialize to ~1.5 MB. */
const MAX_TABLE_BYTES = 32 * 1024 * 1024;

export type AcceptResult = { ok: true; version: number } | { ok: false; currentVersion: number };

export interface AdminDeps {
  /** `service`: "" for the listener's own service, else a service sharing the listener (?service=NAME) */
  acceptTable(table: RoutingTable, service: string): Promise<AcceptResult>;
  /** undefined: no such service */
  stats(service: string): RouterStats | undefined;
  /** forget a shared service (its fleet is gone); the number of services left */
  removeService(service: string): Promise<{ removed: boolean; remaining: number }>;
  log: (line: string) => void;
}

const SERVICE_RE = /^[a-z][a-z0-9-]{0,62}$/;

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": String(Buffer.byteLength(text)) });
  res.end(text);
}

function readJson(req: IncomingMessage): Promise<{ ok: true; value: unknown } | { ok: false; message: string }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooBig = false;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_TABLE_BYTES) tooBig = true;
      else chunks.push(c);
    });
    req.on("end", () => {
      if (tooBig) return resolve({ ok: false, message: `body larger than ${MAX_TABLE_BYTES} bytes` });
      try {
        resolve({ ok: true, value: JSON.parse(Buffer.concat(chunks).toString("utf8")) });
      } catch (e) {
        resolve({ ok: false, message: `body is not JSON: ${(e as Error).message}` });
      }
    });
    req.on("error", reject);
  });
}

export function createAdminHandler(deps: AdminDeps): RequestListener {
  return (req, res) => {
    const [pathname, query] = (req.url ?? "/").split("?") as [string, string | undefined];
    const route = `${req.method} ${pathname}`;
    const service = new URLSearchParams(query ?? "").get("service") ?? "";
    const handle = async (): Promise<void> => {
      if (service !== "" && !SERVICE_RE.test(service)) return send(res, 400, { error: `service: expected a kiln service name, got ${JSON.stringify(service.slice(0, 64))}` });
      switch (route) {
        case "GET /healthz":
          return send(res, 200, { ok: true });
        case "GET /stats": {
          const s = deps.stats(service);
          return s === undefined ? send(res, 404, { error: `no service ${service} on this proxy` }) : send(res, 200, s);
        }
        case "DELETE /table": {
          // The listener's own service is never removed (its table can only be replaced).
          if (service === "") return send(res, 405, { error: `method DELETE not allowed on /table (only on /table?service=NAME)` });
          return send(res, 200, await deps.removeService(service));
        }
        case "PUT /table": {
          const body = await readJson(req);
          if (!body.ok) return send(res, 400, { error: body.message });
          const checked = checkTable(body.value);
          if (!checked.ok) {
            return send(res, 400, { error: `invalid routing table: ${checked.problems.join("; ")}`, problems: checked.problems });
          }
          const r = await deps.acceptTable(checked.table, service);
          if (!r.ok) {
            return send(res, 409, {
              error: `table version ${checked.table.version} is older than the current version ${r.currentVersion}`,
              currentVersion: r.currentVersion,
            });
          }
          return send(res, 200, { version: r.version });
        }
        default:
          if (["/table", "/stats", "/healthz"].includes(route.split(" ")[1] ?? "")) {
            return send(res, 405, { error: `method ${req.method} not allowed on ${req.url}` });
          }
          return send(res, 404, { error: `no route ${route}` });
      }
    };
    handle().catch((e: unknown) => {
      deps.log(`admin ${route} failed: ${(e as Error).message}`);
      if (!res.headersSent) send(res, 500, { error: (e as Error).message });
      else res.destroy();
    });
  };
}

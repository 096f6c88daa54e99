// Answers the proxy gives itself, without an instance. Pure.

import { MAINTENANCE_DEFAULTS, type MaintenanceMode } from "../router.js";

export interface OwnResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Text for an HTML page: never markup. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/**
 * The maintenance answer (see RoutingTable.maintenance).
 *
 *   {}                                        → 503, retry-after "60", the default message
 *   {message: "Back at 14:00", retryAfterS: 600} → 503, retry-after "600", page says "Back at 14:00"
 *   {message: "<script>"}                     → page says "&lt;script&gt;"
 *
 * no-store: a cache in front must not keep serving the page once maintenance is off.
 */
export function maintenanceResponse(m: MaintenanceMode): OwnResponse {
  const message = escapeHtml(m.message ?? MAINTENANCE_DEFAULTS.message);
  const body =
    `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Down for maintenance</title>` +
    `<meta name="viewport" content="width=device-width, initial-scale=1"></head>\n` +
    `<body style="font-family: system-ui, sans-serif; max-width: 36em; margin: 4em auto; padding: 0 1em">` +
    `<h1>Down for maintenance</h1>\n<p>${message}</p></body></html>\n`;
  return {
    status: 503,
    headers: {
      "content-type": "text/html; charset=utf-8",
      "content-length": String(Buffer.byteLength(body)),
      "retry-after": String(m.retryAfterS ?? MAINTENANCE_DEFAULTS.retryAfterS),
      "cache-control": "no-store",
    },
    body,
  };
}

/**
 * Where a plain-HTTP request goes when the edge redirects HTTP to HTTPS: the
 * same host (its port replaced by the TLS listener's, omitted when 443) and
 * path. 308 keeps the method and body of a POST.
 *
 *   host "app.test:8080", path "/a?b=1", tls port 8443 → 308, location "https://app.test:8443/a?b=1"
 *   host "app.test", path "/", tls port 443            → 308, location "https://app.test/"
 *   host "[::1]:80", tls port 443                      → location "https://[::1]/"
 *   no host                                            → 400 (nowhere to send the client)
 */
export function httpsRedirect(host: string | undefined, path: string, tlsPort: number): OwnResponse {
  if (host === undefined || host === "" || /[\s/\\@]/.test(host)) {
    const body = "kiln: a Host header is required\n";
    return { status: 400, headers: { "content-type": "text/plain; charset=utf-8", "content-length": String(body.length) }, body };
  }
  const name = host.startsWith("[") ? host.slice(0, host.indexOf("]") + 1) : host.split(":")[0]!;
  const location = `https://${name}${tlsPort === 443 ? "" : `:${tlsPort}`}${path.startsWith("/") ? path : "/"}`;
  const body = `kiln: moved to ${location}\n`;
  return {
    status: 308,
    headers: { location, "content-type": "text/plain; charset=utf-8", "content-length": String(Buffer.byteLength(body)) },
    body,
  };
}

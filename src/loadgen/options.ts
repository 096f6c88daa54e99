// Load generator options: parsing and the loopback-only rule. Pure.

export interface LoadgenOptions {
  url: string;
  concurrency: number;
  durationMs: number;
  maxRequests: number;
  method: "GET" | "POST";
  reportEveryMs: number;
  /** per request */
  timeoutMs: number;
  /** POST body */
  body: string;
  /** stop when stdin closes (set by the client, so a dead parent never leaves load running) */
  stopOnStdinClose: boolean;
}

export const LIMITS = {
  concurrency: { min: 1, max: 1024, default: 8 },
  durationMs: { min: 1, max: 3_600_000, default: 60_000 },
  maxRequests: { min: 1, max: 100_000_000, default: 1_000_000 },
  reportEveryMs: { min: 10, max: 60_000, default: 200 },
  timeoutMs: { min: 1, max: 120_000, default: 10_000 },
} as const;

export type Parsed = { ok: true; options: LoadgenOptions } | { ok: false; error: string };

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "[::1]", "::1", "localhost"]);

/** Load is only ever aimed at this machine: refuse anything but an http(s) URL on a loopback host. */
export function checkLoopbackUrl(raw: string): { ok: true; url: URL } | { ok: false; error: string } {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { ok: false, error: `not a URL: ${JSON.stringify(raw)}` };
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    return { ok: false, error: `only http(s) URLs are supported, not ${url.protocol}` };
  if (!LOOPBACK_HOSTS.has(url.hostname.toLowerCase()))
    return { ok: false, error: `refusing to send load to ${url.hostname}: only 127.0.0.1, ::1 and localhost are allowed` };
  if (url.username || url.password) return { ok: false, error: "credentials in the URL are not supported" };
  return { ok: true, url };
}

const FLAGS: Record<string, keyof LoadgenOptions> = {
  "--url": "url",
  "--concurrency": "concurrency",
  "--duration-ms": "durationMs",
  "--max-requests": "maxRequests",
  "--method": "method",
  "--report-every-ms": "reportEveryMs",
  "--timeout-ms": "timeoutMs",
  "--body": "body",
};

export function parseArgs(argv: readonly string[]): Parsed {
  const o: LoadgenOptions = {
    url: "",
    concurrency: LIMITS.concurrency.default,
    durationMs: LIMITS.durationMs.default,
    maxRequests: LIMITS.maxRequests.default,
    method: "GET",
    reportEveryMs: LIMITS.reportEveryMs.default,
    timeoutMs: LIMITS.timeoutMs.default,
    body: "",
    stopOnStdinClose: false,
  };
  for (let i = 0; i < argv.length; i++) {
    let flag = argv[i] as string;
    let value: string | undefined;
    const eq = flag.indexOf("=");
    if (flag.startsWith("--") && eq > 0) {
      value = flag.slice(eq + 1);
      flag = flag.slice(0, eq);
    }
    if (flag === "--stop-on-stdin-close") {
      o.stopOnStdinClose = true;
      continue;
    }
    const key = FLAGS[flag];
    if (!key) return { ok: false, error: `unknown option ${flag}` };
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) return { ok: false, error: `${flag} needs a value` };
    }
    switch (key) {
      case "url":
      case "body":
        o[key] = value;
        break;
      case "method": {
        const m = value.toUpperCase();
        if (m !== "GET" && m !== "POST") return { ok: false, error: `--method must be GET or POST, got ${value}` };
        o.method = m;
        break;
      }
      case "concurrency":
      case "durationMs":
      case "maxRequests":
      case "reportEveryMs":
      case "timeoutMs": {
        const n = Number(value);
        const lim = LIMITS[key];
        if (!Number.isInteger(n) || n < lim.min || n > lim.max)
          return { ok: false, error: `${flag} must be an integer from ${lim.min} to ${lim.max}, got ${value}` };
        o[key] = n;
        break;
      }
      case "stopOnStdinClose":
        break;
    }
  }
  if (!o.url) return { ok: false, error: "--url is required" };
  const u = checkLoopbackUrl(o.url);
  if (!u.ok) return { ok: false, error: u.error };
  return { ok: true, options: o };
}

/** The argv main.js takes for these options (the client uses it). */
export function toArgs(o: Partial<LoadgenOptions> & { url: string }): string[] {
  const a = ["--url", o.url];
  if (o.concurrency !== undefined) a.push("--concurrency", String(o.concurrency));
  if (o.durationMs !== undefined) a.push("--duration-ms", String(o.durationMs));
  if (o.maxRequests !== undefined) a.push("--max-requests", String(o.maxRequests));
  if (o.method !== undefined) a.push("--method", o.method);
  if (o.reportEveryMs !== undefined) a.push("--report-every-ms", String(o.reportEveryMs));
  if (o.timeoutMs !== undefined) a.push("--timeout-ms", String(o.timeoutMs));
  if (o.body !== undefined) a.push("--body", o.body);
  if (o.stopOnStdinClose) a.push("--stop-on-stdin-close");
  return a;
}

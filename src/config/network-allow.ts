// kiln.yaml `network.allow`: which entries a local instance's egress can honour. Pure; the
// loader reports refusals with their location, the local provider turns entries into ports.

export type AllowParse = { ok: true; port: number } | { ok: false; reason: string; hint: string };

/**
 * One kiln.yaml `network.allow` entry. Only the host's IPv4 loopback can be named: pasta splices
 * a port of the namespace's loopback to the same port of the host's, and there is no route to
 * anywhere else by design (accessories on other machines are out of scope for the local provider).
 *
 *   "127.0.0.1:5432"   → port 5432
 *   "localhost:5432"   → refused: write 127.0.0.1:5432 (what the app dials inside is 127.0.0.1)
 *   "10.0.0.7:5432"    → refused: only the host's loopback can be allowed
 *   "127.0.0.1:0"      → refused: port 1–65535
 *   "127.0.0.1"        → refused: a port is needed
 */
export function parseAllowEntry(entry: string): AllowParse {
  const hint = 'write a host loopback TCP port as "127.0.0.1:PORT", e.g. "127.0.0.1:5432"';
  const m = /^(.*):(\d{1,5})$/.exec(entry.trim());
  if (!m) return { ok: false, reason: `${JSON.stringify(entry)} is not HOST:PORT`, hint };
  const host = m[1]!;
  const port = Number(m[2]);
  if (host === "localhost" || host === "[::1]" || host === "::1")
    return { ok: false, reason: `${JSON.stringify(entry)}: name the loopback as 127.0.0.1`, hint: `the instance dials 127.0.0.1:${port} inside its namespace; write "127.0.0.1:${port}"` };
  if (host !== "127.0.0.1")
    return {
      ok: false,
      reason: `${JSON.stringify(entry)}: only the host's loopback (127.0.0.1) can be allowed`,
      hint: "an instance's namespace has no route off the host; run a local relay on 127.0.0.1 for a remote accessory, or set network.mode: host",
    };
  if (port < 1 || port > 65535) return { ok: false, reason: `${JSON.stringify(entry)}: port ${port} is out of range`, hint: "use a port from 1 to 65535" };
  return { ok: true, port };
}

/** A declared env value that names a host loopback port a private local instance cannot dial. */
export interface UnreachableRef {
  env: string;
  port: number;
}

/**
 * Declared `env` values that name a loopback port (`127.0.0.1:P` or `localhost:P`, e.g. in a
 * DATABASE_URL) which a local instance in its own network namespace cannot dial because
 * `network.allow` does not list it — almost always an accessory the user forgot to allow.
 * Nothing for other providers or `network.mode: host`.
 *
 *   env DATABASE_URL "postgres://u@127.0.0.1:5432/db", allow []                    → [{ env: DATABASE_URL, port: 5432 }]
 *   env DATABASE_URL "postgres://u@127.0.0.1:5432/db", allow ["127.0.0.1:5432"]    → []
 *   env REDIS "redis://localhost:6379", provider docker                          → []
 *   env NOTE "see 127.0.0.1", allow []                                            → [] (no port)
 */
export function unreachableLoopbackRefs(spec: { provider: string; env: Record<string, string>; network: { mode: "private" | "host"; allow: string[] } }): UnreachableRef[] {
  if (spec.provider !== "local" || spec.network.mode !== "private") return [];
  const allowed = new Set(spec.network.allow.map((e) => parseAllowEntry(e)).flatMap((r) => (r.ok ? [r.port] : [])));
  const out: UnreachableRef[] = [];
  for (const [env, value] of Object.entries(spec.env)) {
    for (const m of value.matchAll(/(?:^|[^\w.-])(?:127\.0\.0\.1|localhost):(\d{1,5})(?!\d)/g)) {
      const port = Number(m[1]);
      if (port >= 1 && port <= 65535 && !allowed.has(port) && !out.some((r) => r.env === env && r.port === port)) out.push({ env, port });
    }
  }
  return out;
}

/** unreachableLoopbackRefs as the warnings `kiln validate` and `kiln deploy` print. */
export function unreachableLoopbackWarnings(spec: Parameters<typeof unreachableLoopbackRefs>[0]): string[] {
  return unreachableLoopbackRefs(spec).map(
    (u) => `env ${u.env} names 127.0.0.1:${u.port}, which a local instance (own network namespace) cannot dial: add "127.0.0.1:${u.port}" to network.allow, or set network.mode: host`,
  );
}

/**
 * kiln.yaml `network` as a release records it: only when it says more than the default (private,
 * nothing allowed), so releases recorded before the key existed keep their config hash.
 *
 *   { mode: "private", allow: [] }                  → undefined
 *   { mode: "private", allow: ["127.0.0.1:5432"] }  → { mode: "private", allow: ["127.0.0.1:5432"] }
 *   { mode: "host", allow: [] }                     → { mode: "host", allow: [] }
 */
export function isolationOf(network: { mode: "private" | "host"; allow: string[] }): { mode: "private" | "host"; allow: string[] } | undefined {
  return network.mode !== "private" || network.allow.length > 0 ? { mode: network.mode, allow: [...network.allow] } : undefined;
}

// Loopback ports. kiln binds and dials 127.0.0.1 only.

import { createServer, type AddressInfo } from "node:net";
import { readFileSync } from "node:fs";
import { KilnError } from "./errors.js";

/** Where picked ports come from unless KILN_PORT_RANGE says otherwise: below Linux's ephemeral range (32768–60999), as Nomad's dynamic ports are. */
export const DEFAULT_PORT_RANGE: readonly [number, number] = [20000, 32767];

/**
 * The range ports are picked from: KILN_PORT_RANGE ("LOW-HIGH") or the default, cut short of the
 * kernel's ephemeral range so an outgoing connection (a proxy's, a load generator's) never takes
 * a port between its pick and its bind. An unreadable or overlapping setting falls back to what
 * the kernel hands out (port 0).
 */
export function portRange(env: NodeJS.ProcessEnv = process.env, ephemeralLow = kernelEphemeralLow()): [number, number] | undefined {
  const raw = env.KILN_PORT_RANGE?.trim();
  let range: [number, number] = [...DEFAULT_PORT_RANGE];
  if (raw) {
    const m = /^(\d{1,5})\s*-\s*(\d{1,5})$/.exec(raw);
    if (!m) throw new KilnError("KILN_E_USAGE", `KILN_PORT_RANGE=${JSON.stringify(raw)} is not a port range`, { hint: "write it as LOW-HIGH, e.g. KILN_PORT_RANGE=20000-32767", details: [{ where: "environment", message: "KILN_PORT_RANGE" }] });
    range = [Number(m[1]), Number(m[2])];
    if (range[0] < 1024 || range[1] > 65535 || range[0] > range[1])
      throw new KilnError("KILN_E_USAGE", `KILN_PORT_RANGE=${raw} is out of bounds`, { hint: "LOW ≥ 1024, HIGH ≤ 65535 and LOW ≤ HIGH, e.g. KILN_PORT_RANGE=20000-32767", details: [{ where: "environment", message: "KILN_PORT_RANGE" }] });
    return range;
  }
  if (ephemeralLow !== undefined && range[1] >= ephemeralLow) range[1] = ephemeralLow - 1;
  return range[1] - range[0] >= 255 ? range : undefined;
}

function kernelEphemeralLow(): number | undefined {
  try {
    const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 0 ? low : undefined;
  } catch {
    return undefined;
  }
}

function bindAndRelease(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", () => resolve(undefined));
    srv.listen({ port, host: "127.0.0.1", exclusive: true }, () => {
      const got = (srv.address() as AddressInfo).port;
      srv.close(() => resolve(got));
    });
  });
}

// Ports this process handed out lately: not handed out again for a minute, whether or not the caller bound them yet.
const handedOut = new Map<number, number>();
const REUSE_AFTER_MS = 60_000;

/**
 * A TCP port free on 127.0.0.1 right now, from {@link portRange}: try to bind a random one, close
 * it, hand it out. Another process may still take it before the caller binds it; callers that
 * launch something on it must cope (an instance that cannot bind fails its health check and is
 * replaced). Picking outside the ephemeral range keeps outgoing connections from being that process.
 */
export async function freeLoopbackPort(): Promise<number> {
  const now = Date.now();
  for (const [p, at] of handedOut) if (at <= now - REUSE_AFTER_MS) handedOut.delete(p);
  const range = portRange();
  if (range) {
    const span = range[1] - range[0] + 1;
    for (let i = 0; i < 64; i++) {
      const candidate = range[0] + Math.floor(Math.random() * span);
      if (handedOut.has(candidate)) continue;
      const port = await bindAndRelease(candidate);
      if (port !== undefined) {
        handedOut.set(port, now);
        return port;
      }
    }
  }
  const port = await bindAndRelease(0);
  if (port === undefined) throw new Error("no free TCP port on 127.0.0.1");
  handedOut.set(port, now);
  return port;
}

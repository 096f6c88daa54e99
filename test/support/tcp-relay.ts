// `node dist/test/support/tcp-relay.js --listen HOST --to 127.0.0.1:PORT [--allow CIDR] [--duration-ms N]`
//
// A TCP relay for the Docker variant of the notes test. PostgreSQL here listens on
// 127.0.0.1 only, and a container on Docker's default bridge network has its own
// loopback, so it cannot reach the host's 127.0.0.1:5432. The relay listens on the
// bridge's gateway address (a host-local interface; containers reach the host there)
// and forwards every connection to the loopback-only target, so nothing leaves the
// host. Connections whose source is outside --allow (the bridge subnet) are refused.
// It prints {"port":N} once listening, and exits when stdin closes (its parent died)
// or after --duration-ms: it never outlives the test.

import { createServer, connect, BlockList, isIPv4, type Socket } from "node:net";

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}

const listenHost = arg("listen");
const to = arg("to") ?? "";
const allow = arg("allow");
const durationMs = Number(arg("duration-ms") ?? 600_000);
const m = /^(127\.0\.0\.1|\[::1\]):(\d+)$/.exec(to);
if (!listenHost || !m || !Number.isInteger(durationMs) || durationMs < 1 || durationMs > 3_600_000) {
  process.stderr.write("usage: tcp-relay --listen HOST --to 127.0.0.1:PORT [--allow CIDR] [--duration-ms N] (the target must be loopback)\n");
  process.exit(2);
}
const target = { host: m[1]!.replace(/[[\]]/g, ""), port: Number(m[2]) };

const allowed = new BlockList();
if (allow) {
  const [net, bits] = allow.split("/");
  allowed.addSubnet(net!, Number(bits), isIPv4(net!) ? "ipv4" : "ipv6");
}

const open = new Set<Socket>();
const server = createServer((client) => {
  const from = (client.remoteAddress ?? "").replace(/^::ffff:/, "");
  if (allow && !allowed.check(from, isIPv4(from) ? "ipv4" : "ipv6")) {
    client.destroy();
    return;
  }
  const upstream = connect(target.port, target.host);
  open.add(client);
  open.add(upstream);
  const close = () => {
    client.destroy();
    upstream.destroy();
    open.delete(client);
    open.delete(upstream);
  };
  client.on("error", close).on("close", close);
  upstream.on("error", close).on("close", close);
  client.pipe(upstream);
  upstream.pipe(client);
});

function shutdown(): void {
  server.close();
  for (const s of open) s.destroy();
  process.exit(0);
}

server.on("error", (e) => {
  process.stderr.write(`tcp-relay: ${e.message}\n`);
  process.exit(1);
});
server.listen(0, listenHost, () => {
  const a = server.address();
  process.stdout.write(JSON.stringify({ port: typeof a === "object" && a ? a.port : 0 }) + "\n");
});
setTimeout(shutdown, durationMs).unref();
process.stdin.on("end", shutdown).on("close", shutdown).resume();
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);

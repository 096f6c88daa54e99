#!/usr/bin/env node
// The proxy process:
//   node dist/src/traffic/proxy/main.js --listen 127.0.0.1:8080 --admin /path/proxy.sock \
//        --state /path/routes.json [--preview-listen 127.0.0.1:8081] [--log /path/proxy.log]
//
// stdout carries exactly one JSON line for whoever started us:
//   {"ready":true,"pid":123,"listen":"127.0.0.1:8080","admin":"/path/proxy.sock"}
//   (plus "preview":"127.0.0.1:8081" with --preview-listen)
//   {"ready":false,"error":{"code":"KILN_E_USAGE","message":"…","hint":"…","details":[{"where":"127.0.0.1:8080","path":"listen","message":"EADDRINUSE"}]}}
// Edge flags (TLS, timeouts, limits, metrics) are listed in USAGE below.
// Human-readable errors go to stderr; the log (table changes, health changes,
// failed attempts) to --log or stderr.

import { writeSync } from "node:fs";
import { parseArgs } from "node:util";
import { EXIT, KilnError, isKilnError } from "../../errors.js";
import { logToFile } from "../../log-line.js";
import { startProxy } from "./server.js";

const USAGE = `usage: main.js --listen HOST:PORT --admin SOCKET --state FILE [--preview-listen HOST:PORT] [--log FILE]

  --listen          address clients connect to, e.g. 127.0.0.1:8080
  --admin           unix socket for the admin API (PUT /table, GET /stats, GET /healthz)
  --state           file holding the last routing table (loaded at start, so routing resumes at once)
  --preview-listen  address serving only the routing table's preview release (blue-green
                    preview before promotion); default: none
  --log             append log lines here instead of stderr

edge (all optional; defaults in brackets):
  --instance-headers        add x-kiln-instance / x-kiln-release to responses [off]
  --max-body-bytes N        larger request bodies are refused with 413 [10485760]
  --header-timeout-ms N     time a client has to send its request headers [10000]
  --request-timeout-ms N    time a client has to send its whole request [300000]
  --keep-alive-timeout-ms N idle keep-alive client connections are closed after this [5000]
  --connect-timeout-ms N    connecting to an instance; then it is marked down and another tried [2000]
  --upstream-timeout-ms N   no byte from an instance for this long → 504 [60000]
  --tls-listen HOST:PORT    also serve HTTPS here (HTTP/2 by ALPN, HTTP/1.1 otherwise) [off]
  --tls-cert CERT:KEY       a PEM certificate and its key; repeat for several, chosen by SNI from
                            the names in each certificate; the first is the default
  --redirect-http           the plain --listen address answers 308 to https:// on the TLS listener [off]
  --metrics-listen HOST:PORT Prometheus metrics at GET /metrics there (keep it private) [off]
  --service NAME            the service label of the metrics [kiln]
  --tunnel-idle-timeout-ms N an upgraded connection (WebSocket) idle both ways this long is closed; 0 = never [3600000]

example:
  node dist/src/traffic/proxy/main.js --listen 127.0.0.1:8080 --admin .kiln/proxy.sock --state .kiln/routes.json
`;

function fail(e: unknown): never {
  const err = isKilnError(e) ? e : new KilnError("KILN_E_INTERNAL", (e as Error)?.message ?? String(e), { cause: e });
  process.stdout.write(JSON.stringify({ ready: false, error: { code: err.code, message: err.message, hint: err.hint, ...(err.details.length ? { details: err.details } : {}) } }) + "\n");
  process.stderr.write(`kiln proxy: ${err.code}: ${err.message}\n`);
  for (const d of err.details) process.stderr.write(`  ${d.where ? `${d.where}: ` : ""}${d.message}\n`);
  if (err.hint) process.stderr.write(`  hint: ${err.hint}\n`);
  process.exit(err.exitCode);
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        listen: { type: "string" },
        admin: { type: "string" },
        state: { type: "string" },
        log: { type: "string" },
        "preview-listen": { type: "string" },
        "instance-headers": { type: "boolean" },
        "max-body-bytes": { type: "string" },
        "header-timeout-ms": { type: "string" },
        "request-timeout-ms": { type: "string" },
        "keep-alive-timeout-ms": { type: "string" },
        "connect-timeout-ms": { type: "string" },
        "upstream-timeout-ms": { type: "string" },
        "tunnel-idle-timeout-ms": { type: "string" },
        "tls-listen": { type: "string" },
        "tls-cert": { type: "string", multiple: true },
        "redirect-http": { type: "boolean" },
        "metrics-listen": { type: "string" },
        service: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (e) {
    fail(new KilnError("KILN_E_USAGE", (e as Error).message, { hint: USAGE.split("\n")[0] }));
  }
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(EXIT.ok);
  }
  const missing = (["listen", "admin", "state"] as const).filter((k) => !values[k]);
  if (missing.length > 0) {
    fail(new KilnError("KILN_E_USAGE", `missing ${missing.map((m) => `--${m}`).join(", ")}`, { hint: USAGE.split("\n")[0] }));
  }

  // The fleet is served through this process: a log write that fails (a full disk) drops the
  // line and never ends it (log-line.ts). stderr is written with writeSync: a failed
  // process.stderr.write throws from inside the stream, or later as an unhandled 'error'.
  for (const s of [process.stdout, process.stderr]) s.on("error", () => undefined);
  const log = values.log ? logToFile(values.log) : logToFile("stderr", { append: (_file, text) => writeSync(2, text) });

  const num = (flag: keyof typeof values): number | undefined => {
    const v = values[flag];
    if (v === undefined) return undefined;
    const n = Number(v);
    if (typeof v !== "string" || v.trim() === "" || !Number.isSafeInteger(n) || n < 0) {
      fail(new KilnError("KILN_E_USAGE", `--${flag}: expected a whole number >= 0, got "${String(v)}"`, { hint: USAGE.split("\n")[0] }));
    }
    return n;
  };
  const limits = {
    maxBodyBytes: num("max-body-bytes"),
    headerTimeoutMs: num("header-timeout-ms"),
    requestTimeoutMs: num("request-timeout-ms"),
    keepAliveTimeoutMs: num("keep-alive-timeout-ms"),
    connectTimeoutMs: num("connect-timeout-ms"),
    upstreamTimeoutMs: num("upstream-timeout-ms"),
    tunnelIdleTimeoutMs: num("tunnel-idle-timeout-ms"),
  };

  const tlsCerts = (values["tls-cert"] ?? []).map((pair) => {
    const i = pair.lastIndexOf(":");
    if (i <= 0 || i === pair.length - 1) {
      fail(new KilnError("KILN_E_USAGE", `--tls-cert: expected CERT_FILE:KEY_FILE, got "${pair}"`, { hint: "e.g. --tls-cert /etc/kiln/app.pem:/etc/kiln/app.key" }));
    }
    return { cert: pair.slice(0, i), key: pair.slice(i + 1) };
  });
  if ((values["tls-listen"] === undefined) !== (tlsCerts.length === 0)) {
    fail(new KilnError("KILN_E_USAGE", "--tls-listen and --tls-cert go together", { hint: "give both (one --tls-cert per certificate), or neither" }));
  }
  if (values["redirect-http"] && values["tls-listen"] === undefined) {
    fail(new KilnError("KILN_E_USAGE", "--redirect-http needs --tls-listen", { hint: "the redirect goes to the TLS listener" }));
  }

  const proxy = await startProxy({
    listen: values.listen as string,
    admin: values.admin as string,
    stateFile: values.state as string,
    ...(values["preview-listen"] !== undefined ? { previewListen: values["preview-listen"] } : {}),
    ...Object.fromEntries(Object.entries(limits).filter(([, v]) => v !== undefined)),
    instanceHeaders: values["instance-headers"] === true,
    ...(values["metrics-listen"] !== undefined ? { metricsListen: values["metrics-listen"] } : {}),
    ...(values.service !== undefined ? { service: values.service } : {}),
    ...(values["tls-listen"] !== undefined
      ? { tls: { listen: values["tls-listen"], certificates: tlsCerts, redirectHttp: values["redirect-http"] === true } }
      : {}),
    log,
  });
  process.stdout.write(
    JSON.stringify({
      ready: true,
      pid: process.pid,
      listen: proxy.address,
      ...(proxy.previewAddress !== undefined ? { preview: proxy.previewAddress } : {}),
      ...(proxy.tlsAddress !== undefined ? { tls: proxy.tlsAddress } : {}),
      ...(proxy.metricsAddress !== undefined ? { metrics: proxy.metricsAddress } : {}),
      admin: proxy.adminSocket,
    }) + "\n",
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return; // a second signal does not cut the graceful close short; SIGKILL does
    stopping = true;
    log(`${signal}: closing`);
    proxy.close().then(
      () => {
        process.exit(EXIT.ok); // log lines are written synchronously: nothing to flush
      },
      (e: unknown) => {
        log(`close failed: ${(e as Error).message}`);
        process.exit(EXIT.failed);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

main().catch(fail);

#!/usr/bin/env node
// The proxy process:
//   node dist/src/traffic/proxy/main.js --listen 127.0.0.1:8080 --admin /path/proxy.sock \
//        --state /path/routes.json [--preview-listen 127.0.0.1:8081] [--log /path/proxy.log]
//
// stdout carries exactly one JSON line for whoever started us:
//   {"ready":true,"pid":123,"listen":"127.0.0.1:8080","admin":"/path/proxy.sock"}
//   (plus "preview":"127.0.0.1:8081" with --preview-listen)
//   {"ready":false,"error":{"code":"KILN_E_USAGE","message":"…","hint":"…"}}
// Human-readable errors go to stderr; the log (table changes, health changes,
// failed attempts) to --log or stderr.

import { createWriteStream, type WriteStream } from "node:fs";
import { parseArgs } from "node:util";
import { EXIT, KilnError, isKilnError } from "../../errors.js";
import { startProxy } from "./server.js";

const USAGE = `usage: main.js --listen HOST:PORT --admin SOCKET --state FILE [--preview-listen HOST:PORT] [--log FILE]

  --listen          address clients connect to, e.g. 127.0.0.1:8080
  --admin           unix socket for the admin API (PUT /table, GET /stats, GET /healthz)
  --state           file holding the last routing table (loaded at start, so routing resumes at once)
  --preview-listen  address serving only the routing table's preview release (blue-green
                    preview before promotion); default: none
  --log             append log lines here instead of stderr

example:
  node dist/src/traffic/proxy/main.js --listen 127.0.0.1:8080 --admin .kiln/proxy.sock --state .kiln/routes.json
`;

function fail(e: unknown): never {
  const err = isKilnError(e) ? e : new KilnError("KILN_E_INTERNAL", (e as Error)?.message ?? String(e), { cause: e });
  process.stdout.write(JSON.stringify({ ready: false, error: { code: err.code, message: err.message, hint: err.hint } }) + "\n");
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

  let logStream: WriteStream | undefined;
  if (values.log) logStream = createWriteStream(values.log, { flags: "a" });
  const log = (line: string) => {
    const text = `${new Date().toISOString()} ${line}\n`;
    if (logStream) logStream.write(text);
    else process.stderr.write(text);
  };

  const proxy = await startProxy({
    listen: values.listen as string,
    admin: values.admin as string,
    stateFile: values.state as string,
    ...(values["preview-listen"] !== undefined ? { previewListen: values["preview-listen"] } : {}),
    log,
  });
  process.stdout.write(
    JSON.stringify({
      ready: true,
      pid: process.pid,
      listen: proxy.address,
      ...(proxy.previewAddress !== undefined ? { preview: proxy.previewAddress } : {}),
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
        if (logStream) logStream.end(() => process.exit(EXIT.ok));
        else process.exit(EXIT.ok);
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

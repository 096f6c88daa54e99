// kiln's demo service. Plain ESM for the Node binary inside the image; no npm
// dependencies. Everything it is told at launch comes from the environment
// (PORT, KILN_INSTANCE_ID, DATA_DIR); everything else is baked into the image
// (this file and config/app.json). To change it, bake a new image.
//
//   GET  /         {"version","instance","counter"}: counter = hits over every instance, ever
//   GET  /healthz  200 "ok", or 500 when config/app.json says "healthy": false
//   GET  /version  {"version"}
//   POST /echo     the request body back, same content type
//
// The hit counter lives in the declared volume and is shared by every
// instance of the fleet, old release and new, at once. It must never go
// backwards, even while instances start, crash and are replaced mid-request.
// One shared counter.json with read-modify-write would need a lock, and a
// stale lock (an instance killed while holding it) must eventually be broken,
// after which a stalled holder can write an older value over a newer one.
// So instead each instance owns one shard, DATA_DIR/counter/<instance>.json,
// which only it writes (atomically: tmp + rename) and which only grows; the
// counter is the sum of all shards. No locks, no lost or doubled hits, and the
// sum read after a response cannot be lower than the sum read before it,
// whichever instances served the two. The cost: one small file per instance
// ever started (a demo fleet makes a few hundred at most) and a directory read
// per hit.

import { createServer } from "node:http";
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";

const MAX_ECHO_BYTES = 1 << 20;

function loadConfig() {
  const candidates = [new URL("./config/app.json", import.meta.url), "/app/config/app.json"];
  for (const c of candidates) {
    try {
      const cfg = JSON.parse(readFileSync(c, "utf8"));
      return {
        // the release's version, which kiln bake puts in the image's env; app.json's only outside an image
        version: String(process.env.KILN_IMAGE_VERSION || (cfg.version ?? "0.0.0")),
        healthy: cfg.healthy !== false,
        startupDelayMs: Number.isFinite(cfg.startupDelayMs) ? Math.max(0, cfg.startupDelayMs) : 0,
        // a deliberately slow release (the demo's canary): every GET / waits this long
        delayMs: Number.isFinite(cfg.delayMs) ? Math.max(0, cfg.delayMs) : 0,
      };
    } catch (e) {
      if (e.code !== "ENOENT") throw new Error(`cannot read ${c}: ${e.message}`);
    }
  }
  throw new Error("config/app.json is missing from the image");
}

const config = loadConfig();
const instance = process.env.KILN_INSTANCE_ID ?? hostname();
const port = Number(process.env.PORT ?? 8080);
const host = process.env.HOST ?? "127.0.0.1";
const shardDir = join(process.env.DATA_DIR ?? "/data", "counter");
const shardName = instance.replace(/[^A-Za-z0-9._-]/g, "_") + ".json";

function readShard(file) {
  try {
    const hits = JSON.parse(readFileSync(join(shardDir, file), "utf8")).hits;
    return Number.isSafeInteger(hits) && hits > 0 ? hits : 0;
  } catch {
    return 0; // gone, or (never, thanks to rename) half-written
  }
}

try {
  mkdirSync(shardDir, { recursive: true });
} catch (e) {
  // keep serving /healthz and /version; GET / answers 500 until the volume is there
  console.error(`${instance}: counter directory ${shardDir} unavailable: ${e.message}`);
}
// A restarted process with the same name continues its shard instead of resetting it.
let myHits = readShard(shardName);

/** Counts one hit and returns the fleet-wide total. Synchronous: one request at a time per process. */
function hit() {
  const next = myHits + 1;
  const tmp = join(shardDir, `.${shardName}.${process.pid}.tmp`);
  writeFileSync(tmp, JSON.stringify({ instance, hits: next }));
  renameSync(tmp, join(shardDir, shardName));
  myHits = next; // only once it is on disk
  let total = 0;
  for (const f of readdirSync(shardDir)) {
    if (f.endsWith(".json") && !f.startsWith(".")) total += f === shardName ? myHits : readShard(f);
  }
  return total;
}

let draining = false;

function send(res, status, body, type = "application/json") {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  res.writeHead(status, {
    "content-type": type,
    "content-length": Buffer.byteLength(text),
    // while draining, keep-alive clients are told to reconnect (to another instance)
    ...(draining ? { connection: "close" } : {}),
  });
  res.end(text);
}

const server = createServer((req, res) => {
  const path = (req.url ?? "/").split("?")[0];
  if (path === "/echo") {
    if (req.method !== "POST") return send(res, 405, { error: "use POST" });
    const chunks = [];
    let size = 0;
    req.on("data", (c) => {
      size += c.length;
      if (size > MAX_ECHO_BYTES) {
        send(res, 413, { error: `body over ${MAX_ECHO_BYTES} bytes` });
        req.destroy();
      } else chunks.push(c);
    });
    req.on("end", () => send(res, 200, Buffer.concat(chunks).toString("utf8"), req.headers["content-type"] ?? "application/octet-stream"));
    return;
  }
  if (req.method !== "GET" && req.method !== "HEAD") return send(res, 405, { error: "use GET" });
  switch (path) {
    case "/": {
      const answer = () => {
        try {
          return send(res, 200, { version: config.version, instance, counter: hit() });
        } catch (e) {
          return send(res, 500, { error: `counter unavailable: ${e.message}` });
        }
      };
      if (config.delayMs > 0) return void setTimeout(answer, config.delayMs);
      return answer();
    }
    case "/healthz":
      return config.healthy ? send(res, 200, "ok", "text/plain") : send(res, 500, "unhealthy (config/app.json)", "text/plain");
    case "/version":
      return send(res, 200, { version: config.version });
    default:
      return send(res, 404, { error: `no route ${path}` });
  }
});

function shutdown(signal) {
  if (draining) return;
  draining = true;
  console.log(`${instance}: ${signal}, draining`);
  // Stop accepting; requests already running finish. Idle keep-alive
  // connections are closed now, busy ones right after their response.
  server.close(() => {
    console.log(`${instance}: drained, exiting`);
    process.exit(0);
  });
  server.closeIdleConnections();
  setInterval(() => server.closeIdleConnections(), 100).unref();
}
process.on("SIGTERM", () => shutdown("SIGTERM"));
process.on("SIGINT", () => shutdown("SIGINT"));

server.on("error", (e) => {
  console.error(`${instance}: cannot serve on ${host}:${port}: ${e.message}`);
  process.exit(1);
});

// A realistic start: loading, warming caches… the port opens only afterwards.
setTimeout(() => {
  if (draining) return process.exit(0);
  server.listen(port, host, () => console.log(`${instance}: hello ${config.version} listening on ${host}:${port}`));
}, config.startupDelayMs);

// kiln's "state outside the fleet" example. Every instance is stateless: the
// notes live in PostgreSQL, an accessory kiln never replaces, which instances
// reach through declared environment (kiln.yaml `env: { DATABASE_URL: … }`).
// Old and new releases write to the same table while a rollout runs, so a
// replacement must never lose an acknowledged write or make one twice.
//
//   GET  /healthz        200 "ok" once the pool reaches the database, else 503
//   POST /notes          {"id": "<client-chosen>", "body": "…"} → 201 {"id","seq",…} only after COMMIT
//   GET  /notes/:id      {"id","count","notes":[…]}: every row with that id (404 if none)
//   GET  /notes?count    {"count": rows, "ids": distinct ids}
//
// The client chooses the id, and the table deliberately has NO unique
// constraint on it (the primary key is a serial): a request that was
// inserted twice (a retried POST, a replayed body) shows up as two rows
// instead of being silently absorbed, so a test can count doubles.
//
// Environment: DATABASE_URL (required), PORT, HOST, KILN_INSTANCE_ID,
// NOTES_VERSION (recorded on each row, so rows say which release wrote them).

import { createServer } from "node:http";
import { hostname } from "node:os";
import pg from "pg";

const MAX_BODY_BYTES = 64 * 1024;
const MAX_ID_LENGTH = 200;
/** pg_advisory_xact_lock key that serializes schema creation across instances */
const SCHEMA_LOCK = 0x6b696c6e; // "kiln"
const START_ATTEMPTS = 20;

const instance = process.env.KILN_INSTANCE_ID ?? hostname();
const version = process.env.NOTES_VERSION ?? "0.0.0";
const port = Number(process.env.PORT ?? 8080);
const host = process.env.HOST ?? "127.0.0.1";
const databaseUrl = process.env.DATABASE_URL;
if (!databaseUrl) {
  console.error(`${instance}: DATABASE_URL is not set; declare it in kiln.yaml: env: { DATABASE_URL: postgres://… }`);
  process.exit(1);
}

const pool = new pg.Pool({
  connectionString: databaseUrl,
  max: 4,
  connectionTimeoutMillis: 3000,
  idleTimeoutMillis: 10_000,
  // a statement that hangs (lock, dead server) fails the request instead of holding it forever
  statement_timeout: 5000,
  application_name: `notes ${version} ${instance}`.slice(0, 63),
});
// An idle client whose connection dies (server restart) emits here; without a
// listener the process would crash. The pool drops that client by itself.
pool.on("error", (e) => console.error(`${instance}: idle database connection lost: ${e.message}`));

/**
 * Creates the table if it is missing. Several instances start at once during a
 * rollout, and concurrent CREATE TABLE IF NOT EXISTS can still collide in the
 * catalog (duplicate key on pg_type), so creation runs under a transaction-scoped
 * advisory lock: one instance creates, the others wait and then find it there.
 */
async function ensureSchema() {
  const c = await pool.connect();
  try {
    await c.query("BEGIN");
    await c.query("SELECT pg_advisory_xact_lock($1)", [SCHEMA_LOCK]);
    await c.query(`CREATE TABLE IF NOT EXISTS notes (
      seq        bigserial PRIMARY KEY,
      id         text NOT NULL,          -- client-chosen; NOT unique on purpose: doubles stay visible
      body       text NOT NULL,
      instance   text NOT NULL,
      version    text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now()
    )`);
    await c.query("CREATE INDEX IF NOT EXISTS notes_id_idx ON notes (id)");
    await c.query("COMMIT");
  } catch (e) {
    await c.query("ROLLBACK").catch(() => undefined);
    throw e;
  } finally {
    c.release();
  }
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

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", (c) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) reject(Object.assign(new Error(`body over ${MAX_BODY_BYTES} bytes`), { status: 413 }));
      else chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
    // a client that goes away mid-body: nothing is inserted, and the promise does not hang
    req.on("close", () => {
      if (!req.complete) reject(new Error("client went away before the body ended"));
    });
  });
}

/** Inserts one note in its own transaction; resolves only once COMMIT has returned. */
async function insertNote(id, body) {
  const c = await pool.connect();
  let broken;
  try {
    await c.query("BEGIN");
    const r = await c.query(
      "INSERT INTO notes (id, body, instance, version) VALUES ($1, $2, $3, $4) RETURNING seq, created_at",
      [id, body, instance, version],
    );
    await c.query("COMMIT");
    return r.rows[0];
  } catch (e) {
    broken = e;
    // If COMMIT itself failed we cannot know whether it applied: the client gets
    // a 500 and must treat the write as "unknown outcome", never as "not written".
    await c.query("ROLLBACK").catch(() => undefined);
    throw e;
  } finally {
    // a client whose transaction failed is dropped rather than reused
    c.release(broken);
  }
}

async function route(req, res) {
  const url = new URL(req.url ?? "/", "http://notes");
  const path = url.pathname;
  if (path === "/healthz") {
    if (req.method !== "GET" && req.method !== "HEAD") return send(res, 405, { error: "use GET" });
    try {
      await pool.query("SELECT 1");
      return send(res, 200, "ok", "text/plain");
    } catch (e) {
      return send(res, 503, `database unreachable: ${e.message}`, "text/plain");
    }
  }
  if (path === "/notes") {
    if (req.method === "POST") {
      let note;
      try {
        note = JSON.parse(await readBody(req));
      } catch (e) {
        return send(res, e.status ?? 400, { error: e.status ? e.message : "body must be JSON: {\"id\": \"…\", \"body\": \"…\"}" });
      }
      const { id, body } = note ?? {};
      if (typeof id !== "string" || id.length === 0 || id.length > MAX_ID_LENGTH)
        return send(res, 400, { error: `id must be a string of 1–${MAX_ID_LENGTH} characters` });
      if (typeof body !== "string") return send(res, 400, { error: "body must be a string" });
      const row = await insertNote(id, body);
      return send(res, 201, { id, seq: Number(row.seq), instance, version, createdAt: row.created_at });
    }
    if (req.method !== "GET") return send(res, 405, { error: "use GET or POST" });
    if (url.searchParams.has("count")) {
      const r = await pool.query("SELECT count(*)::bigint AS count, count(DISTINCT id)::bigint AS ids FROM notes");
      return send(res, 200, { count: Number(r.rows[0].count), ids: Number(r.rows[0].ids) });
    }
    const r = await pool.query("SELECT seq, id, body, instance, version, created_at FROM notes ORDER BY seq DESC LIMIT 50");
    return send(res, 200, { notes: r.rows.map(toNote) });
  }
  if (path.startsWith("/notes/")) {
    if (req.method !== "GET") return send(res, 405, { error: "use GET" });
    const id = decodeURIComponent(path.slice("/notes/".length));
    const r = await pool.query("SELECT seq, id, body, instance, version, created_at FROM notes WHERE id = $1 ORDER BY seq", [id]);
    if (r.rows.length === 0) return send(res, 404, { error: `no note ${id}` });
    return send(res, 200, { id, count: r.rows.length, notes: r.rows.map(toNote) });
  }
  return send(res, 404, { error: `no route ${req.method} ${path}` });
}

function toNote(r) {
  return { seq: Number(r.seq), id: r.id, body: r.body, instance: r.instance, version: r.version, createdAt: r.created_at };
}

const server = createServer((req, res) => {
  route(req, res).catch((e) => {
    console.error(`${instance}: ${req.method} ${req.url}: ${e.message}`);
    if (!res.headersSent) send(res, 500, { error: e.message });
    else res.destroy();
  });
});

let shuttingDown = false;
function shutdown(signal) {
  if (shuttingDown) return;
  shuttingDown = true;
  draining = true;
  console.log(`${instance}: ${signal}, draining`);
  // Stop accepting; requests already running finish, each with its own
  // transaction, before the pool closes. Idle keep-alive connections are
  // closed now, busy ones right after their response.
  server.close(() => {
    pool.end().then(
      () => {
        console.log(`${instance}: drained, pool closed, exiting`);
        process.exit(0);
      },
      (e) => {
        console.error(`${instance}: closing the pool: ${e.message}`);
        process.exit(1);
      },
    );
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

// The port opens only once the schema is there, so no request can find the
// table missing. A database that is not up yet is retried a bounded number of
// times; after that the instance exits and kiln sees a failed launch.
async function start() {
  for (let attempt = 1; ; attempt++) {
    if (shuttingDown) return process.exit(0);
    try {
      await ensureSchema();
      break;
    } catch (e) {
      if (attempt >= START_ATTEMPTS) {
        console.error(`${instance}: database not ready after ${attempt} attempts: ${e.message}`);
        process.exit(1);
      }
      console.error(`${instance}: database not ready (${e.message}); retrying`);
      await new Promise((r) => setTimeout(r, Math.min(250 * attempt, 2000)));
    }
  }
  if (shuttingDown) return process.exit(0);
  server.listen(port, host, () => console.log(`${instance}: notes ${version} listening on ${host}:${port}`));
}
void start();

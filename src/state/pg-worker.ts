// The PostgreSQL state's connections, in a worker thread: pg is asynchronous and StateDb is
// synchronous, so pg-driver.ts posts each call here and blocks (synckit, Atomics.wait) until
// the answer comes back. One pg.Client per StateDb (a transaction is one connection's).
//
// Write exclusion and change detection share one row, kiln_state (id = 1):
// - every transaction that may write first locks that row (SELECT … FOR UPDATE), so writers
//   take turns on every host as they do on one SQLite file, and a read-then-write such as
//   acquireLease is atomic across hosts;
// - every committed write bumps its data_version; this connection counts its own bumps, and
//   data_version minus that count changes only when another connection committed, as SQLite's
//   PRAGMA data_version does (what StateDb's live-instance cache is checked against).

import pg from "pg";
import { runAsWorker } from "synckit";

export type PgRequest =
  | { op: "open"; connectionString: string; schema?: string }
  | { op: "query"; handle: number; mode: "run" | "get" | "all"; text: string; name: string; values: unknown[]; write: boolean; insertInto?: string }
  | { op: "exec"; handle: number; sql: string }
  | { op: "begin" | "commit" | "rollback" | "dataVersion" | "schemaVersion" | "close"; handle: number }
  | { op: "setSchemaVersion"; handle: number; version: number };

export type PgResponse =
  | { ok: true; value?: unknown; rows?: Record<string, unknown>[]; changes?: number; lastInsertRowid?: number; handle?: number }
  | { ok: false; message: string; code?: string; connect?: boolean };

interface Conn {
  client: pg.Client;
  connectionString: string;
  schema?: string;
  /** transaction depth: 0 outside, 1 in a transaction, more in savepoints */
  depth: number;
  /** the open transaction wrote (its commit bumps data_version) */
  wrote: boolean;
  /** data_version bumps this connection committed */
  own: number;
  broken: boolean;
  /** prepared statement names get this suffix, changed when a schema change invalidates their plans */
  gen: number;
  rowids: Map<string, string | null>;
}

const conns = new Map<number, Conn>();
let nextHandle = 1;

// epoch ms need int8, and pg hands int8 (and numeric) back as strings: parse them to numbers,
// as SQLite returns them; booleans as 1/0, as SQLite stores them.
const types = {
  getTypeParser(oid: number, format?: string) {
    if (oid === 20 || oid === 1700) return (v: string) => (v === null ? null : Number(v));
    if (oid === 16) return (v: string) => (v === null ? null : v === "t" ? 1 : 0);
    return pg.types.getTypeParser(oid, format as "text");
  },
};

const quoteIdent = (s: string) => `"${s.replace(/"/g, '""')}"`;

async function connect(c: Omit<Conn, "client">): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: c.connectionString, types, application_name: "kiln", connectionTimeoutMillis: 5000, keepAlive: true });
  // A lost connection (server restart, terminated backend, network) is opened again on the next
  // call outside a transaction; the call that meets it fails (a write is never retried blind).
  const lost = () => {
    const conn = [...conns.values()].find((x) => x.client === client);
    if (conn) conn.broken = true;
  };
  client.on("error", lost);
  client.on("end", lost);
  await client.connect();
  try {
    // A session stuck inside a transaction would hold the write lock for every host: PostgreSQL ends it.
    await client.query("SET idle_in_transaction_session_timeout = '30s'; SET lock_timeout = '20s'");
    if (c.schema) {
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(c.schema)}`);
      await client.query(`SET search_path TO ${quoteIdent(c.schema)}`);
    }
    // Two first starts at once must not both create the table: an advisory lock orders them.
    await client.query("BEGIN");
    await client.query("SELECT pg_advisory_xact_lock(hashtext('kiln_state bootstrap'))");
    await client.query("CREATE TABLE IF NOT EXISTS kiln_state (id INT PRIMARY KEY CHECK (id = 1), schema_version BIGINT NOT NULL, data_version BIGINT NOT NULL)");
    await client.query("INSERT INTO kiln_state (id, schema_version, data_version) VALUES (1, 0, 0) ON CONFLICT (id) DO NOTHING");
    await client.query("COMMIT");
  } catch (e) {
    await client.end().catch(() => undefined);
    throw e;
  }
  return client;
}

function conn(handle: number): Conn {
  const c = conns.get(handle);
  if (!c) throw Object.assign(new Error(`state connection ${handle} is closed`), { code: "KILN_CLOSED" });
  return c;
}

/** A connection lost between transactions is opened again; inside one, the transaction is lost. */
async function ready(c: Conn): Promise<void> {
  if (!c.broken) return;
  if (c.depth > 0) throw new Error("the connection to PostgreSQL was lost inside a transaction");
  c.client.end().catch(() => undefined);
  c.client = await connect(c);
  c.broken = false;
  c.gen++;
}

// One round trip each (a simple query may hold several statements).
const BEGIN_LOCKED = "BEGIN; SELECT data_version FROM kiln_state WHERE id = 1 FOR UPDATE";
const BUMP_COMMIT = "UPDATE kiln_state SET data_version = data_version + 1 WHERE id = 1; COMMIT";

async function rowidOf(c: Conn, table: string): Promise<string | null> {
  if (c.rowids.has(table)) return c.rowids.get(table)!;
  const r = await c.client.query(
    "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass($1) AND attidentity <> '' AND attnum > 0 AND NOT attisdropped ORDER BY attnum LIMIT 1",
    [table],
  );
  const col = (r.rows[0]?.attname as string | undefined) ?? null;
  c.rowids.set(table, col);
  return col;
}

async function statement(c: Conn, q: Extract<PgRequest, { op: "query" }>): Promise<PgResponse> {
  let text = q.text;
  if (q.insertInto && !/\bRETURNING\b/i.test(text)) {
    const col = await rowidOf(c, q.insertInto);
    if (col) text = `${text.replace(/\s*;?\s*$/, "")} RETURNING ${quoteIdent(col)} AS kiln_rowid`;
  }
  const run = (name?: string) => c.client.query({ text, values: q.values, ...(name ? { name } : {}) });
  let r: pg.QueryResult;
  try {
    r = await run(`${q.name}_${c.gen}`);
  } catch (e) {
    // Another kiln changed a table this statement reads (a migration): prepare it again.
    if ((e as { code?: string }).code !== "0A000" || c.depth > 0) throw e;
    c.gen++;
    r = await run(`${q.name}_${c.gen}`);
  }
  if (q.mode === "run") {
    const id = text !== q.text ? (r.rows[r.rows.length - 1]?.kiln_rowid as number | undefined) : undefined;
    return { ok: true, changes: r.rowCount ?? 0, lastInsertRowid: id ?? 0 };
  }
  return { ok: true, rows: q.mode === "get" ? r.rows.slice(0, 1) : r.rows };
}

/** A write outside a transaction: its own transaction, under the write lock, bumping data_version. */
async function autocommit<T>(c: Conn, fn: () => Promise<T>): Promise<T> {
  try {
    await c.client.query(BEGIN_LOCKED);
    const out = await fn();
    await c.client.query(BUMP_COMMIT);
    c.own++;
    return out;
  } catch (e) {
    await c.client.query("ROLLBACK").catch(() => undefined);
    throw e;
  }
}

async function handle(req: PgRequest): Promise<PgResponse> {
  if (req.op === "open") {
    const base = { connectionString: req.connectionString, schema: req.schema, depth: 0, wrote: false, own: 0, broken: false, gen: 0, rowids: new Map() };
    let client: pg.Client;
    try {
      client = await connect(base);
    } catch (e) {
      return { ok: false, message: (e as Error).message, code: (e as { code?: string }).code, connect: true };
    }
    const h = nextHandle++;
    conns.set(h, { ...base, client });
    return { ok: true, handle: h };
  }
  const c = conn(req.handle);
  if (req.op === "close") {
    conns.delete(req.handle);
    await c.client.end().catch(() => undefined);
    return { ok: true };
  }
  if (req.op === "rollback") {
    // After a lost connection there is nothing left to roll back.
    if (c.broken) {
      c.depth = 0;
      c.wrote = false;
      return { ok: true };
    }
    if (c.depth > 1) {
      await c.client.query(`ROLLBACK TO SAVEPOINT kiln_${c.depth}; RELEASE SAVEPOINT kiln_${c.depth}`);
    } else if (c.depth === 1) {
      await c.client.query("ROLLBACK");
      c.wrote = false;
    }
    c.depth = Math.max(0, c.depth - 1);
    return { ok: true };
  }
  await ready(c);
  switch (req.op) {
    case "query":
      if (req.write && c.depth === 0) return autocommit(c, () => statement(c, req));
      if (req.write) c.wrote = true;
      return statement(c, req);
    case "exec": {
      c.rowids.clear();
      if (c.depth === 0) await autocommit(c, () => c.client.query(req.sql));
      else {
        c.wrote = true;
        await c.client.query(req.sql);
      }
      return { ok: true };
    }
    case "begin":
      if (c.depth === 0) {
        try {
          await c.client.query(BEGIN_LOCKED);
        } catch (e) {
          await c.client.query("ROLLBACK").catch(() => undefined);
          throw e;
        }
        c.wrote = false;
      } else await c.client.query(`SAVEPOINT kiln_${c.depth + 1}`);
      c.depth++;
      return { ok: true };
    case "commit":
      if (c.depth > 1) await c.client.query(`RELEASE SAVEPOINT kiln_${c.depth}`);
      else if (c.depth === 1) {
        await c.client.query(c.wrote ? BUMP_COMMIT : "COMMIT");
        if (c.wrote) c.own++;
        c.wrote = false;
      }
      c.depth = Math.max(0, c.depth - 1);
      return { ok: true };
    case "dataVersion": {
      const r = await c.client.query("SELECT data_version FROM kiln_state WHERE id = 1");
      return { ok: true, value: (r.rows[0]!.data_version as number) - c.own };
    }
    case "schemaVersion": {
      const r = await c.client.query("SELECT schema_version FROM kiln_state WHERE id = 1");
      return { ok: true, value: r.rows[0]!.schema_version as number };
    }
    case "setSchemaVersion": {
      const set = () => c.client.query("UPDATE kiln_state SET schema_version = $1 WHERE id = 1", [req.version]);
      if (c.depth === 0) await autocommit(c, set);
      else {
        c.wrote = true;
        await set();
      }
      return { ok: true };
    }
  }
}

runAsWorker(async (req: PgRequest): Promise<PgResponse> => {
  try {
    return await handle(req);
  } catch (e) {
    const err = e as { message?: string; code?: string };
    // pg reports a dropped socket without an SQLSTATE: the connection is gone either way
    if ("handle" in req && /Connection terminated|not queryable|ECONNRESET|EPIPE/i.test(err.message ?? "")) {
      const c = conns.get(req.handle);
      if (c) c.broken = true;
    }
    return { ok: false, message: err.message ?? String(e), ...(err.code ? { code: err.code } : {}) };
  }
});

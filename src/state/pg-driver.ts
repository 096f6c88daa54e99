// The PostgreSQL state backend, for a state several hosts share (`state: postgres://…`).
// StateDb is synchronous, pg is not: every call goes to pg-worker.ts in a worker thread and
// this thread blocks until it answers (synckit). What that costs is a thread hop per
// statement; what it saves is rewriting every caller of StateDb to async.

import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import { KilnError } from "../errors.js";
import type { RunResult, StateDriver, Statement } from "./driver.js";
import { insertTarget, isReadOnly, redactUrl, toPostgres } from "./pg-dialect.js";
import type { PgRequest, PgResponse } from "./pg-worker.js";

/** How long one call may take before kiln gives up on PostgreSQL (connect, lock waits included). */
const CALL_TIMEOUT_MS = 60_000;

let callWorker: ((req: PgRequest) => PgResponse) | undefined;
function call(req: PgRequest): PgResponse {
  if (callWorker === undefined) {
    // synckit is loaded on the first call, not at import (most verbs never talk to PostgreSQL).
    const { createSyncFn } = createRequire(import.meta.url)("synckit") as typeof import("synckit");
    callWorker = createSyncFn(fileURLToPath(new URL("./pg-worker.js", import.meta.url)), { timeout: CALL_TIMEOUT_MS, execArgv: [] }) as (req: PgRequest) => PgResponse;
  }
  return callWorker(req);
}

const HINT = "check that PostgreSQL runs and answers at the `state:` URL (kiln.yaml or KILN_STATE); user and password come from the URL or PGUSER/PGPASSWORD";

/**
 * `postgres://…?schema=NAME` keeps kiln's tables in schema NAME (created when missing), so one
 * database can hold several teams' states (or one test file's); the parameter is kiln's, not libpq's.
 */
export function splitSchema(url: string): { connectionString: string; schema?: string } {
  const u = new URL(url);
  const schema = u.searchParams.get("schema") ?? undefined;
  if (schema !== undefined && !/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(schema)) {
    throw new KilnError("KILN_E_STATE", `state URL ${redactUrl(url)}: schema "${schema}" is not a plain identifier`, { hint: "use letters, digits and _ (at most 63), e.g. ?schema=kiln" });
  }
  u.searchParams.delete("schema");
  return { connectionString: u.toString(), ...(schema ? { schema } : {}) };
}

export class PgDriver implements StateDriver {
  readonly backend = "postgres" as const;
  readonly where: string;
  private handle: number;

  constructor(url: string) {
    this.where = redactUrl(url);
    const target = splitSchema(url);
    let r: PgResponse;
    try {
      r = call({ op: "open", ...target });
    } catch (cause) {
      throw new KilnError("KILN_E_STATE", `cannot reach the PostgreSQL state at ${this.where}: ${(cause as Error).message}`, { hint: HINT });
    }
    if (!r.ok) throw new KilnError("KILN_E_STATE", `cannot reach the PostgreSQL state at ${this.where}: ${redactUrl(r.message)}`, { hint: HINT });
    this.handle = r.handle!;
  }

  private send(req: PgRequest): Extract<PgResponse, { ok: true }> {
    let r: PgResponse;
    try {
      r = call(req);
    } catch (cause) {
      throw new KilnError("KILN_E_STATE", `the PostgreSQL state at ${this.where} did not answer: ${(cause as Error).message}`, { hint: HINT });
    }
    if (!r.ok) {
      const code = r.code ? ` (${r.code})` : "";
      throw new KilnError("KILN_E_STATE", `PostgreSQL state at ${this.where}: ${r.message}${code}`, {
        hint: r.code?.startsWith("08") || r.code === "57P01" ? HINT : "run `kiln doctor`; if it persists, report it with this message",
      });
    }
    return r;
  }

  prepare(sql: string): Statement {
    const { text } = toPostgres(sql);
    const write = !isReadOnly(sql);
    const insertInto = insertTarget(sql);
    const name = `k${createHash("sha1").update(text).digest("hex").slice(0, 24)}`;
    const query = (mode: "run" | "get" | "all", params: unknown[]) => {
      // better-sqlite3 binds one array argument as the parameters themselves; so does this driver.
      const values = (params.length === 1 && Array.isArray(params[0]) ? (params[0] as unknown[]) : params).map(bindable);
      return this.send({ op: "query", handle: this.handle, mode, text, name, values, write, ...(insertInto ? { insertInto } : {}) });
    };
    return {
      run: (...params: unknown[]): RunResult => {
        const r = query("run", params);
        return { changes: r.changes ?? 0, lastInsertRowid: r.lastInsertRowid ?? 0 };
      },
      get: (...params: unknown[]) => query("get", params).rows![0],
      all: (...params: unknown[]) => query("all", params).rows!,
    };
  }

  exec(sql: string): void {
    this.send({ op: "exec", handle: this.handle, sql: toPostgres(sql).text });
  }

  transaction<T>(fn: () => T): () => T {
    return () => {
      this.send({ op: "begin", handle: this.handle });
      let out: T;
      try {
        out = fn();
        this.send({ op: "commit", handle: this.handle });
      } catch (e) {
        try {
          this.send({ op: "rollback", handle: this.handle });
        } catch {
          // the first error is the one to report
        }
        throw e;
      }
      return out;
    };
  }

  dataVersion(): number {
    return this.send({ op: "dataVersion", handle: this.handle }).value as number;
  }
  schemaVersion(): number {
    return this.send({ op: "schemaVersion", handle: this.handle }).value as number;
  }
  setSchemaVersion(version: number): void {
    this.send({ op: "setSchemaVersion", handle: this.handle, version });
  }
  /** PostgreSQL checks its own pages; what kiln can check is that its state answers. */
  integrityCheck(): string[] {
    this.dataVersion();
    return ["ok"];
  }
  close(): void {
    try {
      call({ op: "close", handle: this.handle });
    } catch {
      // closing a connection the server already dropped
    }
  }
}

/** What SQLite would store for a JS value pg cannot bind as is. */
function bindable(v: unknown): unknown {
  if (v === undefined) return null;
  if (typeof v === "bigint") return v.toString();
  if (typeof v === "boolean") return v ? 1 : 0;
  return v;
}

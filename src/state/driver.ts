// The seam under StateDb: the small, synchronous subset of better-sqlite3 that StateDb uses,
// implemented once per backend (sqlite-driver.ts, the default; pg-driver.ts, for a state a
// team shares). StateDb's SQL is the same on both: a driver translates what differs.

export interface RunResult {
  changes: number;
  /** the inserted row's rowid (its INTEGER PRIMARY KEY when it has one) */
  lastInsertRowid: number | bigint;
}

/** A prepared statement; parameters are positional (`?`). */
export interface Statement {
  run(...params: unknown[]): RunResult;
  /** the first row, or undefined */
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}

export type StateBackend = "sqlite" | "postgres";

export interface StateDriver {
  readonly backend: StateBackend;
  /** where the state lives, for messages: a file, or a URL with its password hidden */
  readonly where: string;
  prepare(sql: string): Statement;
  /** one or more statements without parameters (migrations) */
  exec(sql: string): void;
  /**
   * Wraps `fn` so that a call runs it in one transaction (nested calls: a savepoint), as
   * better-sqlite3's `transaction` does. A transaction that writes excludes every other
   * writer of the same state until it ends, on every host that shares it.
   */
  transaction<T>(fn: () => T): () => T;
  /** Changes whenever another connection (process, host) commits a change; never for this connection's own. */
  dataVersion(): number;
  /** How many MIGRATIONS have run. */
  schemaVersion(): number;
  setSchemaVersion(version: number): void;
  /** ["ok"] when the store is sound, else one line per problem. */
  integrityCheck(): string[];
  close(): void;
}

/** A state location is PostgreSQL when it is a postgres:// or postgresql:// URL; anything else is an SQLite file. */
export function isPostgresLocation(location: string): boolean {
  return /^postgres(ql)?:\/\//i.test(location);
}

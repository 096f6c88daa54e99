// The default state backend: one SQLite file in KILN_HOME (better-sqlite3, synchronous).

import type Database from "better-sqlite3";
import { chmodSync, existsSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import { KilnError } from "../errors.js";
import type { StateDriver, Statement } from "./driver.js";

export class SqliteDriver implements StateDriver {
  readonly backend = "sqlite" as const;
  readonly where: string;
  /** the connection itself, for SQLite-only checks (tests, repair) */
  readonly raw: Database.Database;
  private readonly dataVersionStmt: Database.Statement;

  constructor(file: string) {
    this.where = file;
    if (file !== ":memory:") mkdirSync(dirname(file), { recursive: true });
    try {
      // required here, not at import: verbs that never open the state (`kiln status`) skip loading it
      const SqliteDatabase = createRequire(import.meta.url)("better-sqlite3") as typeof Database;
      this.raw = new SqliteDatabase(file);
      this.raw.pragma("journal_mode = WAL");
      this.raw.pragma("synchronous = FULL");
      this.raw.pragma("busy_timeout = 5000");
      // Releases hold declared env: the database and its WAL are the owner's alone, whatever the umask.
      if (file !== ":memory:") for (const f of [file, `${file}-wal`, `${file}-shm`]) if (existsSync(f)) chmodSync(f, 0o600);
      this.dataVersionStmt = this.raw.prepare("PRAGMA data_version").pluck();
    } catch (cause) {
      throw new KilnError("KILN_E_STATE", `cannot open state database ${file}`, { cause, hint: "check the file's permissions, or run `kiln doctor`" });
    }
  }

  prepare(sql: string): Statement {
    return this.raw.prepare(sql) as Statement;
  }
  exec(sql: string): void {
    this.raw.exec(sql);
  }
  transaction<T>(fn: () => T): () => T {
    return this.raw.transaction(fn) as () => T;
  }
  dataVersion(): number {
    return this.dataVersionStmt.get() as number;
  }
  schemaVersion(): number {
    return this.raw.pragma("user_version", { simple: true }) as number;
  }
  setSchemaVersion(version: number): void {
    if (!Number.isSafeInteger(version) || version < 0) throw new KilnError("KILN_E_INTERNAL", `bad schema version ${version}`);
    this.raw.pragma(`user_version = ${version}`);
  }
  integrityCheck(): string[] {
    return (this.raw.pragma("integrity_check") as Record<string, unknown>[]).map((r) => String(Object.values(r)[0]));
  }
  close(): void {
    this.raw.close();
  }
}

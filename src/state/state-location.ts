// Where a service's state lives. By default an SQLite file in KILN_HOME (one host); with
// `state: postgres://…` in kiln.yaml, or KILN_STATE in the environment (which wins, so a CI
// runner can point at its team's database without editing the file), a PostgreSQL database
// several hosts share. KILN_STATE=sqlite forces the default back. Credentials come from the
// URL or libpq's PG* variables (PGUSER, PGPASSWORD, ~/.pgpass); messages show the URL with
// its password hidden.

import { KilnError } from "../errors.js";
import { isPostgresLocation, type StateBackend } from "./driver.js";
import { redactUrl } from "./pg-dialect.js";

export interface StateLocation {
  backend: StateBackend;
  /** what StateDb opens: the SQLite file, or the PostgreSQL URL (secret: never print it) */
  location: string;
  /** for people and logs: the file, or the URL with its password hidden */
  shown: string;
  /** which setting chose it */
  from: "default" | "kiln.yaml" | "KILN_STATE";
}

/**
 * The state for a home. Examples:
 *
 *   (nothing set)                                  → sqlite, <home>/state.db, from "default"
 *   kiln.yaml state: postgres://db/kiln            → postgres, from "kiln.yaml"
 *   KILN_STATE=postgres://u:pw@db/kiln?schema=web  → postgres, shown "postgres://u:***@db/kiln?schema=web", from "KILN_STATE"
 *   KILN_STATE=sqlite (kiln.yaml names a URL)      → sqlite, <home>/state.db, from "KILN_STATE"
 *   KILN_STATE=/tmp/x.db                           → KILN_E_USAGE (a URL or "sqlite")
 */
export function resolveStateLocation(opts: { stateDb: string; specState?: string; env?: NodeJS.ProcessEnv }): StateLocation {
  const envValue = (opts.env ?? process.env).KILN_STATE;
  if (envValue !== undefined && envValue !== "") {
    if (envValue === "sqlite") return { backend: "sqlite", location: opts.stateDb, shown: opts.stateDb, from: "KILN_STATE" };
    if (!isPostgresLocation(envValue)) {
      throw new KilnError("KILN_E_USAGE", `KILN_STATE: expected a postgres:// URL or "sqlite", got "${redactUrl(envValue)}"`, {
        hint: 'e.g. KILN_STATE=postgres://kiln@db.internal:5432/kiln (password in PGPASSWORD), or unset it for the SQLite file in KILN_HOME',
      });
    }
    return { backend: "postgres", location: envValue, shown: redactUrl(envValue), from: "KILN_STATE" };
  }
  if (opts.specState !== undefined) return { backend: "postgres", location: opts.specState, shown: redactUrl(opts.specState), from: "kiln.yaml" };
  return { backend: "sqlite", location: opts.stateDb, shown: opts.stateDb, from: "default" };
}

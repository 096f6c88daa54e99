// Where a service's state lives. By default an SQLite file in KILN_HOME (one host); with
// `state: postgres://…` in kiln.yaml, or KILN_STATE in the environment (which wins, so a CI
// runner can point at its team's database without editing the file), a PostgreSQL database
// several hosts share. KILN_STATE=sqlite forces the default back. Credentials come from the
// URL or libpq's PG* variables (PGUSER, PGPASSWORD, ~/.pgpass); messages show the URL with
// its password hidden.

import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
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
 *   state: postgres://db/kiln, environment staging → postgres://db/kiln?schema=kiln_staging
 *   state: postgres://db/kiln?schema=web, env prod → postgres://db/kiln?schema=web_prod
 *
 * An environment keeps its own state, as it keeps its own SQLite file (env/NAME/state.db): on
 * PostgreSQL, its own schema beside the base one.
 */
export function resolveStateLocation(opts: { stateDb: string; specState?: string; env?: NodeJS.ProcessEnv; environment?: string }): StateLocation {
  const pg = (url: string, from: StateLocation["from"]): StateLocation => {
    const location = opts.environment === undefined ? url : environmentSchema(url, opts.environment);
    return { backend: "postgres", location, shown: redactUrl(location), from };
  };
  const envValue = (opts.env ?? process.env).KILN_STATE;
  if (envValue !== undefined && envValue !== "") {
    if (envValue === "sqlite") return { backend: "sqlite", location: opts.stateDb, shown: opts.stateDb, from: "KILN_STATE" };
    if (!isPostgresLocation(envValue)) {
      throw new KilnError("KILN_E_USAGE", `KILN_STATE: expected a postgres:// URL or "sqlite", got "${redactUrl(envValue)}"`, {
        hint: 'e.g. KILN_STATE=postgres://kiln@db.internal:5432/kiln (password in PGPASSWORD), or unset it for the SQLite file in KILN_HOME',
      });
    }
    return pg(envValue, "KILN_STATE");
  }
  if (opts.specState !== undefined) return pg(opts.specState, "kiln.yaml");
  return { backend: "sqlite", location: opts.stateDb, shown: opts.stateDb, from: "default" };
}

/** The URL of an environment's own schema: the base schema (default "kiln") + "_" + the environment, "-" as "_". */
export function environmentSchema(url: string, environment: string): string {
  const u = new URL(url);
  const base = u.searchParams.get("schema") ?? "kiln";
  u.searchParams.set("schema", `${base}_${environment.replace(/-/g, "_")}`);
  return u.toString();
}

/**
 * Every state database of a home: the top level's and each environment's (env/NAME/state.db;
 * on a shared PostgreSQL state, the base schema and each environment's). The image store is
 * shared by all of them: `kiln gc` pins what each one's releases need, `kiln outdated` and
 * `kiln images --tree` read each one's releases. SQLite files that do not exist are left out.
 */
export function homeStateLocations(home: string, state: string | undefined): { environment?: string; file: string }[] {
  const envRoot = join(home, "env");
  const envs = existsSync(envRoot) ? readdirSync(envRoot).filter((n) => /^[a-z][a-z0-9-]{0,30}$/.test(n)).sort() : [];
  if (state !== undefined && isPostgresLocation(state)) return [{ file: state }, ...envs.map((e) => ({ environment: e, file: environmentSchema(state, e) }))];
  return [{ file: state ?? join(home, "state.db") }, ...envs.map((e) => ({ environment: e, file: join(envRoot, e, "state.db") }))].filter((f) => existsSync(f.file));
}

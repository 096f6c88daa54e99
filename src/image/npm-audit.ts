// npm's own advisory check for an image's npm packages: `npm audit --json --package-lock-only`
// run over a lockfile rebuilt from the SBOM (the packages the dependencies layer holds, at their
// lockfile paths), which asks the registry's bulk advisory endpoint. Pure here: the lockfile
// and the reading of npm's report; ops/outdated.ts runs npm (argv from npmAuditArgv).

import { jsonOrUndefined, type NpmAdvisory } from "./osv.js";

export interface LockedPackage {
  /** the lockfile key, e.g. "node_modules/pg" */
  path: string;
  name: string;
  version: string;
}

/**
 * A package-lock.json (v3) holding exactly `packages`; the top-level ones are the root's
 * dependencies, so npm sees none of them as extraneous.
 *
 * [{ path: "node_modules/pg", name: "pg", version: "8.7.0" }, { path: "node_modules/pg/node_modules/x", name: "x", version: "1.0.0" }]
 *   → packages { "": { dependencies: { pg: "8.7.0" } }, "node_modules/pg": { version: "8.7.0" }, "node_modules/pg/node_modules/x": { version: "1.0.0" } }
 */
export function auditLockfile(packages: readonly LockedPackage[]): { packageJson: string; lockfile: string } {
  const top = Object.fromEntries(packages.filter((p) => p.path === `node_modules/${p.name}`).map((p) => [p.name, p.version]));
  const root = { name: "kiln-outdated-audit", version: "0.0.0", dependencies: top };
  const entries: Record<string, unknown> = { "": root };
  for (const p of [...packages].sort((a, b) => (a.path < b.path ? -1 : 1))) entries[p.path] = { version: p.version, ...(p.path.endsWith(`node_modules/${p.name}`) ? {} : { name: p.name }) };
  return {
    packageJson: `${JSON.stringify(root, null, 2)}\n`,
    lockfile: `${JSON.stringify({ name: root.name, version: root.version, lockfileVersion: 3, requires: true, packages: entries }, null, 2)}\n`,
  };
}

export function npmAuditArgv(): string[] {
  return ["npm", "audit", "--json", "--package-lock-only", "--audit-level", "none"];
}

type Via = { source?: number | string; name?: string; title?: string; url?: string; range?: string };

/**
 * `npm audit --json` (npm 7+) → the advisories per lockfile path. Each vulnerable package
 * lists `via` (advisory objects, or names of the vulnerable dependencies it pulls in: those
 * are that package's own entries) and `nodes` (its lockfile paths). Undefined: not a report.
 *
 * {"vulnerabilities":{"pg":{"name":"pg","via":[{"source":1,"title":"bad","url":"https://github.com/advisories/GHSA-x"}],"nodes":["node_modules/pg"],"fixAvailable":{"name":"pg","version":"8.7.1"}}}}
 *   → node_modules/pg → [{ id: "GHSA-x", summary: "bad", fixed: "8.7.1" }]
 */
export function parseNpmAudit(text: string): Map<string, NpmAdvisory[]> | undefined {
  const doc = jsonOrUndefined(text) as { vulnerabilities?: Record<string, { name?: string; via?: (Via | string)[]; nodes?: string[]; fixAvailable?: boolean | { name?: string; version?: string } }> } | undefined;
  if (!doc || typeof doc !== "object" || typeof doc.vulnerabilities !== "object") return undefined;
  const out = new Map<string, NpmAdvisory[]>();
  for (const v of Object.values(doc.vulnerabilities ?? {})) {
    const own = (v.via ?? []).filter((x): x is Via => typeof x === "object" && x !== null);
    if (own.length === 0) continue;
    // npm's fix for this package itself (a fix through a parent's major bump names the parent)
    const fix = typeof v.fixAvailable === "object" && v.fixAvailable.name === v.name ? v.fixAvailable.version : undefined;
    const advisories = own
      .map((x) => ({ id: x.url ? (x.url.split("/").pop() ?? x.url) : String(x.source ?? x.title ?? "advisory"), ...(x.title ? { summary: x.title } : {}), ...(fix ? { fixed: fix } : {}) }))
      .filter((a, i, all) => all.findIndex((b) => b.id === a.id) === i)
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    for (const node of v.nodes ?? []) out.set(node, advisories);
  }
  return out;
}

// Known advisories for npm packages, from an OSV file (https://ossf.github.io/osv-schema/):
// one vulnerability object, an array of them, or `{ "vulns": [...] }` as osv.dev's
// query API and `osv-scanner --format json` style exports hold them. Pure.

import { compareSemver } from "./versions.js";

export interface OsvVuln {
  id: string;
  summary?: string;
  aliases?: string[];
  affected?: {
    package?: { ecosystem?: string; name?: string };
    versions?: string[];
    ranges?: { type?: string; events?: { introduced?: string; fixed?: string; last_affected?: string }[] }[];
  }[];
}

/** JSON text → its value; undefined when it is not JSON (a user's file or a tool's output: the caller says what it expected). */
export function jsonOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** An OSV document's vulnerabilities; undefined when the text is not one (the caller reports bad input). */
export function parseOsv(text: string): OsvVuln[] | undefined {
  const doc = jsonOrUndefined(text);
  const list = Array.isArray(doc) ? doc : doc && typeof doc === "object" && Array.isArray((doc as { vulns?: unknown }).vulns) ? (doc as { vulns: unknown[] }).vulns : doc && typeof doc === "object" && "id" in doc ? [doc] : undefined;
  if (!list) return undefined;
  return list.filter((v): v is OsvVuln => !!v && typeof v === "object" && typeof (v as OsvVuln).id === "string");
}

/** Whether `version` falls in one SEMVER/ECOSYSTEM range's events (introduced ≤ v < fixed, or ≤ last_affected). */
function inRange(version: string, events: { introduced?: string; fixed?: string; last_affected?: string }[]): boolean {
  let affected = false;
  for (const e of events) {
    if (e.introduced !== undefined && (e.introduced === "0" || compareSemver(version, e.introduced) >= 0)) affected = true;
    if (e.fixed !== undefined && compareSemver(version, e.fixed) >= 0) affected = false;
    if (e.last_affected !== undefined && compareSemver(version, e.last_affected) > 0) affected = false;
  }
  return affected;
}

export interface NpmAdvisory {
  id: string;
  summary?: string;
  /** the lowest `fixed` version above the installed one, when the advisory names one */
  fixed?: string;
}

/**
 * The advisories of `vulns` that affect npm package `name` at `version`: listed
 * in `versions`, or inside a range (events in order, as OSV writes them).
 *
 * - pg 8.7.0, {affected: [{package: {ecosystem: "npm", name: "pg"}, ranges: [{type: "SEMVER", events: [{introduced: "0"}, {fixed: "8.7.1"}]}]}]}
 *     → [{ id, fixed: "8.7.1" }]
 * - pg 8.7.1, same advisory → [] (fixed); pg 8.7.0 under ecosystem "PyPI" → []
 */
export function npmAdvisoriesFor(vulns: readonly OsvVuln[], name: string, version: string): NpmAdvisory[] {
  const out: NpmAdvisory[] = [];
  for (const v of vulns) {
    for (const a of v.affected ?? []) {
      if (a.package?.ecosystem !== "npm" || a.package.name !== name) continue;
      const listed = a.versions?.includes(version) ?? false;
      const ranges = (a.ranges ?? []).filter((r) => r.type === "SEMVER" || r.type === "ECOSYSTEM");
      if (!listed && !ranges.some((r) => inRange(version, r.events ?? []))) continue;
      const fixes = ranges.flatMap((r) => (r.events ?? []).map((e) => e.fixed).filter((f): f is string => f !== undefined && compareSemver(f, version) > 0));
      const fixed = fixes.sort(compareSemver)[0];
      out.push({ id: v.id, ...(v.summary ? { summary: v.summary } : {}), ...(fixed ? { fixed } : {}) });
      break;
    }
  }
  return out.sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
}

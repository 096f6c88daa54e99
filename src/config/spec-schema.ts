// kiln.yaml's schema at run time: plain JSON that the build wrote from schema.ts
// (scripts/postbuild.mjs → dist/src/config/spec-schema.json), so no verb loads TypeBox
// (~200 modules, 0.2–0.4 s of a short verb's start). Types still come from schema.ts,
// through `import type` only.
//
// A build without the postbuild step (tsc alone) has no JSON, or an older one: the schema is then
// taken from schema.ts itself. Same data, only slower (test/config/spec-schema.test.ts holds them equal).

import { readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { KilnError } from "../errors.js";

/** A JSON Schema node as data (TypeBox's symbol keys are not in it). */
export type SchemaJson = Readonly<Record<string, unknown>>;

/** The file postbuild writes next to this module. */
export const SPEC_SCHEMA_FILE = "spec-schema.json";

let cached: SchemaJson | undefined;

/** The schema as JSON data, read once and kept (callers must not change it). */
export function specSchema(): SchemaJson {
  cached ??= fromBuild() ?? fromSource();
  return cached;
}

function fromBuild(): SchemaJson | undefined {
  const file = new URL(`./${SPEC_SCHEMA_FILE}`, import.meta.url);
  try {
    // A later tsc alone leaves the JSON of an older schema behind: then it is not the schema.
    const written = statSync(file).mtimeMs;
    if (["./schema.js", "./schema-constants.js"].some((m) => statSync(new URL(m, import.meta.url)).mtimeMs > written)) return undefined;
    return JSON.parse(readFileSync(file, "utf8")) as SchemaJson;
  } catch {
    return undefined;
  }
}

function fromSource(): SchemaJson {
  // require() of an ES module: synchronous, so specSchema() stays a plain function (Node ≥ 20.19).
  let source: typeof import("./schema.js");
  try {
    source = createRequire(import.meta.url)("./schema.js") as typeof import("./schema.js");
  } catch (e) {
    throw new KilnError("KILN_E_INTERNAL", `kiln's build is incomplete: no ${SPEC_SCHEMA_FILE} next to ${new URL(import.meta.url).pathname}`, {
      hint: "build kiln with `npm run build` (its postbuild step writes the file)",
      cause: e,
    });
  }
  return JSON.parse(JSON.stringify(source.KilnSpecSchema)) as SchemaJson;
}

// The CycloneDX 1.6 JSON schema as the library ships it (res/schema), compiled
// with ajv 8 (draft-07) + ajv-formats. The library's own validator needs a
// third optional package (ajv-formats-draft2019) kiln does not install; the
// schema is the same. ajv-formats lacks "iri-reference" and "idn-email":
// an IRI reference is checked as a string without whitespace or control
// characters (kiln writes only ASCII URLs), any string passes "idn-email"
// (kiln writes no e-mail addresses).

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { Ajv, type ValidateFunction } from "ajv";
import addFormatsModule from "ajv-formats";

const require = createRequire(import.meta.url);
// ajv-formats is CommonJS: its function is the default export's `default` under Node's ESM interop
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: Ajv) => Ajv;

const SCHEMA_DIR = join(dirname(require.resolve("@cyclonedx/cyclonedx-library/package.json")), "res", "schema");
const load = (name: string) => JSON.parse(readFileSync(join(SCHEMA_DIR, name), "utf8")) as Record<string, unknown>;

let validate: ValidateFunction | undefined;

/** Errors of `doc` against the CycloneDX 1.6 schema ([] when valid). */
export function cyclonedxErrors(doc: unknown): string[] {
  if (!validate) {
    const ajv = new Ajv({ strict: false, allErrors: true });
    addFormats(ajv);
    ajv.addFormat("idn-email", true);
    ajv.addFormat("iri-reference", /^[^\s\u0000-\u001f\u007f]*$/u);
    // bom-1.6 refers to its neighbours by their SNAPSHOT file names
    for (const name of ["spdx.SNAPSHOT.schema.json", "jsf-0.82.SNAPSHOT.schema.json", "cryptography-defs.SNAPSHOT.schema.json"]) {
      ajv.addSchema({ ...load(name), $id: `http://cyclonedx.org/schema/${name}` });
    }
    validate = ajv.compile(load("bom-1.6.SNAPSHOT.schema.json"));
  }
  return validate(doc) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message ?? ""}`);
}

// The kiln.yaml validator: Ajv's code for the kiln.yaml schema (spec-schema.ts). Compiling it costs a few hundred ms
// of CPU, most of what a short verb such as `kiln simulate` spends before its own work, so the
// build writes the compiled code once (scripts/postbuild.mjs → dist/src/config/spec-validator.cjs,
// Ajv's standalone code) and it is loaded here when it was generated from this very schema and
// these options (their hash). Otherwise (a build without the postbuild step, a schema edited
// since) Ajv compiles it as before: the two are the same validator, only the cost differs.

import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import type { Options, ValidateFunction } from "ajv";
import { specSchema } from "./spec-schema.js";

/** useDefaults fills defaults into the data while validating, so later checks see the documented defaults. */
export const VALIDATOR_OPTIONS: Readonly<Options> = { allErrors: true, verbose: true, useDefaults: true, strict: true };

/** What the generated code must have been generated from. */
export function validatorSourceHash(): string {
  return createHash("sha256").update(JSON.stringify({ options: VALIDATOR_OPTIONS, schema: specSchema() })).digest("hex");
}

const require = createRequire(import.meta.url);
let compiled: ValidateFunction | undefined;

/** The validator, built on first use and kept (it holds no state between calls). */
export function specValidator(): ValidateFunction {
  compiled ??= precompiled() ?? new (require("ajv") as typeof import("ajv")).Ajv({ ...VALIDATOR_OPTIONS }).compile(specSchema());
  return compiled;
}

function precompiled(): ValidateFunction | undefined {
  let v: (ValidateFunction & { sourceHash?: string }) | undefined;
  try {
    v = require("./spec-validator.cjs") as ValidateFunction & { sourceHash?: string };
  } catch {
    return undefined; // not generated (tsc alone): compile instead
  }
  return v.sourceHash === validatorSourceHash() ? v : undefined;
}

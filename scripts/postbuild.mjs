// After tsc: make the kiln bin executable, write kiln.yaml's schema as JSON and the validator's compiled code
// (Ajv standalone) so a verb does not compile it at start-up (see src/config/validator.ts,
// which loads it only when it was generated from the same schema and options).
import { chmodSync, copyFileSync, existsSync, writeFileSync } from "node:fs";
import { Ajv } from "ajv";
import standalone from "ajv/dist/standalone/index.js";

const bin = new URL("../dist/src/cli/main.js", import.meta.url);
if (existsSync(bin)) chmodSync(bin, 0o755);

// The dashboard's page is served from next to its module (src/server/dashboard.ts).
if (existsSync(new URL("../dist/src/server/", import.meta.url))) {
  copyFileSync(new URL("../src/server/dashboard.html", import.meta.url), new URL("../dist/src/server/dashboard.html", import.meta.url));
}

// kiln.yaml's schema as plain JSON, so that run time never loads TypeBox (src/config/spec-schema.ts);
// written before the validator, whose source hash is taken over it.
const schemaModule = new URL("../dist/src/config/schema.js", import.meta.url);
if (existsSync(schemaModule)) {
  const { KilnSpecSchema } = await import(schemaModule.href);
  writeFileSync(new URL("../dist/src/config/spec-schema.json", import.meta.url), JSON.stringify(KilnSpecSchema));
}

const validatorModule = new URL("../dist/src/config/validator.js", import.meta.url);
if (existsSync(validatorModule)) {
  const { VALIDATOR_OPTIONS, validatorSourceHash } = await import(validatorModule.href);
  const { specSchema } = await import(new URL("../dist/src/config/spec-schema.js", import.meta.url).href);
  const ajv = new Ajv({ ...VALIDATOR_OPTIONS, code: { source: true } });
  const code = standalone.default(ajv, ajv.compile(specSchema()));
  writeFileSync(new URL("../dist/src/config/spec-validator.cjs", import.meta.url), `${code}\nmodule.exports.sourceHash = ${JSON.stringify(validatorSourceHash())};\n`);
}

// The verbs `kiln --help` lists without loading their modules (src/cli/program.ts), taken from
// the modules themselves so the two cannot differ.
const programModule = new URL("../dist/src/cli/program.js", import.meta.url);
if (existsSync(programModule)) {
  const { fullProgram, helpIndexOf, HELP_INDEX_FILE } = await import(programModule.href);
  writeFileSync(new URL(`../dist/src/cli/${HELP_INDEX_FILE}`, import.meta.url), `${JSON.stringify(helpIndexOf(await fullProgram()), null, 1)}\n`);
}

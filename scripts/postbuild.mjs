// After tsc: make the kiln bin executable, and write the kiln.yaml validator's compiled code
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

const validatorModule = new URL("../dist/src/config/validator.js", import.meta.url);
if (existsSync(validatorModule)) {
  const { VALIDATOR_OPTIONS, validatorSourceHash } = await import(validatorModule.href);
  const { KilnSpecSchema } = await import(new URL("../dist/src/config/schema.js", import.meta.url).href);
  const ajv = new Ajv({ ...VALIDATOR_OPTIONS, code: { source: true } });
  const code = standalone.default(ajv, ajv.compile(KilnSpecSchema));
  writeFileSync(new URL("../dist/src/config/spec-validator.cjs", import.meta.url), `${code}\nmodule.exports.sourceHash = ${JSON.stringify(validatorSourceHash())};\n`);
}

// Run time reads kiln.yaml's schema as JSON that the build wrote (spec-schema.ts); these hold it
// equal to the TypeBox definition it was written from, so the two can never drift.

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { jsonSchemaText } from "../../src/config/index.js";
import { KilnSpecSchema } from "../../src/config/schema.js";
import { SPEC_SCHEMA_FILE, specSchema } from "../../src/config/spec-schema.js";
import { validatorSourceHash } from "../../src/config/validator.js";

const built = new URL(`../../src/config/${SPEC_SCHEMA_FILE}`, import.meta.url);
const fromTypeBox = () => JSON.parse(JSON.stringify(KilnSpecSchema)) as Record<string, unknown>;

describe("the schema at run time", () => {
  it("the build wrote it, byte for byte the TypeBox schema's JSON", () => {
    assert.ok(existsSync(built), `${built.pathname} is missing: build with \`npm run build\``);
    assert.equal(readFileSync(built, "utf8"), JSON.stringify(KilnSpecSchema));
  });

  it("specSchema() is the TypeBox schema as data, keys in the same order", () => {
    assert.deepEqual(specSchema(), fromTypeBox());
    assert.equal(JSON.stringify(specSchema()), JSON.stringify(fromTypeBox()));
  });

  it("`kiln schema` prints what the TypeBox schema gives", () => {
    const plain = fromTypeBox();
    const expected = `${JSON.stringify({ $schema: "http://json-schema.org/draft-07/schema#", title: plain.title, description: plain.description, ...plain }, null, 2)}\n`;
    assert.equal(jsonSchemaText(), expected);
  });

  it("the precompiled validator was generated from this schema", () => {
    const code = readFileSync(new URL("../../src/config/spec-validator.cjs", import.meta.url), "utf8");
    assert.ok(code.includes(`module.exports.sourceHash = ${JSON.stringify(validatorSourceHash())};`), "spec-validator.cjs is stale: build with `npm run build`");
  });
});

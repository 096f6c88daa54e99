import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { Ajv } from "ajv";
import { parse } from "yaml";
import { jsonSchema, jsonSchemaText } from "../../src/config/index.js";

describe("JSON Schema", () => {
  const committed = fileURLToPath(new URL("../../../schema/kiln.schema.json", import.meta.url));

  it("the committed schema/kiln.schema.json is the generated one", () => {
    const text = readFileSync(committed, "utf8");
    assert.deepEqual(JSON.parse(text), jsonSchema());
    assert.equal(
      text,
      jsonSchemaText(),
      "schema/kiln.schema.json is stale: regenerate it with\n  node -e 'import(\"./dist/src/config/json-schema.js\").then(m => require(\"fs\").writeFileSync(\"schema/kiln.schema.json\", m.jsonSchemaText()))'",
    );
  });

  it("is draft-07 with a description and a default on every optional key", () => {
    const s = jsonSchema();
    assert.equal(s.$schema, "http://json-schema.org/draft-07/schema#");
    assert.equal(typeof s.title, "string");
    const walk = (node: Record<string, unknown>, path: string) => {
      const props = (node.properties ?? {}) as Record<string, Record<string, unknown>>;
      const required = new Set((node.required ?? []) as string[]);
      for (const [k, child] of Object.entries(props)) {
        const p = `${path}${k}`;
        assert.equal(typeof child.description, "string", `${p} has no description`);
        // An optional key without a default must say in its description what its absence means
        // (mode: "kept from the source when absent"; checkpointDelay: "when absent the rollout waits…").
        if (!required.has(k)) assert.ok("default" in child || /absent/.test(String(child.description)), `${p} has no default and does not say what its absence means`);
        walk(child, `${p}.`);
      }
      for (const b of (node.anyOf ?? []) as Record<string, unknown>[]) walk(b, path);
      if (node.items) walk(node.items as Record<string, unknown>, `${path}[].`);
    };
    walk(s, "");
  });

  it("validates a real file with a stock JSON Schema validator", () => {
    const validate = new Ajv({ strict: false }).compile(jsonSchema());
    assert.equal(validate(parse("name: svc\nversion: v1\nhealth:\n  interval: 2s\n")), true);
    assert.equal(validate(parse("name: svc\nversion: v1\nhelth: {}\n")), false);
  });
});

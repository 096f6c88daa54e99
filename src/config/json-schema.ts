import { specSchema } from "./spec-schema.js";

/**
 * kiln.yaml as a draft-07 JSON Schema, for editors (yaml-language-server) and other tools.
 * The build's JSON round trip of the TypeBox schema (spec-schema.ts) is already plain JSON Schema.
 */
export function jsonSchema(): Record<string, unknown> {
  const plain = structuredClone(specSchema()) as Record<string, unknown>; // callers may change their copy
  // $schema, title and description first, so the file reads like a hand-written schema.
  return {
    $schema: "http://json-schema.org/draft-07/schema#",
    title: plain.title,
    description: plain.description,
    ...plain,
  };
}

/** The exact text of the committed schema/kiln.schema.json. */
export function jsonSchemaText(): string {
  return `${JSON.stringify(jsonSchema(), null, 2)}\n`;
}

import { KilnSpecSchema } from "./schema.js";

/**
 * kiln.yaml as a draft-07 JSON Schema, for editors (yaml-language-server) and other tools.
 * A JSON round trip drops TypeBox's symbol keys, leaving plain JSON Schema.
 */
export function jsonSchema(): Record<string, unknown> {
  const plain = JSON.parse(JSON.stringify(KilnSpecSchema)) as Record<string, unknown>;
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

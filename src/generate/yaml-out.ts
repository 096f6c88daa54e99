// YAML output with comments that say where a value came from. Strings are
// written with the YAML 1.1 schema, so "yes", "on" or "0755" stay strings for
// 1.1 readers too (PyYAML in docker-compose, Go's yaml in Kubernetes tooling).

import { Document, isMap, isScalar, type Node } from "yaml";

export interface YamlNote {
  /** key path to a value; the note goes after a scalar, or above a mapping's or list's key */
  path: readonly (string | number)[];
  text: string;
}

function parentOf(doc: Document, path: readonly (string | number)[]): unknown {
  return path.length === 0 ? doc.contents : doc.getIn(path, true);
}

function noteOn(doc: Document, note: YamlNote): void {
  const parent = parentOf(doc, note.path.slice(0, -1));
  const last = note.path[note.path.length - 1];
  if (!isMap(parent)) throw new Error(`YAML note: no mapping at ${note.path.slice(0, -1).join(".")}`);
  const pair = parent.items.find((p) => isScalar(p.key) && p.key.value === last);
  if (!pair) throw new Error(`YAML note: no key ${note.path.join(".")}`);
  const text = ` ${note.text}`;
  if (isScalar(pair.value)) pair.value.comment = text;
  else (pair.key as Node).commentBefore = note.text.split("\n").map((l) => ` ${l}`).join("\n");
}

/** One YAML document as text, with header comment lines and notes. */
export function yamlDocument(value: unknown, opts: { header?: readonly string[]; notes?: readonly YamlNote[] } = {}): string {
  const doc = new Document(value, { version: "1.1", aliasDuplicateObjects: false });
  if (opts.header?.length) doc.commentBefore = opts.header.map((l) => (l ? ` ${l}` : "")).join("\n");
  for (const n of opts.notes ?? []) noteOn(doc, n);
  return doc.toString({ lineWidth: 0, indentSeq: true });
}

/** Several documents in one stream, separated by `---`. */
export function yamlStream(docs: readonly string[]): string {
  return docs.map((d, i) => (i === 0 ? d : `---\n${d}`)).join("");
}

/** "# " + line for each line (for headers of non-YAML files too). */
export function hashComments(lines: readonly string[]): string {
  return lines.map((l) => (l ? `# ${l}` : "#")).join("\n") + "\n";
}

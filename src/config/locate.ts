// Maps a key path in the parsed data back to file:line:col in kiln.yaml.

import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter, type Node } from "yaml";

export type Segment = string | number;

export interface Locator {
  /** where the key of `path` is written (falls back to the nearest ancestor that exists) */
  key(path: readonly Segment[]): string;
  /** where the value of `path` starts; for an empty value, where its key is */
  value(path: readonly Segment[]): string;
  /** the value's source text, e.g. "1.0" for a version YAML read as the number 1 */
  source(path: readonly Segment[]): string | undefined;
  /** file:line:col of a character offset */
  offset(offset: number): string;
}

interface Found {
  keyNode?: Node;
  valueNode?: Node | null;
  /** false when the path ran off the document and these are the nearest ancestor's nodes */
  exact: boolean;
}

export function keyText(key: unknown): string {
  return isScalar(key) ? String(key.value) : String(key);
}

export function makeLocator(doc: Document, text: string, lineCounter: LineCounter, file: string): Locator {
  const offset = (o: number) => {
    const { line, col } = lineCounter.linePos(o);
    return `${file}:${line}:${col}`;
  };
  const deref = (n: unknown): unknown => (isAlias(n) ? n.resolve(doc) : n);

  function find(path: readonly Segment[]): Found {
    let found: Found = { valueNode: doc.contents as Node | null, exact: true };
    for (const seg of path) {
      const node = deref(found.valueNode);
      let next: Found | undefined;
      if (isMap(node)) {
        // With duplicate keys the last one wins in the data, so point at it.
        const pair = [...node.items].reverse().find((p) => keyText(p.key) === String(seg));
        if (pair) next = { keyNode: pair.key as Node, valueNode: pair.value as Node | null, exact: true };
      } else if (isSeq(node) && typeof seg === "number") {
        const item = node.items[seg];
        if (item !== undefined) next = { valueNode: item as Node, exact: true };
      }
      if (!next) return { ...found, exact: false };
      found = next;
    }
    return found;
  }

  function start(n: Node | null | undefined): number | undefined {
    return n?.range?.[0];
  }

  function isEmpty(n: Node | null | undefined): boolean {
    return !n || (isScalar(n) && n.value === null && !n.source);
  }

  return {
    offset,
    key(path) {
      const f = find(path);
      return offset(start(f.keyNode) ?? start(f.valueNode) ?? 0);
    },
    value(path) {
      const f = find(path);
      const at = f.exact && !isEmpty(f.valueNode) ? start(f.valueNode) : undefined;
      return offset(at ?? start(f.keyNode) ?? start(f.valueNode) ?? 0);
    },
    source(path) {
      const f = find(path);
      const r = f.exact ? f.valueNode?.range : undefined;
      return r ? text.slice(r[0], r[1]) : undefined;
    },
  };
}

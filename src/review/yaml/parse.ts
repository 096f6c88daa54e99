// YAML and JSON → located documents, with CloudFormation's short-form intrinsic tags
// (!Ref, !Sub, !GetAtt …) understood instead of warned about.

import { isAlias, isMap, isScalar, isSeq, LineCounter, parseAllDocuments, type Document, type Node, type Scalar as YScalar } from "yaml";
import type { LNode } from "../located.js";
import type { Pos } from "../types.js";

const CFN_TAGS = [
  "!Ref",
  "!Sub",
  "!GetAtt",
  "!Join",
  "!If",
  "!Select",
  "!Split",
  "!FindInMap",
  "!Base64",
  "!ImportValue",
  "!Equals",
  "!Not",
  "!And",
  "!Or",
  "!Condition",
  "!GetAZs",
  "!Cidr",
  "!Transform",
];

// Each tag may be written on a scalar, a sequence or a mapping; the node keeps its tag and
// a rule decides what it means.
const customTags = CFN_TAGS.flatMap((tag) => [
  { tag, resolve: (s: string) => s },
  { tag, collection: "seq" as const, resolve: <T>(v: T) => v },
  { tag, collection: "map" as const, resolve: <T>(v: T) => v },
]);

export type YamlParse = { docs: LNode[] } | { error: { line: number; col: number; message: string } };

export function parseYaml(text: string): YamlParse {
  const lc = new LineCounter();
  const parsed = parseAllDocuments(text, { lineCounter: lc, customTags, uniqueKeys: false, prettyErrors: false });
  const docs: Document[] = Array.isArray(parsed) ? parsed : [];
  for (const d of docs) {
    const e = d.errors[0];
    if (e) {
      const { line, col } = lc.linePos(e.pos[0]);
      return { error: { line, col, message: e.message.replace(/\s+/g, " ").trim() } };
    }
  }
  const at = (offset: number | undefined): Pos => {
    const { line, col } = lc.linePos(offset ?? 0);
    return { line, col };
  };
  const out: LNode[] = [];
  for (const d of docs) {
    if (d.contents === null) continue;
    out.push(convert(d.contents as Node, d, text, at, 0));
  }
  return { docs: out };
}

function convert(node: Node, doc: Document, text: string, at: (o: number | undefined) => Pos, depth: number): LNode {
  if (depth > 200) return { kind: "scalar", pos: at(node.range?.[0]), value: null };
  if (isAlias(node)) {
    const target = node.resolve(doc);
    return target ? convert(target as Node, doc, text, at, depth + 1) : { kind: "scalar", pos: at(node.range?.[0]), value: null };
  }
  const pos = at(node.range?.[0]);
  const tag = node.tag && node.tag.startsWith("!") && !node.tag.startsWith("!!") ? node.tag : undefined;
  if (isMap(node)) {
    return {
      kind: "map",
      pos,
      ...(tag ? { tag } : {}),
      entries: node.items.map((pair) => {
        const k = pair.key as Node | null;
        const key = isScalar(k) ? String(k.value) : String(k);
        const keyPos = at(k?.range?.[0]);
        const value: LNode = pair.value === null ? { kind: "scalar", pos: keyPos, value: null } : convert(pair.value as Node, doc, text, at, depth + 1);
        return { key, keyPos, value };
      }),
    };
  }
  if (isSeq(node)) {
    return { kind: "seq", pos, ...(tag ? { tag } : {}), items: node.items.map((it) => convert(it as Node, doc, text, at, depth + 1)) };
  }
  const s = node as YScalar;
  const v = s.value;
  const value = v === null || typeof v === "string" || typeof v === "number" || typeof v === "boolean" ? v : String(v);
  const out: LNode = { kind: "scalar", pos, ...(tag ? { tag } : {}), value };
  if ((s.type === "BLOCK_LITERAL" || s.type === "BLOCK_FOLDED") && s.range) {
    // The content starts on the line after the indicator; its indentation is that of the first non-empty line.
    const nl = text.indexOf("\n", s.range[0]);
    if (nl >= 0) {
      let i = nl + 1;
      while (i < text.length && text[i] === "\n") i++;
      let j = i;
      while (j < text.length && text[j] === " ") j++;
      const first = at(i);
      out.content = { line: first.line - countNewlines(text, nl + 1, i), col: j - i + 1 };
    }
  } else if ((s.type === "QUOTE_DOUBLE" || s.type === "QUOTE_SINGLE") && s.range) {
    const p = at(s.range[0]);
    out.content = { line: p.line, col: p.col + 1 };
  } else if (s.type === "PLAIN") {
    out.content = pos;
  }
  return out;
}

function countNewlines(text: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) if (text[i] === "\n") n++;
  return n;
}

// HCL2 (Packer and Terraform) → blocks and attributes with positions.
//
// The parsing of record is HashiCorp's own HCL parser (through @cdktf/hcl2json, a WASM
// build of hcl2json): it decides whether the file is valid and what every value is. Its
// JSON output carries no positions, so a small structural scanner walks the same text to
// find where each block and attribute starts (it only tracks strings, heredocs, comments
// and brackets; it never interprets an expression). The two are zipped together by
// block type, labels and order, which hcl2json preserves.

import { createRequire } from "node:module";
import { fromJS, type LNode } from "../located.js";
import type { Pos } from "../types.js";

export interface HclAttr {
  name: string;
  pos: Pos;
  valuePos: Pos;
  /** the value as HCL evaluated it statically; expressions appear as "${…}" strings */
  value: unknown;
  /** the expression's source text */
  raw: string;
  /** where each element of a list literal starts */
  elems: Pos[];
  /** where each key of an object literal is written */
  keys: Map<string, Pos>;
}

export interface HclBlock {
  type: string;
  labels: string[];
  pos: Pos;
  body: HclBody;
}

export interface HclBody {
  attrs: HclAttr[];
  blocks: HclBlock[];
  /** where the closing brace is (end of file for the root) */
  end: Pos;
}

export type HclParse = { body: HclBody } | { error: { line: number; col: number; message: string } };

interface Hcl2Json {
  parse(filename: string, contents: string): Promise<Record<string, unknown>>;
}

let hcl2json: Hcl2Json | undefined;
function loadHcl2Json(): Hcl2Json {
  // Loaded on first use (its WASM takes about half a second to start) and through require,
  // so that its DOM-referencing type declarations stay out of this project's compilation.
  hcl2json ??= createRequire(import.meta.url)("@cdktf/hcl2json") as Hcl2Json;
  return hcl2json;
}

export async function parseHcl(text: string, file: string): Promise<HclParse> {
  let json: Record<string, unknown>;
  try {
    json = await loadHcl2Json().parse(file, text);
  } catch (e) {
    const msg = String((e as Error).message ?? e);
    // "parse config: [file:2,7-3,1: Invalid expression; Expected …]"
    const m = /:(\d+),(\d+)(?:-\d+(?:,\d+)?)?: (.*?)\]?$/.exec(msg);
    if (m) return { error: { line: Number(m[1]), col: Number(m[2]), message: m[3]!.trim() } };
    return { error: { line: 1, col: 1, message: msg } };
  }
  let body: HclBody;
  try {
    body = new Scanner(text).root();
  } catch (e) {
    // The scanner is simpler than HCL; a file HCL accepts but it cannot follow is reported, not guessed at.
    return { error: { line: 1, col: 1, message: `cannot locate blocks: ${(e as Error).message}` } };
  }
  attach(body, json);
  return { body };
}

// --- zip positions with values -------------------------------------------------------

function attach(body: HclBody, json: unknown): void {
  const obj = isRecord(json) ? json : {};
  for (const a of body.attrs) a.value = obj[a.name];
  const seen = new Map<string, number>();
  for (const b of body.blocks) {
    const key = JSON.stringify([b.type, ...b.labels]);
    const idx = seen.get(key) ?? 0;
    seen.set(key, idx + 1);
    let cur: unknown = obj[b.type];
    for (const l of b.labels) cur = isRecord(cur) ? cur[l] : undefined;
    attach(b.body, Array.isArray(cur) ? cur[idx] : undefined);
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

// --- helpers for rules -----------------------------------------------------------------

export function attr(body: HclBody, name: string): HclAttr | undefined {
  return body.attrs.find((a) => a.name === name);
}

export function blocksOf(body: HclBody, type: string): HclBlock[] {
  return body.blocks.filter((b) => b.type === type);
}

/** Every block in the tree, depth first, with its ancestors. */
export function allBlocks(body: HclBody, visit: (b: HclBlock, parents: readonly HclBlock[]) => void, parents: HclBlock[] = []): void {
  for (const b of body.blocks) {
    visit(b, parents);
    allBlocks(b.body, visit, [...parents, b]);
  }
}

/** The attribute's value as a located node; list elements and object keys keep their own positions. */
export function attrNode(a: HclAttr): LNode {
  const n = fromJS(a.value, a.valuePos);
  if (n.kind === "seq" && a.elems.length === n.items.length) n.items.forEach((it, i) => (it.pos = a.elems[i]!));
  if (n.kind === "map") for (const e of n.entries) e.keyPos = e.value.pos = a.keys.get(e.key) ?? a.valuePos;
  return n;
}

/** A string value, or undefined for anything else (numbers and booleans are printed). */
export function attrStr(a: HclAttr | undefined): string | undefined {
  if (!a) return undefined;
  const v = a.value;
  return typeof v === "string" || typeof v === "number" || typeof v === "boolean" ? String(v) : undefined;
}

/** True when the attribute is literally true (not an expression that might be). */
export function attrTrue(a: HclAttr | undefined): boolean {
  return a?.value === true || a?.value === "true";
}

// --- the structural scanner --------------------------------------------------------------

type TokType = "ident" | "string" | "heredoc" | "punct" | "other" | "nl" | "eof";
interface Tok {
  type: TokType;
  text: string;
  pos: Pos;
  start: number;
  end: number;
}

class Scanner {
  private i = 0;
  private line = 1;
  private col = 1;
  private peeked: Tok | undefined;

  constructor(private readonly src: string) {}

  root(): HclBody {
    return this.body(false);
  }

  private body(closed: boolean): HclBody {
    const out: HclBody = { attrs: [], blocks: [], end: { line: 1, col: 1 } };
    for (;;) {
      let t = this.next();
      while (t.type === "nl") t = this.next();
      if (t.type === "eof") {
        if (closed) throw new Error("unexpected end of file");
        out.end = t.pos;
        return out;
      }
      if (t.type === "punct" && t.text === "}") {
        if (!closed) throw new Error(`unexpected "}" at ${t.pos.line}:${t.pos.col}`);
        out.end = t.pos;
        return out;
      }
      if (t.type !== "ident") throw new Error(`expected a name at ${t.pos.line}:${t.pos.col}`);
      const after = this.peek();
      if (after.type === "punct" && after.text === "=") {
        this.next();
        out.attrs.push(this.expression(t));
        continue;
      }
      const labels: string[] = [];
      for (;;) {
        const l = this.next();
        if (l.type === "string") labels.push(unquote(l.text));
        else if (l.type === "ident") labels.push(l.text);
        else if (l.type === "punct" && l.text === "{") break;
        else throw new Error(`expected a label or "{" at ${l.pos.line}:${l.pos.col}`);
      }
      out.blocks.push({ type: t.text, labels, pos: t.pos, body: this.body(true) });
    }
  }

  /** An attribute's expression: up to a newline (or a one-line block's "}") outside brackets. */
  private expression(name: Tok): HclAttr {
    const first = this.peek();
    const a: HclAttr = { name: name.text, pos: name.pos, valuePos: first.pos, value: undefined, raw: "", elems: [], keys: new Map() };
    const stack: string[] = [];
    let end = first.start;
    let prev: Tok | undefined;
    const topList = first.type === "punct" && first.text === "[";
    const topObj = first.type === "punct" && first.text === "{";
    for (;;) {
      const t = this.peek();
      if (t.type === "eof") break;
      if (stack.length === 0 && (t.type === "nl" || (t.type === "punct" && t.text === "}"))) break;
      this.next();
      if (t.type === "nl") continue;
      if (stack.length === 1 && prev && prev.type === "punct" && (prev.text === "[" || prev.text === ",") && topList) a.elems.push(t.pos);
      if (stack.length === 1 && topObj && (t.type === "ident" || t.type === "string")) {
        const nx = this.peek();
        if (nx.type === "punct" && (nx.text === "=" || nx.text === ":") && (prev === undefined || prev.type === "nl" || prev.text === "{" || prev.text === ",")) {
          a.keys.set(t.type === "string" ? unquote(t.text) : t.text, t.pos);
        }
      }
      if (t.type === "punct" && "([{".includes(t.text)) stack.push(t.text);
      else if (t.type === "punct" && ")]}".includes(t.text)) stack.pop();
      end = t.end;
      prev = t;
      if (t.type === "heredoc") prev = { ...t, type: "nl" };
    }
    a.raw = this.src.slice(first.start, end);
    return a;
  }

  private peek(): Tok {
    this.peeked ??= this.lex();
    return this.peeked;
  }

  private next(): Tok {
    const t = this.peek();
    this.peeked = undefined;
    return t;
  }

  private advance(n = 1): void {
    for (let k = 0; k < n && this.i < this.src.length; k++) {
      if (this.src[this.i] === "\n") {
        this.line++;
        this.col = 1;
      } else this.col++;
      this.i++;
    }
  }

  private lex(): Tok {
    const s = this.src;
    // whitespace and comments
    for (;;) {
      const c = s[this.i];
      if (c === " " || c === "\t" || c === "\r") this.advance();
      else if (c === "#" || (c === "/" && s[this.i + 1] === "/")) {
        while (this.i < s.length && s[this.i] !== "\n") this.advance();
      } else if (c === "/" && s[this.i + 1] === "*") {
        const close = s.indexOf("*/", this.i + 2);
        this.advance((close < 0 ? s.length : close + 2) - this.i);
      } else break;
    }
    const pos = { line: this.line, col: this.col };
    const start = this.i;
    const tok = (type: TokType): Tok => ({ type, text: s.slice(start, this.i), pos, start, end: this.i });
    if (this.i >= s.length) return tok("eof");
    const c = s[this.i]!;
    if (c === "\n") {
      this.advance();
      return tok("nl");
    }
    if (c === '"') {
      this.advance();
      this.stringBody();
      return tok("string");
    }
    if (c === "<" && s[this.i + 1] === "<" && /^<<-?[A-Za-z_]/.test(s.slice(this.i, this.i + 4))) {
      const m = /^<<-?([A-Za-z_][A-Za-z0-9_-]*)[ \t]*\r?\n/.exec(s.slice(this.i));
      if (m) {
        this.advance(m[0].length);
        // the body ends at a line holding only the marker
        for (;;) {
          if (this.i >= s.length) break;
          const eol = s.indexOf("\n", this.i);
          const lineText = s.slice(this.i, eol < 0 ? s.length : eol);
          const isEnd = lineText.trim() === m[1];
          this.advance(lineText.length);
          if (isEnd) break;
          this.advance(); // the newline
        }
        return tok("heredoc");
      }
    }
    if (/[A-Za-z_]/.test(c)) {
      while (this.i < s.length && /[A-Za-z0-9_-]/.test(s[this.i]!)) this.advance();
      return tok("ident");
    }
    if ("{}[]()=,:?".includes(c)) {
      this.advance();
      return tok("punct");
    }
    this.advance();
    return tok("other");
  }

  /** After an opening quote: up to and including the closing quote, skipping template sequences. */
  private stringBody(): void {
    const s = this.src;
    while (this.i < s.length) {
      const c = s[this.i];
      if (c === "\\") this.advance(2);
      else if (c === '"') {
        this.advance();
        return;
      } else if ((c === "$" || c === "%") && s[this.i + 1] === "{") {
        if (s[this.i - 1] === c) {
          this.advance(2); // "$${" is an escaped literal
          continue;
        }
        this.advance(2);
        this.template();
      } else if (c === "\n") throw new Error(`unterminated string at line ${this.line}`);
      else this.advance();
    }
  }

  /** Inside "${ … }": up to the matching brace, through nested strings. */
  private template(): void {
    const s = this.src;
    let depth = 1;
    while (this.i < s.length && depth > 0) {
      const c = s[this.i];
      if (c === '"') {
        this.advance();
        this.stringBody();
        continue;
      }
      if (c === "{") depth++;
      else if (c === "}") depth--;
      this.advance();
    }
  }
}

function unquote(t: string): string {
  if (!t.startsWith('"')) return t;
  try {
    return JSON.parse(t) as string;
  } catch {
    return t.slice(1, -1);
  }
}

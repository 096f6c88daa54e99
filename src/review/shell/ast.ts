// The shell parser: mvdan/sh (the parser behind shfmt), compiled to JavaScript by its
// author as the `mvdan-sh` package. These interfaces describe the part of its syntax tree
// kiln reads; field names are the Go ones (https://pkg.go.dev/mvdan.cc/sh/v3/syntax).

import { createRequire } from "node:module";
import type { Pos } from "../types.js";

interface GoPos {
  Line(): number;
  Col(): number;
}

/** Every node carries its kind (mvdan/sh's NodeType) and where it starts. */
export interface ShNode {
  type: string;
  pos: Pos;
}

export interface File extends ShNode {
  Stmts: Stmt[];
}

export interface Stmt extends ShNode {
  Cmd: Command | null;
  Negated: boolean;
  Background: boolean;
}

export type Command = ShNode & Record<string, unknown>;

export interface CallExpr extends ShNode {
  Assigns: Assign[] | null;
  Args: Word[] | null;
}

export interface Assign extends ShNode {
  Name: Lit | null;
  Value: Word | null;
  Array: { Elems: { Value: Word | null }[] | null } | null;
  Naked: boolean;
}

export interface BinaryCmd extends ShNode {
  Op: number;
  X: Stmt;
  Y: Stmt;
}

export interface IfClause extends ShNode {
  Cond: Stmt[] | null;
  Then: Stmt[] | null;
  Else: IfClause | null;
}

export interface WhileClause extends ShNode {
  Until: boolean;
  Cond: Stmt[] | null;
  Do: Stmt[] | null;
}

export interface ForClause extends ShNode {
  Do: Stmt[] | null;
}

export interface FuncDecl extends ShNode {
  Name: Lit;
  Body: Stmt;
}

export interface Block extends ShNode {
  Stmts: Stmt[] | null;
}

export interface CaseClause extends ShNode {
  Word: Word;
  Items: { Patterns: Word[] | null; Stmts: Stmt[] | null }[] | null;
}

export interface TestClause extends ShNode {
  X: TestExpr;
}

export type TestExpr = ShNode & { Op?: number; X?: TestExpr; Y?: TestExpr } & Partial<Word>;

export interface ArithmCmd extends ShNode {
  X: ShNode & { Op?: number; X?: ShNode; Y?: ShNode } & Partial<Word>;
}

export interface DeclClause extends ShNode {
  Variant: Lit;
  Args: Assign[] | null;
}

export interface TimeClause extends ShNode {
  Stmt: Stmt | null;
}

export interface Word extends ShNode {
  Parts: WordPart[] | null;
}

export type WordPart = ShNode & Record<string, unknown>;

export interface Lit extends ShNode {
  Value: string;
}

interface Syntax {
  NewParser(...opts: unknown[]): { Parse(src: string, name: string): unknown };
  Variant(v: unknown): unknown;
  LangBash: unknown;
  NodeType(n: unknown): string;
}

// The GopherJS build is CommonJS without type declarations.
let syntax: Syntax | undefined;
export function sh(): Syntax {
  syntax ??= (createRequire(import.meta.url)("mvdan-sh") as { syntax: Syntax }).syntax;
  return syntax;
}

export function nodeType(n: unknown): string {
  return (n as ShNode | null | undefined)?.type ?? "";
}

export function pos(n: ShNode): Pos {
  return n.pos;
}

// Field names per node type that the analysis reads. The GopherJS tree copies a slice
// every time a field is read, so the tree is converted to plain objects once, here.
const FIELDS: Record<string, readonly string[]> = {
  File: ["Stmts"],
  Stmt: ["Cmd", "Negated", "Background"],
  CallExpr: ["Assigns", "Args"],
  Assign: ["Name", "Value", "Array", "Naked"],
  ArrayExpr: ["Elems"],
  ArrayElem: ["Value"],
  BinaryCmd: ["Op", "X", "Y"],
  IfClause: ["Cond", "Then", "Else"],
  WhileClause: ["Until", "Cond", "Do"],
  ForClause: ["Loop", "Do"],
  WordIter: ["Name", "Items"],
  CStyleLoop: ["Init"],
  FuncDecl: ["Name", "Body"],
  Block: ["Stmts"],
  Subshell: ["Stmts"],
  CaseClause: ["Word", "Items"],
  CaseItem: ["Patterns", "Stmts"],
  TestClause: ["X"],
  BinaryTest: ["Op", "X", "Y"],
  UnaryTest: ["Op", "X"],
  ParenTest: ["X"],
  ArithmCmd: ["X"],
  BinaryArithm: ["Op", "X", "Y"],
  UnaryArithm: ["Op", "X"],
  ParenArithm: ["X"],
  DeclClause: ["Variant", "Args"],
  TimeClause: ["Stmt"],
  Word: ["Parts"],
  Lit: ["Value"],
  SglQuoted: ["Value"],
  DblQuoted: ["Parts"],
  ParamExp: ["Param"],
  CmdSubst: ["Stmts"],
  ProcSubst: ["Stmts"],
};

function plain(n: unknown, depth = 0): unknown {
  if (n === null || n === undefined || typeof n !== "object" || depth > 400) return n ?? null;
  if (Array.isArray(n)) return n.map((x) => plain(x, depth + 1));
  const type = sh().NodeType(n);
  const out: Record<string, unknown> = { type };
  const p = (n as { Pos?: () => GoPos }).Pos;
  if (typeof p === "function") {
    const gp = p.call(n);
    out.pos = { line: gp.Line(), col: gp.Col() };
  }
  for (const f of FIELDS[type] ?? []) {
    const v = (n as Record<string, unknown>)[f];
    out[f] = typeof v === "object" ? plain(v, depth + 1) : v;
  }
  return out;
}

/**
 * The same conversion read straight from GopherJS's own representation of the Go values
 * (`__internal_object__`): slices as {$array, $offset, $length}, pointers to structs as
 * objects with the Go field names, strings as UTF-8 byte strings. Going through the
 * exported wrapper instead externalizes (copies) every field on every read, which made a
 * 10,000-line script take tens of seconds; this takes a fraction of one.
 */
interface GoValue {
  constructor: { string?: string; nil?: unknown };
  $array?: unknown[];
  $offset?: number;
  $length?: number;
  Pos?: () => { Line(): number; Col(): number };
  [k: string]: unknown;
}

function goString(v: string): string {
  // eslint-disable-next-line no-control-regex
  return /[^\x00-\x7f]/.test(v) ? Buffer.from(v, "latin1").toString("utf8") : v;
}

function fromGo(n: unknown, depth = 0): unknown {
  if (n === null || n === undefined) return null;
  if (typeof n === "string") return goString(n);
  if (typeof n !== "object" || depth > 400) return n;
  const g = n as GoValue;
  if (g.$array !== undefined) {
    const out: unknown[] = [];
    for (let i = 0; i < (g.$length ?? 0); i++) out.push(fromGo(g.$array[(g.$offset ?? 0) + i], depth + 1));
    return out;
  }
  const name = g.constructor?.string;
  if (typeof name !== "string" || g === g.constructor.nil || !name.startsWith("*syntax.")) return null;
  const type = name.slice("*syntax.".length);
  const out: Record<string, unknown> = { type };
  if (typeof g.Pos === "function") {
    const gp = g.Pos();
    out.pos = { line: gp.Line(), col: gp.Col() };
  }
  for (const f of FIELDS[type] ?? []) out[f] = fromGo(g[f], depth + 1);
  return out;
}

export type ShellParse = { file: File } | { error: { line: number; col: number; message: string } };

export function parseShell(text: string, name: string): ShellParse {
  const s = sh();
  try {
    const f = s.NewParser(s.Variant(s.LangBash)).Parse(text, name);
    const internal = (f as { __internal_object__?: unknown }).__internal_object__;
    return { file: (internal ? fromGo(internal) : plain(f)) as File };
  } catch (e) {
    const err = e as { Pos?: GoPos; Text?: string; message?: string };
    if (err && typeof err.Text === "string" && err.Pos) return { error: { line: err.Pos.Line(), col: err.Pos.Col(), message: err.Text } };
    return { error: { line: 1, col: 1, message: String(err?.message ?? e) } };
  }
}

/** The conversion through the exported wrapper, kept as the reference the fast one is tested against. */
export function parseShellViaWrapper(text: string, name: string): unknown {
  const s = sh();
  return plain(s.NewParser(s.Variant(s.LangBash)).Parse(text, name));
}

// Operator codes of mvdan/sh's syntax package (BinCmdOperator, BinTestOperator, UnTestOperator, BinAritOperator).
export const OP = {
  and: 10,
  or: 11,
  pipe: 12,
  pipeAll: 13,
  testEq: 40, // ==
  testNe: 41, // !=
  testMatchShort: 74, // =
  testNumEq: 116, // -eq
  testNumNe: 117, // -ne
  testNonEmpty: 108, // -n
  testEmpty: 107, // -z
  arithEq: 40,
  arithNe: 41,
} as const;

/**
 * A word as the analysis sees it: its literal text when it has one, otherwise a rendering
 * where expansions appear as "$name" / "$(…)", plus what it expands.
 */
export interface WordInfo {
  /** rendered text; quotes removed, expansions kept as written */
  text: string;
  /** true when the word has no expansions: its text is exactly what the command receives */
  literal: boolean;
  /** parameters it expands, e.g. ["TG_ARN"]; "@" for "$@" */
  params: string[];
  /** command substitutions inside it */
  substs: Stmt[][];
  pos: Pos;
  node: Word;
}

/** Words are read many times (every loop iteration, every call of a function): computed once each. */
const wordInfos = new WeakMap<Word, WordInfo>();

export function wordInfo(w: Word): WordInfo {
  const known = wordInfos.get(w);
  if (known) return known;
  const info: WordInfo = { text: "", literal: true, params: [], substs: [], pos: pos(w), node: w };
  const visit = (parts: WordPart[] | null) => {
    for (const p of parts ?? []) {
      switch (nodeType(p)) {
        case "Lit":
          info.text += String(p.Value);
          break;
        case "SglQuoted":
          info.text += String(p.Value);
          break;
        case "DblQuoted":
          visit(p.Parts as WordPart[] | null);
          break;
        case "ParamExp": {
          const name = (p.Param as Lit | null)?.Value ?? "";
          info.literal = false;
          info.params.push(name);
          info.text += `\${${name}}`;
          break;
        }
        case "CmdSubst":
        case "ProcSubst":
          info.literal = false;
          info.substs.push((p.Stmts as Stmt[] | null) ?? []);
          info.text += "$(…)";
          break;
        default:
          info.literal = false;
          info.text += "…";
      }
    }
  };
  visit(w.Parts);
  wordInfos.set(w, info);
  return info;
}

// A parsed document where every value knows where it was written. YAML (and JSON, which
// `yaml` reads too) and HCL attribute values are converted into this one shape so that a
// rule about, say, instance refresh preferences is written once for CloudFormation and
// Terraform.

import type { Pos } from "./types.js";

export type Scalar = string | number | boolean | null;

export type LNode = LMap | LSeq | LScalar;

export interface LMap {
  kind: "map";
  pos: Pos;
  /** a YAML tag such as "!Ref"; CloudFormation's short-form intrinsics */
  tag?: string;
  entries: LEntry[];
}

export interface LSeq {
  kind: "seq";
  pos: Pos;
  tag?: string;
  items: LNode[];
}

export interface LScalar {
  kind: "scalar";
  pos: Pos;
  tag?: string;
  value: Scalar;
  /**
   * Where line 1 of a multi-line string's content is: for a YAML block scalar (`|`) the
   * line after the indicator, at the block's indentation. Lets a shell script embedded in
   * user data report findings at their own line.
   */
  content?: Pos;
}

export interface LEntry {
  key: string;
  keyPos: Pos;
  value: LNode;
}

export function isMap(n: LNode | undefined): n is LMap {
  return n?.kind === "map";
}

export function isSeq(n: LNode | undefined): n is LSeq {
  return n?.kind === "seq";
}

/** The entry under `key` (the last one when a key repeats, as YAML loaders keep it). */
export function entry(n: LNode | undefined, key: string): LEntry | undefined {
  if (!isMap(n)) return undefined;
  for (let i = n.entries.length - 1; i >= 0; i--) if (n.entries[i]!.key === key) return n.entries[i];
  return undefined;
}

/** Follow a path of map keys and sequence indexes. */
export function get(n: LNode | undefined, ...path: (string | number)[]): LNode | undefined {
  let cur = n;
  for (const seg of path) {
    if (cur === undefined) return undefined;
    if (typeof seg === "number") cur = isSeq(cur) ? cur.items[seg] : undefined;
    else cur = entry(cur, seg)?.value;
  }
  return cur;
}

/** First key present, case-sensitive, in the order given (e.g. CloudFormation vs Terraform spelling). */
export function getAny(n: LNode | undefined, keys: readonly string[]): LEntry | undefined {
  for (const k of keys) {
    const e = entry(n, k);
    if (e) return e;
  }
  return undefined;
}

export function items(n: LNode | undefined): LNode[] {
  return isSeq(n) ? n.items : [];
}

export function entries(n: LNode | undefined): LEntry[] {
  return isMap(n) ? n.entries : [];
}

/** A plain (untagged) scalar as a string; numbers and booleans are printed. */
export function str(n: LNode | undefined): string | undefined {
  if (n?.kind !== "scalar" || n.tag !== undefined || n.value === null) return undefined;
  return String(n.value);
}

/** A number, also from a numeric string ("90"), as CloudFormation templates often write them. */
export function num(n: LNode | undefined): number | undefined {
  if (n?.kind !== "scalar" || n.tag !== undefined) return undefined;
  if (typeof n.value === "number") return n.value;
  if (typeof n.value === "string" && /^-?\d+(\.\d+)?$/.test(n.value.trim())) return Number(n.value);
  return undefined;
}

/** A boolean, also from "true"/"false" strings. */
export function bool(n: LNode | undefined): boolean | undefined {
  if (n?.kind !== "scalar" || n.tag !== undefined) return undefined;
  if (typeof n.value === "boolean") return n.value;
  if (n.value === "true" || n.value === "false") return n.value === "true";
  return undefined;
}

/** Plain JavaScript value (tags dropped), for values a rule inspects as a whole. */
export function toJS(n: LNode | undefined): unknown {
  if (n === undefined) return undefined;
  if (n.kind === "scalar") return n.value;
  if (n.kind === "seq") return n.items.map(toJS);
  const o: Record<string, unknown> = {};
  for (const e of n.entries) o[e.key] = toJS(e.value);
  return o;
}

/** Every node under n, depth first, with the key path to it. */
export function walk(n: LNode, visit: (node: LNode, path: readonly (string | number)[], key?: LEntry) => void): void {
  const go = (node: LNode, path: (string | number)[], key?: LEntry) => {
    visit(node, path, key);
    if (node.kind === "map") for (const e of node.entries) go(e.value, [...path, e.key], e);
    else if (node.kind === "seq") node.items.forEach((it, i) => go(it, [...path, i]));
  };
  go(n, []);
}

/** Builds an LNode from a plain value, every part at the same position (HCL values). */
export function fromJS(v: unknown, pos: Pos): LNode {
  if (Array.isArray(v)) return { kind: "seq", pos, items: v.map((x) => fromJS(x, pos)) };
  if (v !== null && typeof v === "object") {
    return {
      kind: "map",
      pos,
      entries: Object.entries(v as Record<string, unknown>).map(([k, x]) => ({ key: k, keyPos: pos, value: fromJS(x, pos) })),
    };
  }
  return { kind: "scalar", pos, value: v === undefined ? null : (v as Scalar) };
}

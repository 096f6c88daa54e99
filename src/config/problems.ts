// Turns Ajv's errors into one human problem per mistake: "expected X, got Y",
// at the offending key or value, with a hint where one helps.

import type { ErrorObject } from "ajv";
import type { Locator, Segment } from "./locate.js";
import { DURATION_TITLE, FILE_ENTRY_TITLE, PATTERN_TEXT } from "./schema-constants.js";
import { specSchema } from "./spec-schema.js";
import { closest } from "./suggest.js";
import type { SpecProblem } from "./types.js";

// JSON Schema as plain data; TypeBox's static types are of no help when walking it.
interface SchemaNode {
  type?: string;
  title?: string;
  description?: string;
  const?: unknown;
  pattern?: string;
  minLength?: number;
  minimum?: number;
  maximum?: number;
  anyOf?: SchemaNode[];
  items?: SchemaNode;
  properties?: Record<string, SchemaNode>;
  patternProperties?: Record<string, SchemaNode>;
}

export function formatPath(path: readonly Segment[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(seg)) out += out === "" ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/** What a value is, in words: `"blue-gren"`, `120`, `a list`. */
export function show(v: unknown): string {
  if (v === null || v === undefined) return "an empty value";
  if (typeof v === "string") return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  return String(v);
}

/** What a schema accepts, in words: "an integer 0–100", `one of "auto" or "manual"`. */
export function describe(s: SchemaNode): string {
  if (s.title === DURATION_TITLE) return PATTERN_TEXT[(s.anyOf?.[0]?.pattern ?? "")] ?? "a duration";
  if (s.title === FILE_ENTRY_TITLE) return "a relative path or a mapping {src, dest, mode}";
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.anyOf) {
    const parts = s.anyOf.map(describe);
    const all = parts.length > 2 ? `${parts.slice(0, -1).join(", ")} or ${parts.at(-1)}` : parts.join(" or ");
    return s.anyOf.every((b) => b.const !== undefined) ? `one of ${all}` : all;
  }
  switch (s.type) {
    case "string":
      if (s.pattern !== undefined) return PATTERN_TEXT[s.pattern] ?? `a string matching /${s.pattern}/`;
      return s.minLength ? "a non-empty string" : "a string";
    case "integer":
    case "number": {
      const noun = s.type === "integer" ? "an integer" : "a number";
      if (s.minimum !== undefined && s.maximum !== undefined) return `${noun} ${s.minimum}–${s.maximum}`;
      if (s.minimum !== undefined) return `${noun} ≥ ${s.minimum}`;
      if (s.maximum !== undefined) return `${noun} ≤ ${s.maximum}`;
      return noun;
    }
    case "boolean":
      return "true or false";
    case "array":
      return s.items?.type === "string" ? "a list of strings" : "a list";
    case "object":
      return s.patternProperties ? "a mapping of names to strings" : "a mapping";
    default:
      return "a valid value";
  }
}

function jsonType(v: unknown): string {
  if (v === null || v === undefined) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
}

function accepts(s: SchemaNode, v: unknown): boolean {
  const t = jsonType(v);
  return s.type === t || (s.type === "number" && t === "integer");
}

function pointerToPath(pointer: string, data: unknown): Segment[] {
  if (pointer === "") return [];
  const out: Segment[] = [];
  let cur: unknown = data;
  for (const raw of pointer.slice(1).split("/")) {
    const seg = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (Array.isArray(cur)) {
      out.push(Number(seg));
      cur = cur[Number(seg)];
    } else {
      out.push(seg);
      cur = cur !== null && typeof cur === "object" ? (cur as Record<string, unknown>)[seg] : undefined;
    }
  }
  return out;
}

// Every object key anywhere in the schema, so `port:` at the top level can be sent to image.port.
function keyIndex(): Map<string, string[]> {
  const index = new Map<string, string[]>();
  const walk = (s: SchemaNode, path: string) => {
    for (const [k, child] of Object.entries(s.properties ?? {})) {
      const p = path ? `${path}.${k}` : k;
      index.set(k, [...(index.get(k) ?? []), p]);
      walk(child, p);
    }
    for (const b of s.anyOf ?? []) walk(b, path);
    if (s.items) walk(s.items, `${path}[]`);
  };
  walk(specSchema() as SchemaNode, "");
  return index;
}

function unknownKeyHint(key: string, allowed: string[], here: string): string {
  const near = closest(key, allowed);
  if (near !== undefined) return `did you mean "${near}"?`;
  const elsewhere = (keyIndex().get(key) ?? []).filter((p) => p !== (here ? `${here}.${key}` : key));
  if (elsewhere.length > 0) return `"${key}" belongs at ${elsewhere.join(" or ")}`;
  return allowed.length > 0 ? `allowed keys here: ${allowed.join(", ")}` : "remove it";
}

// "5 min", "30 secs", "2 hours": the right number in a spelling we do not read.
const DURATION_SLIP = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|sec|secs|seconds?|mins?|minutes?|hours?)\s*$/i;

function valueHint(s: SchemaNode, v: unknown, key: Segment | undefined, source: string | undefined): string | undefined {
  if (v === null || v === undefined) return "give it a value, or remove the key to use the default";
  if (s.title === DURATION_TITLE) {
    if (typeof v === "number") return "a duration may not be negative";
    const m = typeof v === "string" ? DURATION_SLIP.exec(v) : null;
    if (!m) return undefined;
    const unit = m[2]!.toLowerCase();
    const short = unit === "ms" ? "ms" : unit.startsWith("h") ? "h" : unit.startsWith("m") ? "m" : "s";
    return `write it as "${m[1]}${short}"`;
  }
  const wantsString = s.type === "string" || s.anyOf?.some((b) => b.type === "string" && b.const === undefined);
  if (wantsString && (typeof v === "number" || typeof v === "boolean")) {
    // YAML reads 1.0 as the number 1 and 0755 as 755: quoting keeps what was written.
    return `quote it to keep it a string: ${typeof key === "string" ? `${key}: ` : ""}"${source ?? String(v)}"`;
  }
  const scalarType = s.type === "integer" || s.type === "number" || s.type === "boolean";
  if (scalarType && typeof v === "string" && /^(-?\d+(\.\d+)?|true|false)$/.test(v.trim())) {
    return "remove the quotes";
  }
  if (s.type === "object" && typeof v === "string") {
    // "strategy: blue-green" meant "strategy: {type: blue-green}".
    for (const [k, child] of Object.entries(s.properties ?? {})) {
      if (child.anyOf?.some((b) => b.const === v)) return `write ${typeof key === "string" ? `${key}: ` : ""}{${k}: ${v}}`;
    }
  }
  if (s.const !== undefined) return `write ${typeof key === "string" ? `${key}: ` : ""}${JSON.stringify(s.const)}`;
  if (s.anyOf?.every((b) => b.const !== undefined) && typeof v === "string") {
    const allowed = s.anyOf.map((b) => String(b.const));
    const near = closest(v, allowed);
    return near !== undefined ? `did you mean "${near}"?` : `allowed: ${allowed.map((a) => `"${a}"`).join(", ")}`;
  }
  return undefined;
}

export function problemsFromAjv(errors: readonly ErrorObject[], data: unknown, loc: Locator): SpecProblem[] {
  const out: SpecProblem[] = [];
  const unions = errors.filter((e) => e.keyword === "anyOf");
  const within = (e: ErrorObject, u: ErrorObject) =>
    e.schemaPath.startsWith(`${u.schemaPath}/`) &&
    (e.instancePath === u.instancePath || e.instancePath.startsWith(`${u.instancePath}/`));

  const valueProblem = (e: ErrorObject, s: SchemaNode) => {
    const path = pointerToPath(e.instancePath, data);
    const source = loc.source(path);
    // For numbers show what was written: version 1.0 is read as 1, mode 0755 as 755.
    const shown = (typeof e.data === "number" || typeof e.data === "boolean") && source ? source : show(e.data);
    out.push({
      where: loc.value(path),
      path: formatPath(path),
      message: `expected ${describe(s)}, got ${shown}`,
      hint: valueHint(s, e.data, path.at(-1), source),
    });
  };

  const simple = (e: ErrorObject) => {
    const s = e.parentSchema as SchemaNode;
    const path = pointerToPath(e.instancePath, data);
    switch (e.keyword) {
      case "additionalProperties": {
        const key = String((e.params as { additionalProperty: string }).additionalProperty);
        const at = [...path, key];
        if (s.patternProperties) {
          const keySchema = Object.keys(s.patternProperties)[0] ?? "";
          out.push({
            where: loc.key(at),
            path: formatPath(at),
            message: `invalid key ${JSON.stringify(key)}: expected ${PATTERN_TEXT[keySchema] ?? `a key matching /${keySchema}/`}`,
          });
        } else {
          out.push({
            where: loc.key(at),
            path: formatPath(at),
            message: `unknown key "${key}"`,
            hint: unknownKeyHint(key, Object.keys(s.properties ?? {}), formatPath(path)),
          });
        }
        return;
      }
      case "required": {
        const key = String((e.params as { missingProperty: string }).missingProperty);
        const what = s.properties?.[key]?.description;
        out.push({
          where: loc.value(path),
          path: formatPath([...path, key]),
          message: `missing required key "${key}"`,
          hint: `add "${key}:"${what ? ` (${what.replace(/\.$/, "").toLowerCase()})` : ""}`,
        });
        return;
      }
      default:
        valueProblem(e, s);
    }
  };

  for (const e of errors) {
    if (e.keyword === "anyOf") {
      const s = e.parentSchema as SchemaNode;
      const branches = s.anyOf ?? [];
      // Report the branch the value was evidently aiming at (a mapping file entry
      // with a bad dest), not why every other branch failed too.
      const aimed = s.title === DURATION_TITLE ? -1 : branches.findIndex((b) => b.const === undefined && accepts(b, e.data));
      if (aimed >= 0) {
        const prefix = `${e.schemaPath}/${aimed}/`;
        for (const b of errors) if (within(b, e) && b.schemaPath.startsWith(prefix)) simple(b);
      } else {
        valueProblem(e, s);
      }
    } else if (!unions.some((u) => within(e, u))) {
      simple(e);
    }
  }

  const seen = new Set<string>();
  return out.filter((p) => {
    const k = `${p.path}\u0000${p.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

// A small HCL writer for the files kiln generates (Packer, Terraform, Nomad).
// Output is in the canonical layout `packer fmt` / `terraform fmt` produce, so
// a generated file passes `fmt -check` unchanged: two-space indents, and the
// `=` of consecutive one-line attributes aligned (a blank line, a comment, a
// block or a multi-line value ends such a run).

export interface HclRaw {
  readonly kind: "raw";
  readonly text: string;
}

export interface HclObject {
  readonly kind: "object";
  readonly entries: ReadonlyArray<readonly [string, HclValue]>;
}

export type HclValue = string | number | boolean | HclRaw | HclObject | readonly HclValue[];

export type HclItem =
  | { readonly kind: "attr"; readonly name: string; readonly value: HclValue }
  | { readonly kind: "block"; readonly type: string; readonly labels: readonly string[]; readonly body: readonly HclItem[] }
  | { readonly kind: "comment"; readonly text: string }
  | { readonly kind: "blank" };

/** An expression written as is: `raw("var.region")`, `raw('"${var.name}-x"')`. */
export function raw(text: string): HclRaw {
  return { kind: "raw", text };
}

/** A quoted template whose `${…}` interpolations are kept (everything else is escaped). */
export function template(text: string): HclRaw {
  const parts = text.split(/(\$\{[^}]*\})/);
  return raw(`"${parts.map((p, i) => (i % 2 === 1 ? p : escapeString(p))).join("")}"`);
}

/** An object literal; entries keep the order given. */
export function obj(entries: Record<string, HclValue> | ReadonlyArray<readonly [string, HclValue]>): HclObject {
  return { kind: "object", entries: Array.isArray(entries) ? entries : Object.entries(entries) };
}

export function attr(name: string, value: HclValue): HclItem {
  return { kind: "attr", name, value };
}

export function block(type: string, labels: readonly string[], body: readonly HclItem[]): HclItem {
  return { kind: "block", type, labels, body };
}

export function comment(text: string): HclItem {
  return { kind: "comment", text };
}

export const blank: HclItem = { kind: "blank" };

/** Literal string contents: quotes, backslashes, control characters, and template introducers. */
export function escapeString(s: string): string {
  return s
    .replace(/\\/g, "\\\\")
    .replace(/"/g, '\\"')
    .replace(/\n/g, "\\n")
    .replace(/\r/g, "\\r")
    .replace(/\t/g, "\\t")
    .replace(/\$\{/g, "$$$${")
    .replace(/%\{/g, "%%{");
}

export function quote(s: string): string {
  return `"${escapeString(s)}"`;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_-]*$/;

function key(k: string): string {
  return IDENT.test(k) ? k : quote(k);
}

function isScalar(v: HclValue): boolean {
  return typeof v !== "object" || (!Array.isArray(v) && (v as HclRaw | HclObject).kind === "raw");
}

/** A value at `indent` (the indent of the line it starts on). */
function value(v: HclValue, indent: string): string {
  if (typeof v === "string") return quote(v);
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new Error(`HCL: ${v} is not a number`);
    return String(v);
  }
  if (typeof v === "boolean") return v ? "true" : "false";
  if (Array.isArray(v)) {
    const items = v as readonly HclValue[];
    if (items.length === 0) return "[]";
    const flat = `[${items.map((x) => value(x, indent)).join(", ")}]`;
    if (items.every(isScalar) && flat.length + indent.length <= 100 && !flat.includes("\n")) return flat;
    const inner = `${indent}  `;
    return `[\n${items.map((x) => `${inner}${value(x, inner)},\n`).join("")}${indent}]`;
  }
  const o = v as HclRaw | HclObject;
  if (o.kind === "raw") return o.text;
  if (o.entries.length === 0) return "{}";
  const inner = `${indent}  `;
  const lines = renderAttrs(
    o.entries.map(([k, x]) => ({ name: key(k), value: x })),
    inner,
  );
  return `{\n${lines.join("")}${indent}}`;
}

/** Consecutive attributes, one-line ones aligned in runs. */
function renderAttrs(attrs: { name: string; value: HclValue }[], indent: string): string[] {
  const rendered = attrs.map((a) => ({ name: a.name, text: value(a.value, indent) }));
  const out: string[] = [];
  let run: { name: string; text: string }[] = [];
  const flush = () => {
    const width = Math.max(0, ...run.map((r) => r.name.length));
    for (const r of run) out.push(`${indent}${r.name.padEnd(width)} = ${r.text}\n`);
    run = [];
  };
  for (const r of rendered) {
    if (r.text.includes("\n")) {
      flush();
      out.push(`${indent}${r.name} = ${r.text}\n`);
    } else {
      run.push(r);
    }
  }
  flush();
  return out;
}

function renderBody(items: readonly HclItem[], indent: string): string {
  let out = "";
  let attrs: { name: string; value: HclValue }[] = [];
  const flush = () => {
    out += renderAttrs(attrs, indent).join("");
    attrs = [];
  };
  for (const item of items) {
    if (item.kind === "attr") {
      attrs.push({ name: key(item.name), value: item.value });
      continue;
    }
    flush();
    if (item.kind === "blank") out += "\n";
    else if (item.kind === "comment") out += item.text.split("\n").map((l) => `${indent}#${l ? ` ${l}` : ""}\n`).join("");
    else {
      const labels = item.labels.map((l) => ` ${quote(l)}`).join("");
      out += item.body.length === 0 ? `${indent}${item.type}${labels} {\n${indent}}\n` : `${indent}${item.type}${labels} {\n${renderBody(item.body, `${indent}  `)}${indent}}\n`;
    }
  }
  flush();
  return out;
}

/** A whole file. */
export function renderHcl(items: readonly HclItem[]): string {
  return renderBody(items, "");
}

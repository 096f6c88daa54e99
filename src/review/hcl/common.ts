// Checks shared by Packer and Terraform: literal secrets in attributes and variable
// defaults, AMI lookups, scripts embedded in attributes.

import { scanSecrets } from "../common/located-checks.js";
import { isSecretName, looksLikeLiteralSecret } from "../common/secrets.js";
import type { LNode } from "../located.js";
import type { Pos, RawFinding } from "../types.js";
import { allBlocks, attr, attrNode, attrStr, attrTrue, blocksOf, type HclAttr, type HclBlock, type HclBody } from "./parse.js";

export function hclSecrets(root: HclBody): RawFinding[] {
  const out: RawFinding[] = [];
  const scanBody = (body: HclBody) => {
    const map: LNode = { kind: "map", pos: body.end, entries: body.attrs.map((a) => ({ key: a.name, keyPos: a.pos, value: attrNode(a) })) };
    // an expression (`var.db_password`, "${…}") is not a literal
    for (const f of scanSecrets(map)) out.push(f);
  };
  scanBody(root);
  allBlocks(root, (b) => {
    if (b.type === "variable" && isSecretName(b.labels[0] ?? "")) {
      const d = attr(b.body, "default");
      const v = attrStr(d);
      if (d && typeof d.value === "string" && v !== undefined && looksLikeLiteralSecret(v)) {
        out.push({ ruleId: "KR062", pos: d.valuePos, message: `variable "${b.labels[0]}" has a literal secret as its default` });
      }
      return;
    }
    scanBody(b.body);
  });
  return out;
}

/** KR032 for `most_recent = true` with no owner pinned (owners, or an owner-id/owner-alias filter). */
export function amiLookup(body: HclBody, what: string, at: Pos): RawFinding[] {
  const mr = attr(body, "most_recent");
  if (!attrTrue(mr)) return [];
  const owners = attr(body, "owners");
  const ownersOk = Array.isArray(owners?.value) ? (owners!.value as unknown[]).length > 0 : owners !== undefined && owners.value !== undefined;
  const filterText = JSON.stringify([attr(body, "filters")?.value, ...blocksOf(body, "filter").map((f) => [attr(f.body, "name")?.value, attr(f.body, "values")?.value])]);
  if (ownersOk || /owner-(id|alias)/.test(filterText)) return [];
  return [{ ruleId: "KR032", pos: mr!.valuePos ?? at, message: `${what} takes the most recent matching AMI from any owner: anyone can publish an image with that name` }];
}

/**
 * The script in an attribute, with a map from script positions to file positions: a plain
 * string, or a heredoc anywhere in the expression (`base64encode(<<-EOF … EOF)`).
 */
export function attrScript(a: HclAttr, lines: readonly string[]): { text: string; map: (p: Pos) => Pos } | undefined {
  const heredoc = /<<(-?)([A-Za-z_][A-Za-z0-9_]*)[ \t]*\r?\n/.exec(a.raw);
  if (heredoc) {
    const before = a.raw.slice(0, heredoc.index + heredoc[0].length);
    const firstLine = a.valuePos.line + (before.match(/\n/g)?.length ?? 0);
    const bodyLines: string[] = [];
    for (let l = firstLine; l <= lines.length; l++) {
      const t = lines[l - 1] ?? "";
      if (t.trim() === heredoc[2]) break;
      bodyLines.push(t);
    }
    // <<- strips the common indentation; positions keep the real column.
    const indent = heredoc[1] === "-" ? Math.min(...bodyLines.filter((t) => t.trim() !== "").map((t) => t.length - t.trimStart().length), Infinity) : 0;
    const strip = Number.isFinite(indent) ? indent : 0;
    return {
      text: bodyLines.map((t) => t.slice(strip)).join("\n"),
      map: (p) => ({ line: firstLine + p.line - 1, col: strip + p.col }),
    };
  }
  if (typeof a.value === "string" && !a.value.startsWith("${")) {
    return { text: a.value, map: (p) => (p.line === 1 ? { line: a.valuePos.line, col: a.valuePos.col + p.col } : a.valuePos) };
  }
  return undefined;
}

/** `ingress` rules open to the world on port 22 (aws_security_group blocks and rule resources). */
export function sshOpen(fromPort: unknown, toPort: unknown, protocol: unknown, cidrs: unknown[]): boolean {
  const open = cidrs.some((c) => c === "0.0.0.0/0" || c === "::/0");
  if (!open) return false;
  const proto = String(protocol ?? "tcp");
  if (proto === "-1" || proto === "all") return true;
  if (proto !== "tcp" && proto !== "6") return false;
  const from = Number(fromPort);
  const to = Number(toPort ?? fromPort);
  return Number.isFinite(from) && Number.isFinite(to) && from <= 22 && 22 <= to;
}

export function blockLabel(b: HclBlock): string {
  return [b.type, ...b.labels.map((l) => `"${l}"`)].join(" ");
}

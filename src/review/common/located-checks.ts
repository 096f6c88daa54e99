// Checks shared by every located-document kind (CloudFormation, Kubernetes, Compose,
// kiln.yaml, HCL attribute values): literal secrets under secret names, scripts run at
// boot or container start, app data under /var/lib.

import { entry, str, walk, type LNode } from "../located.js";
import { parseShell } from "../shell/ast.js";
import { runtimeConfig } from "../shell/packages.js";
import type { Pos, RawFinding } from "../types.js";
import { isSecretName, looksLikeLiteralSecret } from "./secrets.js";

/** KR062: `password: hunter2`, `{name: DB_PASSWORD, value: hunter2}`, `- DB_PASSWORD=hunter2`. */
export function scanSecrets(root: LNode): RawFinding[] {
  const out: RawFinding[] = [];
  walk(root, (node, _path, key) => {
    if (key && isSecretName(key.key)) {
      const v = str(node);
      if (node.kind === "scalar" && typeof node.value === "string" && v !== undefined && looksLikeLiteralSecret(v)) {
        out.push({ ruleId: "KR062", pos: node.pos, message: `"${key.key}" is set to a literal secret` });
      }
    }
    if (node.kind === "map") {
      const name = str(entry(node, "name")?.value ?? entry(node, "Name")?.value);
      const value = entry(node, "value") ?? entry(node, "Value");
      const v = str(value?.value);
      if (name && isSecretName(name) && value && value.value.kind === "scalar" && typeof value.value.value === "string" && v !== undefined && looksLikeLiteralSecret(v)) {
        out.push({ ruleId: "KR062", pos: value.value.pos, message: `${name} is set to a literal secret` });
      }
    }
    if (node.kind === "scalar" && typeof node.value === "string" && node.tag === undefined) {
      const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.+)$/.exec(node.value);
      if (m && isSecretName(m[1]!) && looksLikeLiteralSecret(m[2]!)) out.push({ ruleId: "KR062", pos: node.pos, message: `${m[1]} is set to a literal secret` });
    }
  });
  return out;
}

/**
 * A script with a way back to file positions: for a block scalar, line n of the script is
 * line content.line + n − 1 of the file; otherwise everything is reported at the node.
 */
export function scriptMap(node: LNode, lineStartCol?: (line: number) => number): (p: Pos) => Pos {
  if (node.kind !== "scalar" || !node.content) return () => node.pos;
  const c = node.content;
  const multiline = typeof node.value === "string" && node.value.includes("\n");
  return (p) => {
    const line = c.line + p.line - 1;
    if (!multiline || p.line === 1) return { line, col: c.col + p.col - 1 };
    return { line, col: (lineStartCol?.(line) ?? c.col) + p.col - 1 };
  };
}

/** KR033 for a script that runs on a live instance (user data, a container's command). */
export function runtimeScriptFindings(text: string, map: (p: Pos) => Pos, what: string): RawFinding[] {
  const parsed = parseShell(text, what);
  if ("error" in parsed) return [];
  return runtimeConfig(parsed.file).map((r) => ({
    ruleId: "KR033",
    pos: map(r.pos),
    message: `${what} ${r.what} on every start: the instance is configured after deploy instead of being baked`,
  }));
}

/**
 * A container's command/args/entrypoint as one script: `["sh", "-c", "…"]` is the script
 * itself; any other argv is a single command line.
 */
export function containerScript(...parts: (LNode | undefined)[]): { text: string; node: LNode } | undefined {
  const words: { text: string; node: LNode }[] = [];
  for (const p of parts) {
    if (!p) continue;
    if (p.kind === "seq") for (const it of p.items) {
      const s = str(it);
      if (s !== undefined) words.push({ text: s, node: it });
    }
    else {
      const s = str(p);
      if (s !== undefined) words.push({ text: s, node: p });
    }
  }
  if (words.length === 0) return undefined;
  const c = words.findIndex((w, i) => i > 0 && w.text === "-c" && /(^|\/)(ba|z|da)?sh$/.test(words[i - 1]!.text));
  if (c >= 0 && words[c + 1]) return words[c + 1];
  return { text: words.map((w) => (/\s/.test(w.text) ? `'${w.text.replace(/'/g, "'\\''")}'` : w.text)).join(" "), node: words[0]!.node };
}

/** Paths under /var/lib/<app> mentioned in a text. */
export function varLibPaths(text: string): string[] {
  return [...text.matchAll(/\/var\/lib\/[A-Za-z0-9._-]+/g)].map((m) => m[0]);
}

/** Whether a path is inside one of the mount paths. */
export function underMount(path: string, mounts: readonly string[]): boolean {
  return mounts.some((m) => {
    const b = m.replace(/\/+$/, "");
    return path === b || path.startsWith(`${b}/`) || b === "";
  });
}

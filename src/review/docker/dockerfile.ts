// Dockerfiles: the image is the unit kiln deploys, so what a Dockerfile bakes is what every
// instance runs. Read instruction by instruction (continuations, comments and the escape
// directive as Docker reads them); RUN bodies go through the shell parser and the bake rules.
//
//   FROM node                      → KR030 (no tag means latest)
//   RUN apt-get update && apt-get upgrade -y && apt-get install -y curl
//                                  → KR034 (upgrade) and KR035 (curl without a version)
//   COPY id_rsa /root/.ssh/        → KR063
//   RUN apt-get install -y openssh-server=1:9.2p1-2 / EXPOSE 22 → KR042
//   USER root (last USER of the final stage) → KR071

import { checkImageRef } from "../common/image-ref.js";
import { parseShell } from "../shell/ast.js";
import { bakeFindings } from "../shell/packages.js";
import { walkCalls } from "../shell/walk.js";
import type { Pos, RawFinding } from "../types.js";

export interface Instruction {
  /** upper-cased: FROM, RUN, COPY … */
  op: string;
  /** the arguments as written, continuations kept (backslash-newline) so lines still map */
  args: string;
  line: number;
  /** column where args start on the first line */
  col: number;
}

/** Files a build should never copy in: keys, certificates' keys, env and credential files. */
const SECRET_FILE = /(^|\/)(id_(rsa|dsa|ecdsa|ed25519)|[^/]*\.pem|[^/]*\.key|[^/]*\.p12|[^/]*\.pfx|\.env(\.[^/]*)?|credentials(\.[a-z]+)?|secrets?\.(json|ya?ml|env)|kubeconfig|\.npmrc|\.pgpass|\.netrc|\.aws|\.ssh)\/?$/i;

const SSH_FIX = "remove openssh-server and `EXPOSE 22`: debug with `docker exec`/`kiln logs` and fix by baking and deploying a new image";

export function parseDockerfile(text: string): Instruction[] {
  const lines = text.split("\n").map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l));
  let escape = "\\";
  const out: Instruction[] = [];
  let i = 0;
  // A parser directive (`# escape=``) is only read before the first instruction.
  for (; i < lines.length; i++) {
    const m = /^#\s*escape\s*=\s*([`\\])\s*$/i.exec(lines[i]!);
    if (m) escape = m[1]!;
    else if (!/^\s*(#.*)?$/.test(lines[i]!)) break;
  }
  for (i = 0; i < lines.length; i++) {
    const first = lines[i]!;
    if (/^\s*(#.*)?$/.test(first)) continue;
    const m = /^(\s*)([A-Za-z]+)(\s+|$)/.exec(first);
    if (!m) continue;
    const start = i;
    const parts = [first.slice(m[0].length)];
    // Continuation: a line ending in the escape character; comment lines inside are dropped
    // by Docker, so they become an empty continuation here to keep line numbers.
    let cont = endsWithEscape(first, escape);
    while (cont && i + 1 < lines.length) {
      i++;
      const next = lines[i]!;
      if (/^\s*(#.*)?$/.test(next)) parts.push(escape);
      else {
        parts.push(next);
        cont = endsWithEscape(next, escape);
      }
    }
    let args = parts.join("\n");
    if (escape === "`") args = args.replace(/`\n/g, "\\\n");
    // A heredoc body (`RUN <<EOF`) runs to its terminator.
    const hd = /<<-?\s*["']?([A-Za-z_][A-Za-z0-9_]*)["']?/.exec(args);
    if (hd) {
      const body: string[] = [];
      while (i + 1 < lines.length) {
        i++;
        if (lines[i]!.trim() === hd[1]) break;
        body.push(lines[i]!);
      }
      args = `${args}\n${body.join("\n")}\n${hd[1]}`;
    }
    out.push({ op: m[2]!.toUpperCase(), args, line: start + 1, col: m[0].length + 1 });
  }
  return out;
}

function endsWithEscape(line: string, escape: string): boolean {
  return line.trimEnd().endsWith(escape);
}

export function checkDockerfile(text: string): RawFinding[] {
  const ins = parseDockerfile(text);
  const out: RawFinding[] = [];
  const stages = new Set<string>();
  const froms = ins.filter((x) => x.op === "FROM");
  const lastFrom = froms[froms.length - 1];
  let lastUser: Instruction | undefined;
  for (const x of ins) {
    const at: Pos = { line: x.line, col: x.col };
    switch (x.op) {
      case "FROM": {
        const words = x.args.replace(/\\\n/g, " ").trim().split(/\s+/).filter((w) => !w.startsWith("--"));
        const image = words[0] ?? "";
        const as = words.findIndex((w) => w.toLowerCase() === "as");
        if (as >= 0 && words[as + 1]) stages.add(words[as + 1]!.toLowerCase());
        if (x === lastFrom) lastUser = undefined;
        if (image === "" || image === "scratch" || stages.has(image.toLowerCase()) || image.includes("$")) break;
        // A tag without a digest is the norm for bases; the rule here is the moving kind.
        out.push(...checkImageRef(image, at).filter((f) => f.ruleId === "KR030"));
        break;
      }
      case "RUN": {
        const script = runScript(x.args);
        const parsed = parseShell(script, "RUN");
        if ("error" in parsed) break;
        const map = (p: Pos): Pos => (p.line === 1 ? { line: x.line, col: x.col + p.col - 1 } : { line: x.line + p.line - 1, col: p.col });
        out.push(...bakeFindings(parsed.file, map));
        walkCalls(parsed.file.Stmts, (argv, st) => {
          const s = argv.join(" ");
          if (/^(apt-get|apt|apk|yum|dnf|microdnf|zypper)\b.*\b(install|add)\b.*\bopenssh(-server)?\b/.test(s)) {
            out.push({ ruleId: "KR042", pos: map(st.pos), message: "the image installs an SSH server: every container from it can be entered instead of replaced", fix: SSH_FIX });
          }
        });
        break;
      }
      case "COPY":
      case "ADD": {
        const words = x.args.replace(/\\\n/g, " ").trim();
        const list = words.startsWith("[") ? jsonList(words) : words.split(/\s+/).filter((w) => !w.startsWith("--"));
        for (const src of list.slice(0, -1)) {
          if (SECRET_FILE.test(src.replace(/\/+$/, ""))) {
            out.push({
              ruleId: "KR063",
              pos: at,
              message: `${x.op} puts ${src} into the image: every layer keeps it, even if a later step deletes it`,
              fix: "leave it out of the build context (.dockerignore) and give it to the one step that needs it as a BuildKit secret (`RUN --mount=type=secret,id=npmrc,target=/root/.npmrc npm ci`), or to the container at run time",
            });
          }
        }
        break;
      }
      case "EXPOSE":
        if (/(^|\s)22(\/tcp)?(\s|$)/.test(x.args)) out.push({ ruleId: "KR042", pos: at, message: "EXPOSE 22: the image offers SSH, so containers from it can be entered instead of replaced", fix: SSH_FIX });
        break;
      case "USER":
        lastUser = x;
        break;
    }
  }
  if (lastUser && /^(root|0)(:.*)?$/.test(lastUser.args.trim())) {
    out.push({ ruleId: "KR071", pos: { line: lastUser.line, col: lastUser.col }, message: "the final stage ends as `USER root`: every container from the image runs as root" });
  }
  return out;
}

/** The shell text of a RUN: shell form as is, exec form joined; BuildKit flags dropped. */
function runScript(args: string): string {
  let a = args;
  for (;;) {
    const m = /^--[a-z-]+(=\S*)?\s+/.exec(a);
    if (!m) break;
    // keep the line count: a flag never spans lines in practice
    a = a.slice(m[0].length);
  }
  const t = a.trim();
  if (t.startsWith("[")) return jsonList(t).join(" ");
  return a;
}

function jsonList(s: string): string[] {
  try {
    const v = JSON.parse(s) as unknown;
    return Array.isArray(v) ? v.map(String) : [];
  } catch {
    return [];
  }
}

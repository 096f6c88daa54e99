// Which files to review and what each one is: by extension first, then by content.

import { readdirSync, realpathSync, statSync } from "node:fs";
import { basename, extname, join } from "node:path";
import type { FileKind } from "./types.js";

const SKIP_DIRS = new Set(["node_modules", ".git", ".terraform", "dist", "vendor", ".kiln", "__pycache__"]);

export function detectKind(path: string, text: string): FileKind | undefined {
  const name = basename(path).toLowerCase();
  const ext = extname(name);
  if (name === "kiln.yaml" || name === "kiln.yml") return "kiln";
  if (name === "makefile" || name === "gnumakefile" || ext === ".mk") return "makefile";
  if (name === "dockerfile" || name === "containerfile" || name.startsWith("dockerfile.") || name.endsWith(".dockerfile")) return "dockerfile";
  if (/\.gitlab-ci\.ya?ml$/.test(name) || /(^|\/)\.github\/workflows\/[^/]+\.ya?ml$/.test(path.split("\\").join("/"))) return "ci";
  if (name.endsWith(".pkr.hcl")) return "packer";
  if (ext === ".tf") return "terraform";
  if (ext === ".hcl") return /^\s*(source\s+"[^"]+"\s+"[^"]+"|build)\s*\{/m.test(text) ? "packer" : "terraform";
  if (ext === ".sh" || ext === ".bash") return "shell";
  if (ext === "" && /^#!.*\b(bash|sh|zsh|ksh|dash)\b/.test(text)) return "shell";
  if (ext === ".yaml" || ext === ".yml" || ext === ".json" || ext === ".template") {
    // Helm and other Go templates are not YAML until rendered: review the rendered output instead.
    if (/^\s*\{\{-?|:\s*\{\{-?\s*(if|range|with|include|template|\.Values)/m.test(text) && !/AWSTemplateFormatVersion/.test(text)) return undefined;
    if (/(^|["\s])AWSTemplateFormatVersion["']?\s*:/m.test(text) || (/(^|["\s])Resources["']?\s*:/m.test(text) && /["'\s:]AWS::[A-Za-z0-9]+::/.test(text))) return "cloudformation";
    if (/^apiVersion:\s*["']?kiln\/v1/m.test(text)) return "kiln";
    if (/(^|[{,\s])["']?apiVersion["']?\s*:/m.test(text) && /(^|[{,\s])["']?kind["']?\s*:/m.test(text)) return "kubernetes";
    if (/^services:\s*$/m.test(text) || /^\s*"services"\s*:/m.test(text)) return "compose";
    // CI pipelines outside their usual place, and Ansible playbooks: told apart by their keys
    if (/^jobs:\s*$/m.test(text) && /^\s+runs-on:/m.test(text) && /^(on|"on"|'on'):/m.test(text)) return "ci";
    if (/^stages:\s*$/m.test(text) && /^\s+script:/m.test(text)) return "ci";
    if (/^- (name:.*\n\s+)?hosts:/m.test(text) && /^\s+(tasks|roles|pre_tasks):/m.test(text)) return "ansible";
  }
  return undefined;
}

/**
 * Files under dir, sorted, skipping dependency, VCS and build folders. Symbolic links to
 * directories are followed once: a directory already on the walk (a link loop such as
 * `a/up -> ..`) is not entered again. Only regular files are returned, so a FIFO or a
 * device in the tree can never block the review.
 */
export function walkDir(dir: string, seen: Set<string> = new Set()): string[] {
  let real: string;
  try {
    real = realpathSync(dir);
  } catch {
    return [];
  }
  if (seen.has(real)) return [];
  seen.add(real);
  const out: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch {
    return [];
  }
  for (const n of names) {
    const p = join(dir, n);
    let st;
    try {
      st = statSync(p);
    } catch {
      continue;
    }
    if (st.isDirectory()) {
      // hidden folders are skipped, except where CI pipelines live
      if (!SKIP_DIRS.has(n) && (!n.startsWith(".") || n === ".github" || (n === "workflows" && dir.endsWith(".github")))) out.push(...walkDir(p, seen));
    } else if (st.isFile()) out.push(p);
  }
  return out;
}

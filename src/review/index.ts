// kiln review: read deploy scripts, Packer templates, CloudFormation, Terraform,
// Kubernetes/Argo Rollouts manifests, Compose/Swarm stacks and kiln.yaml with real parsers,
// and report where they break the patterns of immutable infrastructure.
//
//   const r = await reviewFiles(["deploy/", "packer/app.pkr.hcl"]);
//   r.findings  // sorted by file, line, col, rule id
//   r.problems  // files that could not be read or parsed (the CLI exits 2)

import { readFileSync, statSync } from "node:fs";
import { isAbsolute, relative, resolve, sep } from "node:path";
import { scanTextForKeys } from "./common/secrets.js";
import { detectKind, walkDir } from "./detect.js";
import { parseHcl } from "./hcl/parse.js";
import { checkPacker } from "./hcl/packer.js";
import { checkTerraform } from "./hcl/terraform.js";
import { ruleById } from "./rules.js";
import { checkPlaybook } from "./ansible/playbook.js";
import { checkCi, ciFlavor } from "./ci/pipeline.js";
import { scanSecrets } from "./common/located-checks.js";
import { checkDockerfile } from "./docker/dockerfile.js";
import { checkMakefile } from "./make/makefile.js";
import { checkShell } from "./shell/check.js";
import { parseSuppressions, suppressionFor } from "./suppress.js";
import type { Finding, RawFinding, ReviewOptions, ReviewProblem, ReviewResult, SourceFile, SuppressedFinding } from "./types.js";
import { checkCloudFormation } from "./yaml/cloudformation.js";
import { checkCompose } from "./yaml/compose.js";
import { checkKiln } from "./yaml/kiln.js";
import { checkKubernetes } from "./yaml/kubernetes.js";
import { parseYaml } from "./yaml/parse.js";

export { RULES, ruleById } from "./rules.js";
export { formatText, formatJson, toSarif, failsAt, rulesMarkdown, describeProblems } from "./format.js";
export type * from "./types.js";

/** Review reads hand-written files; anything bigger is generated, or hostile. */
export const MAX_FILE_BYTES = 4 * 1024 * 1024;
export const MAX_LINE_CHARS = 100_000;

function longLine(text: string): { line: number; length: number } | undefined {
  let start = 0;
  let line = 1;
  for (;;) {
    const nl = text.indexOf("\n", start);
    const end = nl < 0 ? text.length : nl;
    if (end - start > MAX_LINE_CHARS) return { line, length: end - start };
    if (nl < 0) return undefined;
    start = nl + 1;
    line++;
  }
}

type Checked = { findings: RawFinding[] } | { error: { line: number; col: number; message: string } | { where: string; message: string } };

/** A path that cannot be stat'ed or read: one that does not exist is said so, not "cannot read". */
function readProblem(shown: string, e: unknown): ReviewProblem {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === "ENOENT" || code === "ENOTDIR") return { file: shown, where: shown, message: `does not exist (${code})`, reason: "missing" };
  return { file: shown, where: shown, message: `cannot read (${code ?? String(e)})`, reason: "unreadable" };
}

/**
 * Reviews files and directories (walked recursively; files whose kind cannot be told are
 * skipped there, but an explicitly named one is a problem). Never throws for bad input:
 * unreadable or unparsable files are returned in `problems`.
 */
export async function reviewFiles(paths: string[], opts: ReviewOptions = {}): Promise<ReviewResult> {
  const cwd = opts.cwd ?? process.cwd();
  const problems: ReviewProblem[] = [];
  const files = new Map<string, SourceFile>();
  for (const p of paths) {
    const abs = resolve(cwd, p);
    let isDir: boolean;
    try {
      isDir = statSync(abs).isDirectory();
    } catch (e) {
      problems.push(readProblem(display(p, cwd, abs), e));
      continue;
    }
    const candidates = isDir ? walkDir(abs) : [abs];
    for (const f of candidates) {
      if (files.has(f)) continue;
      const shown = display(p, cwd, f);
      let text: string;
      try {
        // A FIFO or a device named on the command line would block or never end: only regular
        // files are read, and only up to a size no hand-written deploy file reaches.
        const st = statSync(f);
        if (!st.isFile()) {
          problems.push({ file: shown, where: shown, message: "not a regular file (a FIFO, socket or device is not reviewed)", reason: "unreadable" });
          continue;
        }
        if (st.size > MAX_FILE_BYTES) {
          problems.push({ file: shown, where: shown, message: `too large to review (${st.size} bytes; the limit is ${MAX_FILE_BYTES})`, reason: "unreadable" });
          continue;
        }
        text = readFileSync(f, "utf8");
        const long = longLine(text);
        if (long) {
          problems.push({ file: shown, where: `${shown}:${long.line}:1`, message: `line ${long.line} is ${long.length} characters long (the limit is ${MAX_LINE_CHARS}): generated or minified text is not reviewed`, reason: "unreadable" });
          continue;
        }
      } catch (e) {
        problems.push(readProblem(shown, e));
        continue;
      }
      const kind = detectKind(f, text);
      if (!kind) {
        if (!isDir) {
          problems.push({
            file: shown,
            where: shown,
            message: "cannot tell what kind of file this is (expected a shell script, Packer/Terraform HCL, CloudFormation, Kubernetes, Compose, kiln.yaml, a Dockerfile, a GitHub Actions or GitLab CI pipeline, or an Ansible playbook)",
            reason: "unreadable",
          });
        }
        continue;
      }
      files.set(f, { file: shown, abs: f, kind, text });
    }
  }
  const sources = [...files.values()].sort((a, b) => cmp(a.file, b.file));

  // Packer templates first: the scripts their provisioners run are bake scripts.
  const bakeScripts = new Set<string>();
  const checked = new Map<SourceFile, Checked>();
  for (const s of sources.filter((x) => x.kind === "packer")) {
    const parsed = await parseHcl(s.text, s.file);
    if ("error" in parsed) {
      checked.set(s, parsed);
      continue;
    }
    const r = checkPacker(parsed.body, s.abs);
    r.scripts.forEach((x) => bakeScripts.add(x));
    checked.set(s, { findings: r.findings });
  }
  for (const s of sources) {
    if (!checked.has(s)) checked.set(s, await checkFile(s, bakeScripts));
  }

  const findings: Finding[] = [];
  const suppressed: SuppressedFinding[] = [];
  const reviewed: ReviewResult["files"] = [];
  for (const s of sources) {
    const c = checked.get(s)!;
    if ("error" in c) {
      const where = "where" in c.error ? c.error.where : `${s.file}:${c.error.line}:${c.error.col}`;
      problems.push({ file: s.file, where, message: c.error.message, reason: "unparsable" });
      continue;
    }
    reviewed.push({ file: s.file, kind: s.kind });
    const { suppressions, findings: meta } = parseSuppressions(s.text);
    const keys = scanTextForKeys(s.text);
    // A key found in the text explains more than "a literal secret" found at the same line.
    const keyLines = new Set(keys.map((k) => k.pos.line));
    const raw = dedupe([...c.findings.filter((f) => !(f.ruleId === "KR062" && keyLines.has(f.pos.line))), ...keys]);
    for (const f of raw) {
      const full = toFinding(s.file, f);
      const sup = suppressionFor(f, suppressions);
      if (sup) suppressed.push({ ...full, reason: sup.reason });
      else findings.push(full);
    }
    for (const m of meta) findings.push(toFinding(s.file, m));
    for (const sup of suppressions) {
      if (!sup.used) findings.push(toFinding(s.file, { ruleId: "KR091", pos: sup.pos, message: `kiln-ignore ${sup.ids.join(", ")} matches no finding on this line or the next` }));
    }
  }
  return {
    files: reviewed,
    findings: findings.sort(byPlace),
    suppressed: suppressed.sort(byPlace),
    problems: problems.sort((a, b) => cmp(a.where, b.where)),
  };
}

async function checkFile(s: SourceFile, bakeScripts: ReadonlySet<string>): Promise<Checked> {
  switch (s.kind) {
    case "shell": {
      const r = checkShell(s.text, s.file, bakeScripts.has(s.abs) ? "bake" : undefined);
      return "error" in r ? r : { findings: r.findings };
    }
    case "terraform": {
      const parsed = await parseHcl(s.text, s.file);
      return "error" in parsed ? parsed : { findings: checkTerraform(parsed.body, s.text) };
    }
    case "packer": {
      const parsed = await parseHcl(s.text, s.file);
      return "error" in parsed ? parsed : { findings: checkPacker(parsed.body, s.abs).findings };
    }
    case "makefile":
      return { findings: checkMakefile(s.text) };
    case "dockerfile":
      return { findings: checkDockerfile(s.text) };
    case "ci": {
      const y = parseYaml(s.text);
      if ("error" in y) return { error: y.error };
      const out: RawFinding[] = [];
      for (const doc of y.docs) {
        out.push(...scanSecrets(doc));
        out.push(...checkCi(doc, ciFlavor(doc, s.abs.split(sep).join("/")) ?? "github", s.text));
      }
      return { findings: out };
    }
    case "ansible": {
      const y = parseYaml(s.text);
      if ("error" in y) return { error: y.error };
      const role = /(^|\/)(packer|provision|provisioners|provisioning|bake|baking|image-build)\//i.test(s.file) ? "bake" : "deploy";
      return { findings: y.docs.flatMap((doc) => [...scanSecrets(doc), ...checkPlaybook(doc, role)]) };
    }
    case "kiln": {
      const y = parseYaml(s.text);
      const r = checkKiln(s.text, s.file, "docs" in y ? y.docs[0] : undefined);
      return r;
    }
    default: {
      const y = parseYaml(s.text);
      if ("error" in y) return { error: y.error };
      const lines = s.text.split("\n");
      const lineStartCol = (line: number) => {
        const t = lines[line - 1] ?? "";
        return t.length - t.trimStart().length + 1;
      };
      const out: RawFinding[] = [];
      for (const doc of y.docs) {
        if (s.kind === "cloudformation") out.push(...checkCloudFormation(doc, lineStartCol));
        else if (s.kind === "kubernetes") out.push(...checkKubernetes(doc));
        else out.push(...checkCompose(doc));
      }
      return { findings: out };
    }
  }
}

function toFinding(file: string, f: RawFinding): Finding {
  const rule = ruleById(f.ruleId);
  return { ruleId: f.ruleId, severity: rule.severity, file, line: f.pos.line, col: f.pos.col, message: f.message, fix: f.fix ?? rule.fix, ...(f.trace ? { trace: f.trace } : {}) };
}

function dedupe(fs: RawFinding[]): RawFinding[] {
  const seen = new Set<string>();
  return fs.filter((f) => {
    const k = `${f.ruleId}@${f.pos.line}:${f.pos.col}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** Code-point order, independent of locale, so output is the same on every machine. */
function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function byPlace(a: Finding, b: Finding): number {
  return cmp(a.file, b.file) || a.line - b.line || a.col - b.col || cmp(a.ruleId, b.ruleId) || cmp(a.message, b.message);
}

/** The path as the user would write it: relative paths stay relative, "/" separated. */
function display(given: string, cwd: string, abs: string): string {
  const base = isAbsolute(given) ? abs : relative(cwd, abs) || ".";
  return base.split(sep).join("/");
}

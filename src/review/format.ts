// Rendering a review: text for people (grouped by file), JSON for scripts, SARIF 2.1.0 for
// code-scanning UIs. All three are pure functions of the result, so the same input gives
// byte-identical output.

import { isAbsolute } from "node:path";
import { pathToFileURL } from "node:url";
import type * as Sarif from "sarif";
import { RULES } from "./rules.js";
import type { Finding, ReviewProblem, ReviewResult, Severity } from "./types.js";

const RANK: Record<Severity, number> = { info: 0, warning: 1, error: 2 };

/** True when a finding at or above the threshold exists (the CLI exits 1). */
export function failsAt(result: ReviewResult, threshold: "warning" | "error"): boolean {
  return result.findings.some((f) => RANK[f.severity] >= RANK[threshold]);
}

/** `explain`: under each finding, the control-flow path the analysis followed to it. */
export function formatText(result: ReviewResult, opts: { color: boolean; explain?: boolean }): string {
  const paint = (code: string) => (s: string) => (opts.color ? `\x1b[${code}m${s}\x1b[0m` : s);
  const red = paint("31");
  const yellow = paint("33");
  const blue = paint("34");
  const dim = paint("2");
  const bold = paint("1");
  const sev = (s: Severity) => (s === "error" ? red : s === "warning" ? yellow : blue)(s.padEnd(7));
  const lines: string[] = [];
  const byFile = new Map<string, Finding[]>();
  for (const f of result.findings) byFile.set(f.file, [...(byFile.get(f.file) ?? []), f]);
  for (const [file, fs] of byFile) {
    lines.push(bold(file));
    const width = Math.max(...fs.map((f) => `${f.line}:${f.col}`.length));
    for (const f of fs) {
      lines.push(`  ${`${f.line}:${f.col}`.padEnd(width)}  ${sev(f.severity)}  ${f.ruleId}  ${f.message}`);
      lines.push(`  ${" ".repeat(width)}  ${dim(`fix: ${f.fix}`)}`);
      if (opts.explain && f.trace) {
        lines.push(`  ${" ".repeat(width)}  path:`);
        for (const step of f.trace) lines.push(`  ${" ".repeat(width)}    ${step}`);
      }
    }
    lines.push("");
  }
  const count = (s: Severity) => result.findings.filter((f) => f.severity === s).length;
  const e = count("error");
  const w = count("warning");
  const i = count("info");
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const summary =
    result.findings.length === 0
      ? `no findings in ${plural(result.files.length, "file")}`
      : `${plural(result.findings.length, "finding")} (${plural(e, "error")}, ${plural(w, "warning")}, ${i} info) in ${plural(byFile.size, "file")} of ${result.files.length} reviewed`;
  lines.push(summary + (result.suppressed.length > 0 ? `; ${result.suppressed.length} suppressed with a reason` : ""));
  return `${lines.join("\n")}\n`;
}

export function formatJson(result: ReviewResult): string {
  const count = (s: Severity) => result.findings.filter((f) => f.severity === s).length;
  return `${JSON.stringify(
    {
      version: 1,
      files: result.files,
      findings: result.findings,
      suppressed: result.suppressed,
      summary: { files: result.files.length, errors: count("error"), warnings: count("warning"), info: count("info"), suppressed: result.suppressed.length },
    },
    null,
    2,
  )}\n`;
}

const LEVEL: Record<Severity, Sarif.ReportingConfiguration.level> = { error: "error", warning: "warning", info: "note" };

/** SARIF 2.1.0: one run, every rule in tool.driver.rules, suppressed findings marked inSource. */
export function toSarif(result: ReviewResult, toolVersion: string): Sarif.Log {
  const index = new Map(RULES.map((r, i) => [r.id, i]));
  const toResult = (f: Finding, reason?: string): Sarif.Result => ({
    ruleId: f.ruleId,
    ruleIndex: index.get(f.ruleId)!,
    level: LEVEL[f.severity],
    message: { text: `${f.message}. Fix: ${f.fix}` },
    locations: [
      {
        physicalLocation: {
          artifactLocation: artifact(f.file),
          region: { startLine: f.line, startColumn: f.col },
        },
      },
    ],
    ...(reason !== undefined ? { suppressions: [{ kind: "inSource" as const, justification: reason }] } : {}),
  });
  return {
    $schema: "https://json.schemastore.org/sarif-2.1.0.json",
    version: "2.1.0",
    runs: [
      {
        tool: {
          driver: {
            name: "kiln review",
            version: toolVersion,
            rules: RULES.map((r) => ({
              id: r.id,
              name: pascal(r.title),
              shortDescription: { text: r.title },
              fullDescription: { text: r.rationale },
              help: { text: `Fix: ${r.fix}`, markdown: `**Protects:** ${r.pattern}\n\n${r.rationale}\n\n**Fix:** ${r.fix}` },
              defaultConfiguration: { level: LEVEL[r.severity] },
              properties: { tags: ["immutable-infrastructure", ...r.kinds], pattern: r.pattern },
            })),
          },
        },
        originalUriBaseIds: { "%SRCROOT%": { description: { text: "the directory kiln review ran in" } } },
        artifacts: [...new Set([...result.findings, ...result.suppressed].map((f) => f.file))].sort().map((file) => ({ location: artifact(file) })),
        results: [...result.findings.map((f) => toResult(f)), ...result.suppressed.map((f) => toResult(f, f.reason))],
        columnKind: "utf16CodeUnits",
      },
    ],
  };
}

/** A relative path is relative to %SRCROOT% (where review ran); an absolute one becomes a file: URI. */
function artifact(file: string): Sarif.ArtifactLocation {
  return isAbsolute(file) ? { uri: pathToFileURL(file).href } : { uri: encodeURI(file), uriBaseId: "%SRCROOT%" };
}

function pascal(s: string): string {
  return s
    .replace(/`[^`]*`/g, "")
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((w) => w[0]!.toUpperCase() + w.slice(1))
    .join("");
}

/** docs/review-rules.md: the catalog as a table, then each rule's rationale and fix. */
export function rulesMarkdown(): string {
  const esc = (s: string) => s.replace(/\|/g, "\\|");
  const lines = [
    "# kiln review rules",
    "",
    "<!-- Generated from src/review/rules.ts (rulesMarkdown); test/review/rules.test.ts keeps the two in step. -->",
    "",
    "`kiln review PATH...` reads deploy shell scripts, Packer HCL2 templates, CloudFormation (YAML or JSON),",
    "Terraform, Kubernetes and Argo Rollouts manifests, Docker Compose/Swarm stack files, kiln.yaml, Dockerfiles,",
    "GitHub Actions and GitLab CI pipelines (the shell of their steps, their images, secrets printed to the log)",
    "and Ansible playbooks, each with a real parser, and reports where they break the patterns of immutable",
    "infrastructure. Suppress a finding, with a reason, on its line or the line above: `# kiln-ignore KR012: why`.",
    "",
    "| id | severity | title | reads | protects |",
    "|---|---|---|---|---|",
    ...RULES.map((r) => `| ${r.id} | ${r.severity} | ${esc(r.title)} | ${r.kinds.join(", ")} | ${esc(r.pattern)} |`),
    "",
  ];
  for (const r of RULES) {
    lines.push(`## ${r.id} — ${r.title}`, "", `*${r.severity}; protects: ${r.pattern}*`, "", r.rationale, "", `**Fix:** ${r.fix}`, "");
  }
  return lines.join("\n");
}

/**
 * The one-line summary and the hint for files review could not review, fitted to why: a
 * missing path is said to be missing (not a syntax error), and only the reasons present get
 * their advice. Examples:
 * - [missing.sh: missing] → "missing.sh does not exist", "check the path (relative to /w) or leave it out"
 * - [a.sh, b.sh: missing] → "2 paths do not exist", same hint
 * - [bad.tf: unparsable] → "1 file could not be reviewed", "fix the syntax error (review needs a file its real parser accepts), or leave the file out"
 * - [gone.sh: missing, bad.tf: unparsable] → "2 files could not be reviewed", both hints joined by "; "
 * - [fifo: unreadable] → "1 file could not be reviewed", "name a regular, readable deploy file review knows, or leave it out"
 */
export function describeProblems(problems: readonly ReviewProblem[], cwd: string): { message: string; hint: string } {
  const n = problems.length;
  const reasons = new Set(problems.map((p) => p.reason));
  const hints: string[] = [];
  if (reasons.has("missing")) hints.push(`check the path (relative to ${cwd}) or leave it out`);
  if (reasons.has("unparsable")) hints.push("fix the syntax error (review needs a file its real parser accepts), or leave the file out");
  if (reasons.has("unreadable")) hints.push("name a regular, readable deploy file review knows, or leave it out");
  const allMissing = reasons.size === 1 && reasons.has("missing");
  const message = allMissing ? (n === 1 ? `${problems[0]!.file} does not exist` : `${n} paths do not exist`) : `${n} file${n === 1 ? "" : "s"} could not be reviewed`;
  return { message, hint: hints.join("; ") };
}

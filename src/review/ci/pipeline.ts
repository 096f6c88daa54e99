// CI pipelines (GitHub Actions workflows, GitLab CI): the shell in `run:` / `script:` is a
// deploy script like any other, so it goes through the same control-flow analysis, one job
// at a time, with the job's steps joined in order the way the runner executes them:
//
//   GitHub Actions  each `run:` step is `bash -e` (or the step's `shell:`); a failing step
//                   ends the job unless `continue-on-error: true`; steps after a health
//                   check step are guarded by it.
//   GitLab CI       `before_script` + `script` run as one shell that stops at the first
//                   failing command; `after_script` runs apart, whatever happened.
//
// Plus what only a pipeline does: images by `latest` (KR030) and secrets printed to the
// log (KR070).

import { checkImageRef } from "../common/image-ref.js";
import { isSecretName } from "../common/secrets.js";
import { entries, entry, get, items, str, type LNode } from "../located.js";
import { checkShell } from "../shell/check.js";
import type { Pos, RawFinding } from "../types.js";

export type CiFlavor = "github" | "gitlab";

/** One step's script and where its lines are in the file. */
interface Piece {
  text: string;
  node: LNode;
  /** the step's failure does not stop the job */
  tolerant: boolean;
  shell: "sh" | "bash" | "other";
}

const GITLAB_RESERVED = new Set(["stages", "variables", "workflow", "include", "default", "image", "services", "before_script", "after_script", "cache", "pages"]);

export function ciFlavor(doc: LNode | undefined, path: string): CiFlavor | undefined {
  if (/(^|\/)\.github\/workflows\/[^/]+\.ya?ml$/.test(path)) return "github";
  if (/(^|\/)\.gitlab-ci\.ya?ml$/.test(path) || /\.gitlab-ci\.ya?ml$/.test(path)) return "gitlab";
  if (!doc || doc.kind !== "map") return undefined;
  const jobs = get(doc, "jobs");
  if ((entry(doc, "on") || entry(doc, "true")) && jobs?.kind === "map" && entries(jobs).some((j) => entry(j.value, "runs-on") || entry(j.value, "steps"))) return "github";
  if (entries(doc).some((e) => !GITLAB_RESERVED.has(e.key) && (entry(e.value, "script") !== undefined)) && (entry(doc, "stages") || entries(doc).some((e) => entry(e.value, "stage")))) return "gitlab";
  return undefined;
}

export function checkCi(doc: LNode, flavor: CiFlavor, text: string): RawFinding[] {
  const out: RawFinding[] = [];
  const lines = text.split("\n");
  const lineStartCol = (line: number) => {
    const t = lines[line - 1] ?? "";
    return t.length - t.trimStart().length + 1;
  };
  if (flavor === "github") {
    const jobPieces = new Map<string, Piece[]>();
    const needs = new Map<string, string[]>();
    for (const job of entries(get(doc, "jobs"))) {
      const j = job.value;
      for (const img of [get(j, "container"), get(j, "container", "image"), ...entries(get(j, "services")).flatMap((s) => [s.value, get(s.value, "image")])]) imageFinding(img, out);
      const secretEnv = secretEnvNames([get(doc, "env"), get(j, "env")]);
      const defShell = str(get(j, "defaults", "run", "shell")) ?? str(get(doc, "defaults", "run", "shell"));
      const pieces: Piece[] = [];
      for (const step of items(get(j, "steps"))) {
        const uses = str(get(step, "uses"));
        if (uses?.startsWith("docker://")) imageFinding(get(step, "uses"), out, uses.slice("docker://".length));
        const run = get(step, "run");
        const body = str(run);
        if (!run || body === undefined) continue;
        // `if: failure()` steps run only after something failed: a rollback, not the rollout
        if (/failure\(\)/.test(str(get(step, "if")) ?? "")) continue;
        const shell = str(get(step, "shell")) ?? defShell ?? "bash";
        const tolerant = String(str(get(step, "continue-on-error")) ?? "false") === "true";
        pieces.push({ text: body, node: run, tolerant, shell: /^bash\b/.test(shell) ? "bash" : /^sh\b/.test(shell) ? "sh" : "other" });
        out.push(...echoedSecrets(run, body, new Set([...secretEnv, ...secretEnvNames([get(step, "env")])]), lineStartCol));
      }
      jobPieces.set(job.key, pieces);
      const n = get(j, "needs");
      needs.set(job.key, n?.kind === "seq" ? n.items.flatMap((x) => (str(x) !== undefined ? [str(x)!] : [])) : str(n) !== undefined ? [str(n)!] : []);
    }
    // A job runs after the jobs it needs succeeded: their checks guard it; parallel jobs' do not.
    for (const [name, own] of jobPieces) {
      const before = ancestors(name, needs).flatMap((a) => jobPieces.get(a) ?? []);
      out.push(...jobFindings(before, own, lineStartCol));
    }
  } else {
    const dflt = get(doc, "default");
    imageFinding(get(doc, "image"), out);
    imageFinding(get(dflt, "image"), out);
    const stageNames = items(get(doc, "stages")).flatMap((x) => (str(x) !== undefined ? [str(x)!] : []));
    const stages = stageNames.length > 0 ? stageNames : ["build", "test", "deploy"];
    const jobs: { name: string; stage: number; pieces: Piece[]; needs?: string[] }[] = [];
    for (const job of entries(doc)) {
      if (GITLAB_RESERVED.has(job.key) || job.key.startsWith(".")) continue;
      const j = job.value;
      if (j.kind !== "map" || !entry(j, "script")) continue;
      // `when: on_failure` jobs are rollbacks; they run only when the pipeline failed
      if (str(get(j, "when")) === "on_failure") continue;
      imageFinding(get(j, "image"), out);
      for (const s of items(get(j, "services"))) imageFinding(s, out);
      const before = get(j, "before_script") ?? get(dflt, "before_script") ?? get(doc, "before_script");
      const pieces: Piece[] = [];
      for (const part of [before, get(j, "script")]) {
        for (const { text: t, node } of scriptLines(part)) {
          pieces.push({ text: t, node, tolerant: String(str(get(j, "allow_failure")) ?? "false") === "true", shell: "sh" });
          out.push(...echoedSecrets(node, t, secretEnvNames([get(doc, "variables"), get(j, "variables")]), lineStartCol));
        }
      }
      // A manual job is started by a person who looked at the rollout first: an approval gate.
      if (str(get(j, "when")) === "manual" && pieces.length > 0) pieces.unshift({ text: MANUAL_GATE, node: get(j, "when")!, tolerant: false, shell: "sh" });
      const stage = Math.max(0, stages.indexOf(str(get(j, "stage")) ?? "test"));
      const n = get(j, "needs");
      const nd = n?.kind === "seq" ? n.items.flatMap((x) => (str(x) ?? str(get(x, "job")) ?? "") !== "" ? [str(x) ?? str(get(x, "job"))!] : []) : undefined;
      jobs.push({ name: job.key, stage, pieces, needs: nd });
      for (const { text: t, node } of scriptLines(get(j, "after_script"))) out.push(...echoedSecrets(node, t, new Set(), lineStartCol));
    }
    // Later stages run only after every job of the earlier ones succeeded (or after `needs:`).
    const byName = new Map(jobs.map((x) => [x.name, x]));
    const needs = new Map(jobs.map((x) => [x.name, x.needs ?? jobs.filter((y) => y.stage < x.stage).map((y) => y.name)]));
    for (const x of jobs) {
      const before = ancestors(x.name, needs).flatMap((a) => byName.get(a)?.pieces ?? []);
      out.push(...jobFindings(before, x.pieces, lineStartCol));
    }
  }
  return out;
}

/** A stand-in command for a manual start; the analysis reads a name with "ready" as a passed check. */
const MANUAL_GATE = "kiln_manual_approval_ready";

/** Every job `name` transitively needs, each once, those needed first. */
function ancestors(name: string, needs: ReadonlyMap<string, readonly string[]>): string[] {
  const out: string[] = [];
  const seen = new Set<string>([name]);
  const visit = (n: string) => {
    for (const d of needs.get(n) ?? []) {
      if (seen.has(d)) continue;
      seen.add(d);
      visit(d);
      out.push(d);
    }
  };
  visit(name);
  return out;
}

function imageFinding(n: LNode | undefined, out: RawFinding[], ref?: string): void {
  const r = ref ?? str(n) ?? str(get(n, "name"));
  if (!n || r === undefined) return;
  const at = n.kind === "map" ? (get(n, "name")?.pos ?? n.pos) : n.pos;
  // CI tool images pinned by a version tag are the norm; `latest` or no tag is the moving kind.
  out.push(...checkImageRef(r.replace(/\$\{\{[^}]*\}\}/g, "$X"), at).filter((f) => f.ruleId === "KR030"));
}

function scriptLines(n: LNode | undefined): { text: string; node: LNode }[] {
  if (!n) return [];
  if (n.kind === "seq") return n.items.flatMap((it) => (str(it) !== undefined ? [{ text: str(it)!, node: it }] : []));
  const s = str(n);
  return s !== undefined ? [{ text: s, node: n }] : [];
}

/** env/variables entries whose value comes from a secret store, or whose name says secret. */
function secretEnvNames(maps: (LNode | undefined)[]): Set<string> {
  const out = new Set<string>();
  for (const m of maps) for (const e of entries(m)) {
    const v = str(e.value) ?? str(get(e.value, "value")) ?? "";
    if (/\$\{\{\s*secrets\./.test(v) || isSecretName(e.key)) out.add(e.key);
  }
  return out;
}

/** `${{ … }}` is substituted before the shell runs: to the shell it is an unknown word. */
function shellText(s: string): string {
  return s.replace(/\$\{\{[^}]*\}\}/g, "${GHA_EXPR}");
}

/** A script with a way back to the file: line n of the script is line content.line + n − 1. */
function mapper(node: LNode, lineStartCol: (line: number) => number): (p: Pos) => Pos {
  if (node.kind !== "scalar" || !node.content) return () => node.pos;
  const c = node.content;
  const multiline = typeof node.value === "string" && node.value.includes("\n");
  return (p) => {
    const line = c.line + p.line - 1;
    if (!multiline || p.line === 1) return { line, col: c.col + p.col - 1 };
    return { line, col: lineStartCol(line) + p.col - 1 };
  };
}

/**
 * The job's steps as one script, in order, each opened with the options its runner gives
 * it (`set -e`, or `set +e` for a step whose failure is tolerated), then reviewed as a
 * deploy script; findings are moved back to the step's own lines.
 */
function jobFindings(before: Piece[], own: Piece[], lineStartCol: (line: number) => number): RawFinding[] {
  const runnable = [...before, ...own].filter((p) => p.shell !== "other");
  if (own.filter((p) => p.shell !== "other").length === 0) return [];
  const text: string[] = [];
  const back: ((p: Pos) => Pos)[] = [];
  let firstOwnLine = 0;
  for (const p of runnable) {
    if (p === own.find((o) => o.shell !== "other")) firstOwnLine = text.length + 1;
    const map = mapper(p.node, lineStartCol);
    const opts = p.tolerant ? "set +e" : p.shell === "bash" ? "set -eo pipefail" : "set -e";
    text.push(opts);
    back.push(() => map({ line: 1, col: 1 }));
    const body = shellText(p.text).replace(/\n$/, "").split("\n");
    body.forEach((l, i) => {
      text.push(l);
      back.push((q) => map({ line: i + 1, col: q.col }));
    });
  }
  const r = checkShell(`${text.join("\n")}\n`, "ci-job.sh", "deploy");
  if ("error" in r) return [];
  // the jobs it needs are reported on their own
  return r.findings.filter((f) => f.pos.line >= firstOwnLine).map((f) => ({ ...f, pos: (back[f.pos.line - 1] ?? back[back.length - 1]!)(f.pos) }));
}

/**
 * KR070: `echo "$TOKEN"`, `echo ${{ secrets.X }}`, `printf … $PASSWORD` printing to the log.
 * Piped into a command (`| docker login --password-stdin`) or redirected into a file, it is
 * not printed.
 */
function echoedSecrets(node: LNode, body: string, secretEnv: ReadonlySet<string>, lineStartCol: (line: number) => number): RawFinding[] {
  const out: RawFinding[] = [];
  const map = mapper(node, lineStartCol);
  body.split("\n").forEach((line, i) => {
    if (line.length > 2000) return;
    for (const seg of line.split(/&&|\|\||;/)) {
      const m = /^\s*(echo|printf)\b(.*)$/.exec(seg);
      if (!m) continue;
      const rest = m[2]!;
      if (rest.includes("|") || /(^|[^0-9&])>/.test(rest)) continue;
      const gh = /\$\{\{\s*secrets\.([A-Za-z0-9_]+)\s*\}\}/.exec(rest);
      const vars = [...rest.matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)/g)].map((x) => x[1]!);
      const named = vars.find((v) => secretEnv.has(v) || isSecretName(v));
      const what = gh ? `secrets.${gh[1]}` : named ? `$${named}` : undefined;
      if (!what) continue;
      out.push({ ruleId: "KR070", pos: map({ line: i + 1, col: line.indexOf(m[1]!) + 1 }), message: `\`${m[1]}\` prints ${what} to the job log` });
      break;
    }
  });
  return out;
}

// The vocabulary of kiln review: file kinds, rules, findings and the result.

export type Severity = "error" | "warning" | "info";

export type FileKind = "shell" | "packer" | "terraform" | "cloudformation" | "kubernetes" | "compose" | "kiln" | "ci" | "dockerfile" | "ansible" | "makefile";

/** 1-based line and column, as editors and SARIF count them. */
export interface Pos {
  line: number;
  col: number;
}

export interface RuleMeta {
  /** "KR001" … */
  id: string;
  severity: Severity;
  /** one line: what is wrong */
  title: string;
  /** why it matters, naming the immutable-infrastructure pattern it protects */
  rationale: string;
  /** the pattern it protects, e.g. "rolling replacement" */
  pattern: string;
  /** the default concrete fix; a finding may carry a more specific one */
  fix: string;
  /** the file kinds the rule reads */
  kinds: readonly FileKind[];
}

/** What a checker reports: a rule, a place and the specifics. Severity and file are added by the runner. */
export interface RawFinding {
  ruleId: string;
  pos: Pos;
  message: string;
  /** replaces the rule's default fix when the checker knows better */
  fix?: string;
  /** the control-flow path that led to the finding, one step a line ("line 9: …"), for --explain */
  trace?: string[];
}

export interface Finding {
  ruleId: string;
  severity: Severity;
  /** the path as given (directories joined with the walked relative path), "/" separated */
  file: string;
  line: number;
  col: number;
  message: string;
  fix: string;
  /** the control-flow path the analysis followed to this finding (deploy-path rules), for --explain */
  trace?: string[];
}

export interface SuppressedFinding extends Finding {
  /** the reason written after "kiln-ignore KRxxx:" */
  reason: string;
}

/** A file that could not be read or parsed: review cannot vouch for it (exit 2). */
export interface ReviewProblem {
  file: string;
  /** "file:line:col" when the parser said where */
  where: string;
  message: string;
  /**
   * Why it was not reviewed, so the CLI's hint fits: "missing" (no such path), "unparsable"
   * (its parser refused it), "unreadable" (anything else: permissions, not a regular file,
   * too large, generated text, an unknown kind).
   */
  reason: "missing" | "unparsable" | "unreadable";
}

export interface ReviewedFile {
  file: string;
  kind: FileKind;
}

export interface ReviewResult {
  files: ReviewedFile[];
  /** sorted by file, line, col, rule id */
  findings: Finding[];
  suppressed: SuppressedFinding[];
  problems: ReviewProblem[];
}

export interface ReviewOptions {
  /** directory relative paths are resolved against; default process.cwd() */
  cwd?: string;
}

/** One parsed file handed to the checkers of its kind. */
export interface SourceFile {
  /** display path */
  file: string;
  /** absolute path */
  abs: string;
  kind: FileKind;
  text: string;
}

// The vocabulary of `kiln audit`: what a sandbox run observed, and the findings
// the pure classification (classify.ts, secrets.ts) turns it into.

export type Severity = "fail" | "warn";

export type ChangeKind = "created" | "modified" | "deleted";

/** One path of the instance's root that differs from the image after the runs (docker diff's A/C/D). */
export interface PathChange {
  /** absolute path inside the instance */
  path: string;
  change: ChangeKind;
  isDir: boolean;
}

export type SecretKind =
  | "private-key"
  | "dotenv-secret"
  | "aws-credentials"
  | "npm-token"
  | "git-credentials"
  | "pgpass"
  | "netrc-password"
  | "docker-auth";

/** A secret-looking file in the image. Never carries the secret itself. */
export interface SecretHit {
  kind: SecretKind;
  /** 1-based line of the first hit, when it is a line-oriented format */
  line?: number;
  /** what was recognized, safe to print (a variable name, "OPENSSH private key") */
  what: string;
}

export type SshEvidence = "binary" | "process" | "listening-22" | "exposed-22";

/**
 * A finding. Every one says what was seen and what to do next; `severity`
 * fail makes the verdict fail (exit 1).
 */
export type Finding =
  | {
      kind: "write-outside-volumes";
      severity: "fail";
      path: string;
      change: ChangeKind;
      isDir: boolean;
      /** for a created or deleted directory: how many entries below it changed with it */
      entries?: number;
      message: string;
      hint: string;
    }
  | { kind: "runs-as-root"; severity: "fail"; user: string; message: string; hint: string }
  | { kind: "ssh-daemon"; severity: "fail"; evidence: SshEvidence; path?: string; pid?: number; message: string; hint: string }
  | { kind: "secret-file"; severity: Severity; secretKind: SecretKind; path: string; line?: number; message: string; hint: string }
  | { kind: "secret-env"; severity: "warn"; name: string; message: string; hint: string }
  | { kind: "state-across-restart"; severity: "warn"; path: string; message: string; hint: string }
  | { kind: "unhealthy"; severity: "fail"; phase: RunPhase; message: string; hint: string }
  | { kind: "smoke-failed"; severity: "warn"; phase: RunPhase; request: string; message: string; hint: string };

export type FindingKind = Finding["kind"];

export type Verdict = "pass" | "warn" | "fail";

export type RunPhase = "first-start" | "after-restart";

/** "GET /", "POST /notes body" */
export interface SmokeRequest {
  method: string;
  path: string;
  body?: string;
  /** "file:line" it came from, or "kiln.yaml health" */
  where: string;
}

export interface SmokeResult {
  request: string;
  ok: boolean;
  status?: number;
  error?: string;
}

export interface RunRecord {
  phase: RunPhase;
  healthy: boolean;
  /** ms from start until the first healthy answer */
  healthyAfterMs?: number;
  healthError?: string;
  smoke: SmokeResult[];
  /** how the stop went: exit code of the app (null when unknown), and whether it had to be killed */
  stop?: { exitCode: number | null; killed: boolean; ms: number };
}

/** A process seen inside the sandbox while it ran. */
export interface SandboxProcess {
  pid: number;
  /** /proc/PID/comm */
  comm: string;
  /** argv[0] */
  exe: string;
}

/** One file of the image's root, as the static checks see it. */
export interface ImageFile {
  path: string;
  kind: "file" | "dir" | "symlink" | "other";
  size: number;
  executable: boolean;
}

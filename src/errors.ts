// The closed set of user-facing errors. Only the CLI's main and the server's
// error handler print or map them (STYLE habit 7).

export type ErrorCode =
  | "KILN_E_SPEC" // kiln.yaml is invalid
  | "KILN_E_USAGE" // bad command-line input
  | "KILN_E_IMAGE" // image store / bake / tag problem
  | "KILN_E_UNSAFE" // a layer tried to escape its root, a digest did not verify, or untrusted input broke a safety cap
  | "KILN_E_TAG_IMMUTABLE" // a tag would move to another digest
  | "KILN_E_NOT_FOUND" // image, release or instance not found
  | "KILN_E_REGISTRY" // an OCI registry refused a request or could not be reached
  | "KILN_E_PROVIDER" // the provider could not launch/stop an instance
  | "KILN_E_CONTROLLER" // controller unreachable or refused
  | "KILN_E_ROLLOUT" // a rollout failed (and was rolled back)
  | "KILN_E_STATE" // state database problem
  | "KILN_E_POLICY" // kiln.yaml refuses it: a promotion gate is not met (no passed drill, soak not over, source not live), or an image fails the deploy policy (signature, SBOM, runtime, age)
  | "KILN_E_HOOK" // a pre-* hook (kiln.yaml `hooks`) failed or timed out: the change was refused, nothing changed
  | "KILN_E_NO_SPACE" // a write failed because the filesystem is full or over quota (ENOSPC, EDQUOT)
  | "KILN_E_INTERNAL";

/** Exit codes are a stable contract: 0 ok, 1 failed operation, 2 bad input. */
export const EXIT = { ok: 0, failed: 1, badInput: 2 } as const;

const badInputCodes: ReadonlySet<ErrorCode> = new Set([
  "KILN_E_SPEC",
  "KILN_E_USAGE",
  "KILN_E_TAG_IMMUTABLE",
  "KILN_E_NOT_FOUND",
  "KILN_E_UNSAFE",
  "KILN_E_POLICY",
]);

export interface ErrorDetail {
  /** file:line:col, instance id, digest… whatever locates the problem */
  where?: string;
  /** the key path in kiln.yaml, when there is one */
  path?: string;
  message: string;
  hint?: string;
}

export class KilnError extends Error {
  readonly code: ErrorCode;
  readonly hint?: string;
  readonly details: ErrorDetail[];
  constructor(
    code: ErrorCode,
    message: string,
    opts: { hint?: string; cause?: unknown; details?: ErrorDetail[] } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "KilnError";
    this.code = code;
    this.hint = opts.hint;
    this.details = opts.details ?? [];
  }

  get exitCode(): number {
    return badInputCodes.has(this.code) ? EXIT.badInput : EXIT.failed;
  }

  toJSON() {
    return { code: this.code, message: this.message, hint: this.hint, details: this.details };
  }
}

export function isKilnError(e: unknown): e is KilnError {
  return e instanceof KilnError;
}

/** What a full filesystem says, per errno code. */
const NO_SPACE: Readonly<Record<string, string>> = { ENOSPC: "no space left on device", EDQUOT: "disk quota exceeded" };

/**
 * The KilnError for a system error kiln reports as a user's problem rather than as its own bug;
 * undefined for any other error (an internal error, shown with its stack).
 *
 *   fs write → { code: "ENOSPC", syscall: "write" }                → KILN_E_NO_SPACE "no space left on device (write)"
 *   { code: "ENOSPC", syscall: "open", path: "/h/store/tmp/x" }    → KILN_E_NO_SPACE "no space left on device (open /h/store/tmp/x)"
 *   { code: "EDQUOT", syscall: "write" }                           → KILN_E_NO_SPACE "disk quota exceeded (write)"
 *   { code: "ENOENT" }, a TypeError, a KilnError, "text"           → undefined
 */
export function fromSystemError(e: unknown): KilnError | undefined {
  if (isKilnError(e) || !(e instanceof Error)) return undefined;
  const errno = e as NodeJS.ErrnoException;
  const what = errno.code === undefined ? undefined : NO_SPACE[errno.code];
  if (what === undefined) return undefined;
  const op = [errno.syscall, errno.path].filter(Boolean).join(" ");
  return new KilnError("KILN_E_NO_SPACE", `${what}${op ? ` (${op})` : ""}`, {
    cause: e,
    hint: "free space on the filesystem that holds kiln's home (KILN_HOME; by default .kiln beside kiln.yaml): `df -h` shows it, `kiln gc` removes images no release uses; then run the command again",
  });
}

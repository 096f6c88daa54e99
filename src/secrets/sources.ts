// Where a secret's value comes from, and reading it. A value lives only in memory: it is read here,
// handed to an instance's environment, and never written to state, events, logs or an error
// message (errors name the secret and its source, never what it gave).

import { execFile } from "node:child_process";
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { KilnError } from "../errors.js";

/**
 * A secret's source as a release records it: paths absolute and commands with their directory,
 * so a controller can read it again at a launch without kiln.yaml.
 */
export type SecretSource =
  | { fromEnv: string }
  | { fromFile: string }
  | { fromCommand: string[]; cwd: string; timeoutMs: number };

/** kiln.yaml's form of a source (see config/types.ts SecretSourceSpec). */
export type SecretSourceInput =
  | { kind: "env"; name: string }
  | { kind: "file"; path: string }
  | { kind: "command"; argv: string[]; timeoutMs: number };

/** Largest value a file or a command may give: a secret, not a payload. */
export const MAX_SECRET_BYTES = 64 * 1024;
/** Node's timers hold at most 2^31−1 ms. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/**
 * kiln.yaml's sources made self-contained, relative to the directory of kiln.yaml.
 *
 *   { kind: "env", name: "PGPASS" }, "/p"          → { fromEnv: "PGPASS" }
 *   { kind: "file", path: "secrets/api" }, "/p"    → { fromFile: "/p/secrets/api" }
 *   { kind: "file", path: "/run/s/api" }, "/p"     → { fromFile: "/run/s/api" }
 *   { kind: "command", argv: ["pass","x"], timeoutMs: 10000 }, "/p" → { fromCommand: ["pass","x"], cwd: "/p", timeoutMs: 10000 }
 */
export function planSecretSources(secrets: Readonly<Record<string, SecretSourceInput>>, dir: string): Record<string, SecretSource> {
  const out: Record<string, SecretSource> = {};
  for (const name of Object.keys(secrets).sort()) {
    const s = secrets[name]!;
    out[name] =
      s.kind === "env" ? { fromEnv: s.name } : s.kind === "file" ? { fromFile: isAbsolute(s.path) ? s.path : join(dir, s.path) } : { fromCommand: [...s.argv], cwd: dir, timeoutMs: s.timeoutMs };
  }
  return out;
}

/** Words for a source in messages: never the value. */
export function describeSource(s: SecretSource): string {
  if ("fromEnv" in s) return `environment variable ${s.fromEnv}`;
  if ("fromFile" in s) return `file ${s.fromFile}`;
  return `command ${s.fromCommand[0]}`;
}

/** One trailing newline is what `echo` and editors add; the rest of the value is kept as is. */
export function trimOneNewline(v: string): string {
  return v.endsWith("\r\n") ? v.slice(0, -2) : v.endsWith("\n") ? v.slice(0, -1) : v;
}

export interface ResolveOptions {
  /** where fromEnv reads: the deployer's environment (CLI), or the controller's own */
  env: NodeJS.ProcessEnv;
  /** a command's stderr: shown to the deployer ("inherit"), dropped in the controller (it writes its log under KILN_HOME) */
  stderr: "inherit" | "ignore";
}

function secretError(name: string, s: SecretSource, what: string, hint: string, cause?: unknown): KilnError {
  // A cause could carry the value (a command's output); only its code is kept.
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  return new KilnError("KILN_E_SPEC", `secret ${name}: ${describeSource(s)} ${what}${code ? ` (${code})` : ""}`, {
    hint,
    details: [{ path: `secrets.${name}`, message: `${describeSource(s)} ${what}` }],
  });
}

function readSecretFile(name: string, s: { fromFile: string }): string {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO planted at the path must not hang the deploy or the controller.
    fd = openSync(s.fromFile, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw secretError(name, s, "cannot be read", "create the file (readable by the user who runs kiln), or fix the path in kiln.yaml", e);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw secretError(name, s, "is not a regular file", "point fromFile at a regular file");
    if (st.size > MAX_SECRET_BYTES) throw secretError(name, s, `is larger than ${MAX_SECRET_BYTES} bytes`, "a secret file holds one value");
    const buf = Buffer.alloc(st.size);
    let off = 0;
    while (off < buf.length) {
      const n = readSync(fd, buf, off, buf.length - off, off);
      if (n === 0) break;
      off += n;
    }
    return trimOneNewline(buf.subarray(0, off).toString("utf8"));
  } finally {
    closeSync(fd);
  }
}

function runSecretCommand(name: string, s: { fromCommand: string[]; cwd: string; timeoutMs: number }, o: ResolveOptions): Promise<string> {
  const [file, ...args] = s.fromCommand;
  return new Promise((resolve, reject) => {
    const child = execFile(
      file!,
      args,
      { cwd: s.cwd, env: o.env, timeout: Math.min(s.timeoutMs, MAX_TIMEOUT_MS), killSignal: "SIGKILL", maxBuffer: MAX_SECRET_BYTES, encoding: "utf8", shell: false },
      (err, stdout) => {
        if (!err) return resolve(trimOneNewline(stdout));
        const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: number | string };
        if (e.code === "ERR_CHILD_PROCESS_STDIO_MAXBUFFER") return reject(secretError(name, s, `printed more than ${MAX_SECRET_BYTES} bytes`, "the command must print the value alone"));
        if (e.killed) return reject(secretError(name, s, `did not finish within ${s.timeoutMs} ms`, "raise secrets.NAME.timeout, or check that the command does not wait for input"));
        if (typeof e.code === "string") return reject(secretError(name, s, "could not be started", "install it or fix fromCommand's first element", e));
        reject(secretError(name, s, `exited ${e.code ?? "abnormally"}`, "run the command yourself to see why (its output is the value, so kiln does not show it)"));
      },
    );
    child.stdin?.end();
    if (o.stderr === "inherit") child.stderr?.pipe(process.stderr, { end: false });
    else child.stderr?.resume();
  });
}

/** One secret's value now; KILN_E_SPEC naming the secret and its source when it cannot be had. */
export async function resolveSecret(name: string, s: SecretSource, o: ResolveOptions): Promise<string> {
  let v: string;
  if ("fromEnv" in s) {
    const got = o.env[s.fromEnv];
    if (got === undefined) throw secretError(name, s, "is not set", `export ${s.fromEnv} in the shell that runs kiln`);
    v = got;
  } else if ("fromFile" in s) v = readSecretFile(name, s);
  else v = await runSecretCommand(name, s, o);
  if (v.includes("\0")) throw secretError(name, s, "gave a value with a NUL byte", "an environment variable cannot hold NUL");
  return v;
}

/** Every secret's value, by name; the first failure refuses all (a release runs with all its secrets or not at all). */
export async function resolveSecrets(sources: Readonly<Record<string, SecretSource>>, o: ResolveOptions): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of Object.keys(sources).sort()) out[name] = await resolveSecret(name, sources[name]!, o);
  return out;
}

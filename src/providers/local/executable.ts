// Finding a host program the way execvp would: the one lookup for the sandbox tools, pasta, the
// audit sandbox's tools and the spawner's check before its gate (spawner.ts).

import { accessSync, constants, statSync } from "node:fs";
import { delimiter, join } from "node:path";

/** Where host tools live whatever the caller's PATH: searched after it, and the PATH instances' tools run with. */
export const HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/**
 * Where execvp would find `file` on `path` (a PATH value; a name with a slash is taken as it is):
 * the first regular file there that we may execute, or why there is none.
 *
 *   ("sh", "/nonexistent:/bin")   → {ok, file "/bin/sh"}
 *   ("/etc/hostname", undefined)  → {ok: false, EACCES}  (not executable)
 *   ("/bin", undefined)           → {ok: false, ENOENT}  (a directory)
 */
export function findExecutable(file: string, path: string | undefined): { ok: true; file: string } | { ok: false; code: "ENOENT" | "EACCES" } {
  const candidates = file.includes("/") ? [file] : (path ?? "").split(delimiter).filter(Boolean).map((d) => join(d, file));
  let denied = false;
  for (const c of candidates) {
    try {
      if (!statSync(c).isFile()) continue;
      accessSync(c, constants.X_OK);
      return { ok: true, file: c };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EACCES") denied = true;
    }
  }
  return { ok: false, code: denied ? "EACCES" : "ENOENT" };
}

/** A host tool by name: on `path` (default: our PATH), then in HOST_PATH; undefined when none runs. */
export function findHostTool(name: string, path = process.env.PATH ?? ""): string | undefined {
  const found = findExecutable(name, `${path}${delimiter}${HOST_PATH}`);
  return found.ok ? found.file : undefined;
}

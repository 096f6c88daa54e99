// A cross-process lock file: created with O_EXCL, retried with jitter, taken
// over when its holder is provably gone. Guards read-modify-write of index.json.

import { open, readFile, rm, stat } from "node:fs/promises";
import { hostname } from "node:os";
import { KilnError } from "../errors.js";

export interface LockOptions {
  /** give up after this long (ms) */
  timeoutMs?: number;
  /** a lock file older than this whose holder cannot be checked is considered abandoned */
  staleMs?: number;
}

export async function withLock<T>(lockPath: string, fn: () => Promise<T>, opts: LockOptions = {}): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const staleMs = opts.staleMs ?? 60_000;
  const started = Date.now();
  const owner = `${process.pid}\n${hostname()}\n${started}\n${Math.random()}`;
  let delay = 5;
  for (;;) {
    try {
      const fh = await open(lockPath, "wx", 0o644);
      try {
        await fh.writeFile(owner);
      } finally {
        await fh.close();
      }
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    if (await isAbandoned(lockPath, staleMs)) {
      await rm(lockPath, { force: true });
      continue;
    }
    if (Date.now() - started > timeoutMs) {
      throw new KilnError("KILN_E_IMAGE", `timed out waiting for the store lock ${lockPath}`, {
        hint: "another kiln process holds it; if none is running, delete the lock file",
      });
    }
    await new Promise((r) => setTimeout(r, delay + Math.random() * delay));
    delay = Math.min(delay * 2, 100);
  }
  try {
    return await fn();
  } finally {
    // Only remove the lock if it is still ours (it may have been taken over as stale).
    const content = await readFile(lockPath, "utf8").catch(() => "");
    if (content === owner) await rm(lockPath, { force: true });
  }
}

async function isAbandoned(lockPath: string, staleMs: number): Promise<boolean> {
  let content: string;
  let mtimeMs: number;
  try {
    content = await readFile(lockPath, "utf8");
    mtimeMs = (await stat(lockPath)).mtimeMs;
  } catch {
    return false; // gone already, or unreadable: just retry
  }
  const [pidText, host] = content.split("\n");
  const pid = Number(pidText);
  if (host === hostname() && Number.isInteger(pid) && pid > 0) {
    try {
      process.kill(pid, 0);
      return false; // holder is alive
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === "ESRCH";
    }
  }
  // Half-written lock (no content yet) or another host: rely on age.
  return Date.now() - mtimeMs > staleMs;
}

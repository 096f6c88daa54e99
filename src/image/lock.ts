// A cross-process lock file, taken over when its holder is provably gone.
// Guards read-modify-write of index.json and the unpacking of a rootfs.
//
// Taking: the owner record is written to a private temp file first and then
// hard-linked to the lock path, so the lock never exists half-written and
// link() fails atomically when someone holds it.
//
// Taking over a stale lock is race-free: removing it is allowed only to the
// one process that creates the takeover sentinel named after the stale
// record's content (O_EXCL), and it removes the lock only if the lock still
// holds that record. Without the sentinel, two processes could both judge the
// lock stale and the slower one would delete the lock the faster one had just
// taken. A record is never written twice (it carries a random nonce), so once
// the stale lock is gone no later check can mistake a new lock for it. A
// sentinel whose creator died is taken over by the same rule, one level down.

import { createHash, randomBytes } from "node:crypto";
import { link, open, readFile, rm, stat } from "node:fs/promises";
import { hostname } from "node:os";
import { KilnError } from "../errors.js";

export interface LockOptions {
  /** give up after this long (ms) */
  timeoutMs?: number;
  /** a lock file older than this whose holder cannot be checked is considered abandoned */
  staleMs?: number;
}

function ownerRecord(): string {
  return `${process.pid}\n${hostname()}\n${Date.now()}\n${randomBytes(12).toString("hex")}`;
}

/** Create `path` holding `content`, atomically; false when it exists. */
async function createWith(path: string, content: string): Promise<boolean> {
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
  const fh = await open(tmp, "wx", 0o600);
  try {
    await fh.writeFile(content);
  } finally {
    await fh.close();
  }
  try {
    await link(tmp, path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw e;
  } finally {
    await rm(tmp, { force: true });
  }
}

export async function withLock<T>(lockPath: string, fn: () => Promise<T>, opts: LockOptions = {}): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const staleMs = opts.staleMs ?? 60_000;
  const started = Date.now();
  const owner = ownerRecord();
  let delay = 5;
  for (;;) {
    if (await createWith(lockPath, owner)) break;
    const stale = await abandonedRecord(lockPath, staleMs);
    if (stale !== undefined) {
      await takeOver(lockPath, stale, staleMs, 0);
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

/** Remove `path` if, and only if, it still holds `stale`; at most one process does so per record. */
export async function takeOver(path: string, stale: string, staleMs: number, depth: number): Promise<void> {
  if (depth > 4) return; // a crash inside each of five nested takeovers: leave it to the timeout
  const sentinel = `${path}.takeover-${createHash("sha256").update(stale).digest("hex").slice(0, 16)}`;
  if (!(await createWith(sentinel, ownerRecord()))) {
    // Someone else is removing this stale record; if they died doing it, take their sentinel over.
    const staleSentinel = await abandonedRecord(sentinel, staleMs);
    if (staleSentinel !== undefined) await takeOver(sentinel, staleSentinel, staleMs, depth + 1);
    return;
  }
  try {
    const now = await readFile(path, "utf8").catch(() => undefined);
    if (now === stale) await rm(path, { force: true });
  } finally {
    await rm(sentinel, { force: true });
  }
}

/** The lock's record when its holder is provably gone (or it is older than staleMs and cannot be checked). */
async function abandonedRecord(lockPath: string, staleMs: number): Promise<string | undefined> {
  let content: string;
  let mtimeMs: number;
  try {
    content = await readFile(lockPath, "utf8");
    mtimeMs = (await stat(lockPath)).mtimeMs;
  } catch {
    return undefined; // gone already, or unreadable: just retry
  }
  const [pidText, host] = content.split("\n");
  const pid = Number(pidText);
  if (host === hostname() && Number.isInteger(pid) && pid > 0) {
    try {
      process.kill(pid, 0);
      return undefined; // holder is alive
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === "ESRCH" ? content : undefined;
    }
  }
  // Another host (or a record from an older kiln): rely on age.
  return Date.now() - mtimeMs > staleMs ? content : undefined;
}

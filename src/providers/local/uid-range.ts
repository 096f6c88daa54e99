// A uid range of kiln's own (issue 12): when kiln runs as root, each service's instances run on
// the host as a uid (and gid of the same number) from this range instead of the image's user,
// so no host account — uid 1000 is a real person on most machines — owns them, can signal them
// or read their /proc/<pid>/environ (declared env and secrets).
//
// One uid per service (and KILN_HOME), not per instance:
//   - a service's volumes are shared by its instances and outlive each release, so the uid that
//     writes them must be the same for every instance, old and new, during a rolling replacement;
//   - instances of one service run the same image with the same env and secrets: one reading
//     another's environment learns nothing, and PID namespaces hide them from each other anyway;
//   - another service is another uid: it cannot read this one's volumes or environment.
// Inside the sandbox the app still sees the image's user (bwrap maps it onto the host uid).
//
// Allocation is host-wide (several KILN_HOMEs on one machine must not share a uid by accident):
// a directory of claims, one file per taken uid, named by its offset in the range and holding
// the key of the service it belongs to. A service's slot starts at a hash of its key and probes
// forward; a claim is made with link(2), which either creates the whole file or fails, so two
// processes claiming at once cannot both win a slot.

import { createHash } from "node:crypto";
import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { posix } from "node:path";

export interface UidRange {
  /** first uid */
  start: number;
  /** how many */
  count: number;
}

/**
 * 880000000–880065535: far above Debian's accounts (1000–59999), systemd's dynamic users
 * (61184–65519) and the /etc/subuid ranges useradd hands out (100000 + 65536 per user; this
 * start would need over 13,000 users), and below 2^31, which some tools still treat as signed.
 */
export const DEFAULT_UID_RANGE: UidRange = { start: 880_000_000, count: 65_536 };
/** Host-wide, as the uids are: where the claims live (root-owned). */
export const DEFAULT_UID_CLAIMS_DIR = "/var/lib/kiln/uids";

/**
 * KILN_UID_RANGE → a range, or why not.
 *
 *   "880000000-880065535" → { start: 880000000, count: 65536 }
 *   "5000-4000" → error (end before start)     "0-100" → error (includes root)
 *   "abc" → error                              "4294967295-4294967295" → error (the invalid uid)
 */
export function parseUidRange(text: string): UidRange | { error: string } {
  const m = /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(text);
  if (!m) return { error: `"${text}" is not START-END (e.g. 880000000-880065535)` };
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (start < 1) return { error: `"${text}" includes uid 0 (root)` };
  if (end < start) return { error: `"${text}" ends before it starts` };
  if (end > 0xfffffffe) return { error: `"${text}" goes past the largest uid (4294967294)` };
  return { start, count: end - start + 1 };
}

/** "880000000–880065535" */
export function formatUidRange(r: UidRange): string {
  return `${r.start}–${r.start + r.count - 1}`;
}

/**
 * Whatever on this host already uses a number of the range: accounts (/etc/passwd), groups
 * (/etc/group; kiln uses the same number as gid) and subordinate ranges (/etc/subuid,
 * /etc/subgid: another user's containers run as those). Each as "FILE: who (what)".
 *
 *   passwd "alice:x:1000:1000::/home/alice:/bin/bash", range 1000–1999 → ["/etc/passwd: alice (uid 1000)"]
 *   subuid "alice:100000:65536", range 150000–150099 → ["/etc/subuid: alice (100000–165535)"]
 *   nothing inside → []
 */
export function rangeConflicts(range: UidRange, files: { passwd?: string; group?: string; subuid?: string; subgid?: string }): string[] {
  const end = range.start + range.count - 1;
  const inside = (lo: number, hi: number) => lo <= end && hi >= range.start;
  const out: string[] = [];
  const ids = (text: string | undefined, file: string, what: string) => {
    for (const line of (text ?? "").split("\n")) {
      const f = line.split(":");
      const id = Number(f[2]);
      if (f[0] && f[2] !== undefined && f[2] !== "" && Number.isInteger(id) && inside(id, id)) out.push(`${file}: ${f[0]} (${what} ${id})`);
    }
  };
  const ranges = (text: string | undefined, file: string) => {
    for (const line of (text ?? "").split("\n")) {
      const f = line.split(":");
      const lo = Number(f[1]);
      const n = Number(f[2]);
      if (f[0] && Number.isInteger(lo) && Number.isInteger(n) && n > 0 && inside(lo, lo + n - 1)) out.push(`${file}: ${f[0]} (${formatUidRange({ start: lo, count: n })})`);
    }
  };
  ids(files.passwd, "/etc/passwd", "uid");
  ids(files.group, "/etc/group", "gid");
  ranges(files.subuid, "/etc/subuid");
  ranges(files.subgid, "/etc/subgid");
  return out;
}

/** The key a service's uid is claimed under: its KILN_HOME and name. */
export function serviceKey(home: string, service: string): string {
  return createHash("sha256").update(`${posix.resolve(home)}\0${service}`).digest("hex");
}

/** Where a key's probing starts: a hash of it, within the range. */
export function firstSlot(key: string, count: number): number {
  return Number(BigInt(`0x${key.slice(0, 12)}`) % BigInt(count));
}

// ------------------------------------------------------------------ effects

function readOr(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/** rangeConflicts against this host's files. */
export function hostRangeConflicts(range: UidRange): string[] {
  return rangeConflicts(range, { passwd: readOr("/etc/passwd"), group: readOr("/etc/group"), subuid: readOr("/etc/subuid"), subgid: readOr("/etc/subgid") });
}

/**
 * The uid of `key` in the range: its existing claim, or a new one. Throws when the range is full.
 * A claim file that is present but empty cannot exist (link publishes whole files).
 */
export function claimUid(dir: string, range: UidRange, key: string): number {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const first = firstSlot(key, range.count);
  const tmp = posix.join(dir, `.claim.${process.pid}.${key.slice(0, 16)}`);
  writeFileSync(tmp, `${key}\n`, { mode: 0o644 });
  try {
    for (let i = 0; i < range.count; i++) {
      const slot = (first + i) % range.count;
      const file = posix.join(dir, String(slot));
      const held = readOr(file);
      if (held === undefined) {
        try {
          linkSync(tmp, file);
          return range.start + slot;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
        }
      }
      // taken (perhaps just now, perhaps by the same key from another process)
      if ((held ?? readOr(file))?.trim() === key) return range.start + slot;
    }
  } finally {
    rmSync(tmp, { force: true });
  }
  throw new Error(`every uid of ${formatUidRange(range)} is claimed (${dir})`);
}

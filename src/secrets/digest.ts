// What state keeps of secrets: a keyed hash. Equal values under the same key give equal digests,
// so a deploy with unchanged secrets is the same release and a changed one is not; without the key
// (a file in KILN_HOME only its owner reads) the digest tells nothing about the values, and a
// short value cannot be guessed by hashing candidates.

import { createHmac, randomBytes } from "node:crypto";
import { closeSync, fstatSync, lstatSync, openSync, readFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { KilnError } from "../errors.js";

export const SECRET_KEY_FILE = "secrets.key";

/**
 * "hmac-sha256:<hex>" over the names and values, in name order (NUL-separated: neither can hold NUL).
 *
 *   key k, { A: "1", B: "2" } and { B: "2", A: "1" } → the same digest (order does not matter)
 *   key k, { A: "1" } vs { A: "2" }                    → different digests (a changed value)
 *   key k, { A: "1" } vs { B: "1" }                    → different digests (a renamed secret)
 *   key k, { A: "1" } vs key k2, { A: "1" }            → different digests (another home's key)
 *   key k, { A: "1", B: "" } vs { A: "1\0B" }          → different (cannot be spliced)
 */
export function computeSecretsDigest(key: Buffer, values: Readonly<Record<string, string>>): string {
  const h = createHmac("sha256", key);
  for (const name of Object.keys(values).sort()) h.update(`${name}\0${values[name]}\0`);
  return `hmac-sha256:${h.digest("hex")}`;
}

/**
 * The home's HMAC key: created once (32 random bytes, 0600, O_EXCL so two processes never make
 * two keys), then read. A key file that is not a regular file of ours, or that others may read,
 * is refused: with it anyone could test guesses against the digests in state.
 */
export function homeSecretKey(home: string): Buffer {
  const file = join(home, SECRET_KEY_FILE);
  try {
    const fd = openSync(file, "wx", 0o600);
    try {
      writeSync(fd, randomBytes(32).toString("hex") + "\n");
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw new KilnError("KILN_E_STATE", `cannot create ${file}`, { cause: e, hint: "check that KILN_HOME is writable" });
  }
  const st = lstatSync(file);
  const me = process.getuid?.();
  if (!st.isFile() || (me !== undefined && st.uid !== me) || (st.mode & 0o077) !== 0)
    throw new KilnError("KILN_E_UNSAFE", `${file} is not a private file of this user`, {
      hint: "remove it (kiln makes a new key; the next deploy then replaces instances once) or chmod 600 it",
    });
  const fd = openSync(file, "r");
  try {
    if (fstatSync(fd).ino !== st.ino) throw new KilnError("KILN_E_UNSAFE", `${file} changed while it was read`, { hint: "run the command again" });
    const hex = readFileSync(fd, "utf8").trim();
    if (!/^[0-9a-f]{64}$/.test(hex)) throw new KilnError("KILN_E_STATE", `${file} does not hold a key`, { hint: "remove it; kiln makes a new one" });
    return Buffer.from(hex, "hex");
  } finally {
    closeSync(fd);
  }
}

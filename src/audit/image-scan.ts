// The static half of the audit: the image's files (for SSH servers) and its
// secret-looking files, read from the unpacked root filesystem on the host.
// Symlinks are listed, never followed.

import { lstat, open, readdir } from "node:fs/promises";
import { join } from "node:path";
import { detectSecrets, isSecretCandidateName, MAX_SECRET_SCAN_BYTES } from "./secrets.js";
import type { ImageFile, SecretHit } from "./types.js";

const SKIP = new Set(["/proc", "/sys", "/dev"]);
/** a bound on the walk: an app image has thousands of files, not millions */
const MAX_FILES = 500_000;

export async function listImageFiles(rootfs: string): Promise<ImageFile[]> {
  const out: ImageFile[] = [];
  const walk = async (dir: string): Promise<void> => {
    let names: string[];
    try {
      names = (await readdir(join(rootfs, dir))).sort();
    } catch {
      return;
    }
    for (const name of names) {
      if (out.length >= MAX_FILES) return;
      const path = dir === "/" ? `/${name}` : `${dir}/${name}`;
      if (SKIP.has(path)) continue;
      const st = await lstat(join(rootfs, path)).catch(() => undefined);
      if (!st) continue;
      const kind = st.isDirectory() ? "dir" : st.isFile() ? "file" : st.isSymbolicLink() ? "symlink" : "other";
      out.push({ path, kind, size: st.size, executable: st.isFile() && (st.mode & 0o111) !== 0 });
      if (kind === "dir") await walk(path);
    }
  };
  await walk("/");
  return out;
}

/** Reads every small regular file (private keys can be named anything) and the secret-named ones. */
export async function scanSecrets(rootfs: string, files: readonly ImageFile[]): Promise<{ path: string; hits: SecretHit[] }[]> {
  const out: { path: string; hits: SecretHit[] }[] = [];
  for (const f of files) {
    if (f.kind !== "file" || f.size === 0) continue;
    if (f.size > MAX_SECRET_SCAN_BYTES && !isSecretCandidateName(f.path)) continue;
    const text = await readPrefix(join(rootfs, f.path), MAX_SECRET_SCAN_BYTES);
    if (text === undefined) continue;
    // cheap pre-filter: most files are neither keys nor secret-named
    if (!isSecretCandidateName(f.path) && !text.includes("PRIVATE KEY") && !text.includes("aws_secret_access_key")) continue;
    const hits = detectSecrets(f.path, text);
    if (hits.length > 0) out.push({ path: f.path, hits });
  }
  return out;
}

async function readPrefix(path: string, max: number): Promise<string | undefined> {
  let fh;
  try {
    fh = await open(path, "r");
    const buf = Buffer.alloc(max);
    const { bytesRead } = await fh.read(buf, 0, max, 0);
    return buf.subarray(0, bytesRead).toString("latin1");
  } catch {
    return undefined;
  } finally {
    await fh?.close();
  }
}

// HAProxy's files (config, maps, router state) are replaced whole: written beside, synced, renamed,
// so a reader (HAProxy on reload, a restarted controller) sees the old file or the new one, never half.

import { open, rename } from "node:fs/promises";

export async function atomicWrite(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  const fh = await open(tmp, "w", 0o600);
  try {
    await fh.writeFile(text, "utf8");
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
}

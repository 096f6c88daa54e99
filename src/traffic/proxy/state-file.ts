// The proxy's only durable state: the last accepted routing table. Written
// atomically (tmp + fsync + rename + fsync dir) so a crash at any instant leaves
// either the old table or the new one on disk, never half of one. This is what
// lets the data plane keep routing when the controller is gone.

import { open, readFile, rename, unlink } from "node:fs/promises";
import path from "node:path";
import type { RoutingTable } from "../router.js";
import { checkTable } from "./table.js";

export type LoadedTable =
  | { kind: "missing" }
  | { kind: "ok"; table: RoutingTable }
  | { kind: "invalid"; problems: string[] };

export async function loadTableFile(file: string): Promise<LoadedTable> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { kind: "missing" };
    throw e;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    return { kind: "invalid", problems: [`not JSON: ${(e as Error).message}`] };
  }
  const r = checkTable(parsed);
  return r.ok ? { kind: "ok", table: r.table } : { kind: "invalid", problems: r.problems };
}

export async function saveTableFile(file: string, table: RoutingTable): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  const fh = await open(tmp, "w", 0o600);
  try {
    await fh.writeFile(JSON.stringify(table, null, 1) + "\n", "utf8");
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  // Make the rename itself durable. Some filesystems refuse to fsync a
  // directory handle; the rename is still atomic there, so that is not fatal.
  try {
    const dir = await open(path.dirname(file), "r");
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch {
    /* best effort, see above */
  }
}

// A worker thread of parallel-gzip.ts's pool: each message is one block, each reply its gzip member
// and the block's buffer, handed back for the next block.

import { parentPort } from "node:worker_threads";
import { gzipMember, loadGzipEncoder } from "./parallel-gzip.js";

const port = parentPort;
if (port === null) throw new Error("gzip-worker.js runs only as a worker thread");
// Blocks posted meanwhile wait in the port's queue: it starts delivering once the listener below is attached.
await loadGzipEncoder();
port.on("message", (block: Uint8Array) => {
  const member = gzipMember(block);
  // gzipMember returns an array that owns its whole buffer; the check keeps the transfer exact if that changes.
  const owned = member.byteOffset === 0 && member.byteLength === member.buffer.byteLength ? member : member.slice();
  const buffer = block.buffer as ArrayBuffer;
  port.postMessage({ member: owned, block: buffer }, [owned.buffer as ArrayBuffer, buffer]);
});

// Just enough of RFC 6455 framing to close a relayed WebSocket cleanly: where
// the current frame ends (so a Close frame is never spliced into the middle of
// a message) and the bytes of a Close frame. The proxy never parses payloads.

/**
 * Follows a WebSocket byte stream frame by frame.
 *
 * `consume(chunk)` reads the chunk and returns where, inside it, the stream is
 * first at a frame boundary: 0 when it already was before the chunk, the
 * offset just past the frame that ends inside it, or -1 when the chunk ends
 * mid-frame. Once the stream is known not to be WebSocket framing (broken
 * header), `broken` is set and consume returns -1 for ever.
 *
 *   fresh; [a whole 7-byte frame]                    → 0, and atBoundary after it
 *   fresh; [its first 3 bytes], then [its last 4]    → 0, then 4
 *   fresh; [0x81], then [0x05 + 5 payload bytes]     → 0, then 6 (a header may span chunks)
 *   2 bytes left of a frame; [those 2 + a next frame's first byte] → 2
 *   a masked frame (client → server): 4 key bytes after the length       → counted in the header
 */
export class FrameTracker {
  /** payload bytes of the current frame still to come */
  private remaining = 0;
  /** header bytes collected so far (a header may span chunks) */
  private header: number[] = [];
  broken = false;

  get atBoundary(): boolean {
    return this.remaining === 0 && this.header.length === 0 && !this.broken;
  }

  /**
   * Advance over `chunk`. Returns the offset of the first frame boundary at
   * or after the chunk's start (0 when the stream was at one already), or -1
   * when the chunk ends mid-frame.
   */
  consume(chunk: Uint8Array): number {
    let first = this.atBoundary ? 0 : -1;
    let i = 0;
    while (i < chunk.length && !this.broken) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, chunk.length - i);
        this.remaining -= take;
        i += take;
        if (this.remaining === 0 && first < 0) first = i;
        continue;
      }
      this.header.push(chunk[i]!);
      i++;
      const need = headerLength(this.header);
      if (need === undefined || this.header.length < need) continue;
      const len = payloadLength(this.header);
      if (len === undefined) {
        this.broken = true;
        break;
      }
      this.header = [];
      this.remaining = len;
      if (len === 0 && first < 0) first = i;
    }
    return this.broken ? -1 : first;
  }
}

/** Header length once the first two bytes are known; undefined before. */
function headerLength(h: number[]): number | undefined {
  if (h.length < 2) return undefined;
  const len7 = h[1]! & 0x7f;
  const masked = (h[1]! & 0x80) !== 0;
  return 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (masked ? 4 : 0);
}

function payloadLength(h: number[]): number | undefined {
  const len7 = h[1]! & 0x7f;
  if (len7 < 126) return len7;
  if (len7 === 126) return (h[2]! << 8) | h[3]!;
  let n = 0;
  for (let i = 2; i < 10; i++) n = n * 256 + h[i]!;
  return Number.isSafeInteger(n) ? n : undefined;
}

/**
 * A Close frame with `code` and a short reason: unmasked from the server side,
 * masked (with a zero key, which RFC 6455 allows: the key must be
 * unpredictable only against in-browser attackers, not needed between two
 * servers) towards an instance.
 *
 *   closeFrame(1001, "going away", false) → 0x88 0x0c 0x03 0xe9 "going away"
 */
export function closeFrame(code: number, reason: string, masked: boolean): Buffer {
  const text = Buffer.from(reason.slice(0, 120));
  const payload = Buffer.alloc(2 + text.length);
  payload.writeUInt16BE(code, 0);
  text.copy(payload, 2);
  const head = Buffer.from([0x88, (masked ? 0x80 : 0) | payload.length]);
  return masked ? Buffer.concat([head, Buffer.alloc(4), payload]) : Buffer.concat([head, payload]);
}
